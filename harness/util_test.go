package harness

import (
	"strconv"
	"syscall"
)

func itoa(n int) string { return strconv.Itoa(n) }

func ownerOf(st interface{ Sys() any }) string {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return strconv.Itoa(int(s.Uid)) + ":" + strconv.Itoa(int(s.Gid))
	}
	return "?"
}
