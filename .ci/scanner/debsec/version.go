package main

import (
	"strconv"
	"strings"
)

// CompareVersions compares two Debian package versions as dpkg does
// (deb-version(7)): [epoch:]upstream[-revision]; -1, 0 or 1.
func CompareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if ea != eb {
		if ea < eb {
			return -1
		}
		return 1
	}
	if c := comparePart(ua, ub); c != 0 {
		return c
	}
	return comparePart(ra, rb)
}

// splitVersion cuts [epoch:]upstream[-revision]: the epoch ends at the first
// colon, the revision starts after the last hyphen.
func splitVersion(v string) (epoch int, upstream, revision string) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		epoch, _ = strconv.Atoi(e)
		v = rest
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// comparePart is dpkg's verrevcmp: alternating non-digit runs (compared
// character by character, ~ before everything, even the end, letters
// before other characters) and digit runs (compared as numbers).
func comparePart(a, b string) int {
	for a != "" || b != "" {
		var na, nb string
		na, a = cutWhile(a, func(c byte) bool { return !isDigit(c) })
		nb, b = cutWhile(b, func(c byte) bool { return !isDigit(c) })
		for i := 0; i < len(na) || i < len(nb); i++ {
			if oa, ob := order(na, i), order(nb, i); oa != ob {
				if oa < ob {
					return -1
				}
				return 1
			}
		}
		var da, db string
		da, a = cutWhile(a, isDigit)
		db, b = cutWhile(b, isDigit)
		da, db = strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
		if len(da) != len(db) {
			if len(da) < len(db) {
				return -1
			}
			return 1
		}
		if da != db {
			if da < db {
				return -1
			}
			return 1
		}
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func cutWhile(s string, f func(byte) bool) (string, string) {
	i := 0
	for i < len(s) && f(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// order is the weight of s[i] in a non-digit run: ~ lowest, then the end
// of the run, then letters, then everything else.
func order(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case c == '~':
		return -1
	case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		return int(c)
	default:
		return int(c) + 256
	}
}
