package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0~rc1", "1.0", -1},
		{"1.0", "1.0+b1", -1},
		{"1:0.9", "2.0", 1},
		{"2.41-12", "2.41-12+deb13u1", -1},
		{"2.41-12+deb13u2", "2.41-12+deb13u10", -1},
		{"3.0.17-1~deb12u2", "3.0.17-1", -1},
		{"1.2a", "1.2+", -1},
		{"10", "9", 1},
		{"1.01", "1.1", 0},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

const sbom = `{"spdxVersion":"SPDX-2.3","packages":[
 {"name":"libssl3t64","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:deb/debian/libssl3t64@3.5.1-1?arch=amd64&distro=debian-13&upstream=openssl%403.5.1-1"}]},
 {"name":"bash","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:deb/debian/bash@5.2.37-2%2Bb10?arch=amd64&distro=debian-13&upstream=bash%405.2.37-2"}]},
 {"name":"s6","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:deb/debian/s6@2.13.1.0-1?arch=amd64&distro=debian-13"}]},
 {"name":"golang.org/x/sys","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:golang/golang.org/x/sys@v0.50.0"}]}
]}`

const trackerData = `{
 "openssl": {
  "CVE-2026-0001": {"releases": {"trixie": {"status": "resolved", "fixed_version": "3.5.1-1+deb13u1", "urgency": "medium"}}},
  "CVE-2026-0002": {"releases": {"trixie": {"status": "resolved", "fixed_version": "3.5.0-1", "urgency": "high"}}},
  "CVE-2026-0003": {"releases": {"bookworm": {"status": "open", "urgency": "low"}}}
 },
 "bash": {
  "CVE-2026-0004": {"releases": {"trixie": {"status": "open", "urgency": "unimportant"}}},
  "CVE-2026-0005": {"releases": {"trixie": {"status": "open", "urgency": "low"}}}
 },
 "s6": {
  "CVE-2026-0006": {"releases": {"trixie": {"status": "resolved", "fixed_version": "0", "urgency": "not yet assigned"}}}
 }
}`

func files(t *testing.T) (string, string) {
	dir := t.TempDir()
	s, tr := filepath.Join(dir, "sbom.json"), filepath.Join(dir, "tracker.json")
	if err := os.WriteFile(s, []byte(sbom), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tr, []byte(trackerData), 0o644); err != nil {
		t.Fatal(err)
	}
	return s, tr
}

// With the tracker: a fix newer than the installed source version and an
// open CVE are reported; a fix already installed, another release's entry,
// an unimportant open one and a "not affected" (fixed in 0) are not.
func TestCheckReportsWhatAffectsTheRelease(t *testing.T) {
	s, tr := files(t)
	var out bytes.Buffer
	code, err := run(&out, s, tr, "trixie")
	if err != nil || code != 1 {
		t.Fatalf("code %d, err %v, want 1 (affected):\n%s", code, err, out.String())
	}
	o := out.String()
	for _, want := range []string{"CVE-2026-0001", "3.5.1-1+deb13u1", "CVE-2026-0005", "3 Debian packages, 2 affected, 2 CVEs for trixie"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	for _, not := range []string{"CVE-2026-0002", "CVE-2026-0003", "CVE-2026-0004", "CVE-2026-0006", "golang.org"} {
		if strings.Contains(o, not) {
			t.Errorf("output has %q:\n%s", not, o)
		}
	}
}

// Without tracker data: the packages, and where to get the data.
func TestWithoutTrackerSaysWhereToGetIt(t *testing.T) {
	s, _ := files(t)
	var out bytes.Buffer
	code, err := run(&out, s, "", "trixie")
	if err != nil || code != 0 {
		t.Fatalf("code %d, err %v", code, err)
	}
	for _, want := range []string{"libssl3t64", "openssl", "3.5.1-1", TrackerURL, "-tracker FILE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// Bad input: a clear error and exit 2.
func TestBadInput(t *testing.T) {
	s, _ := files(t)
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "x.json")
	noDeb := filepath.Join(dir, "nodeb.json")
	os.WriteFile(notJSON, []byte("not json"), 0o644)
	os.WriteFile(noDeb, []byte(`{"packages":[]}`), 0o644)
	for _, tc := range []struct{ sbom, tracker, want string }{
		{"", "", "-sbom FILE is required"},
		{noDeb, "", "lists no Debian package"},
		{notJSON, "", "invalid character"},
		{s, notJSON, "not the tracker's JSON"},
	} {
		code, err := run(&bytes.Buffer{}, tc.sbom, tc.tracker, "trixie")
		if code != 2 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q, %q): code %d, err %v; want 2 and %q", tc.sbom, tc.tracker, code, err, tc.want)
		}
	}
}
