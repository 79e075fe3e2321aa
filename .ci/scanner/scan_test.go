package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// spdx is the part of the SPDX document the tests read.
type spdx struct {
	SPDXVersion string `json:"spdxVersion"`
	Packages    []struct {
		Name    string `json:"name"`
		Version string `json:"versionInfo"`
		Refs    []struct {
			Type    string `json:"referenceType"`
			Locator string `json:"referenceLocator"`
		} `json:"externalRefs"`
	} `json:"packages"`
}

func (d spdx) purls() []string {
	var out []string
	for _, p := range d.Packages {
		for _, r := range p.Refs {
			if r.Type == "purl" {
				out = append(out, r.Locator)
			}
		}
	}
	slices.Sort(out)
	return out
}

func write(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

// A root filesystem laid out like the release image: s6-overlay's
// slashpackage directories (with the NAME -> NAME-VERSION links), a dpkg
// database, and a Go binary (this test's own, which carries build info).
func TestScanListsSlashpackagesDebianAndGo(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"s6-2.15.0.0", "execline-2.9.9.0", "s6-overlay-3.2.3.0", "s6-overlay-helpers-0.1.2.2"} {
		write(t, root, "package/admin/"+d+"/command/x", "#!/bin/sh\n")
		name := d[:strings.LastIndex(d, "-")]
		if err := os.Symlink(d, filepath.Join(root, "package/admin", name)); err != nil {
			t.Fatal(err)
		}
	}
	// Not NAME-VERSION: not a package.
	write(t, root, "package/admin/notes/readme", "x")
	write(t, root, "etc/os-release", "ID=debian\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\n")
	write(t, root, "var/lib/dpkg/status", "Package: s6\nStatus: install ok installed\nVersion: 2.13.1.0-1\nArchitecture: amd64\nMaintainer: x <x@example.com>\nDescription: s6\n")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	write(t, root, "usr/local/bin/tool", string(b))

	doc, err := scan(context.Background(), root, "root")
	if err != nil {
		t.Fatal(err)
	}
	var d spdx
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	if d.SPDXVersion != "SPDX-2.3" {
		t.Errorf("spdxVersion %q", d.SPDXVersion)
	}
	got := d.purls()
	for _, want := range []string{
		"pkg:generic/skarnet.org/s6@2.15.0.0",
		"pkg:generic/skarnet.org/execline@2.9.9.0",
		"pkg:github/just-containers/s6-overlay@v3.2.3.0",
		"pkg:github/just-containers/s6-overlay-helpers@v0.1.2.2",
		"pkg:deb/debian/s6@2.13.1.0-1?arch=amd64",
	} {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("no %s in the SBOM: %v", want, got)
		}
	}
	if slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, "notes") }) {
		t.Errorf("a directory that is not NAME-VERSION was listed: %v", got)
	}
	goVersion := strings.TrimPrefix(goEnv(t, "GOVERSION"), "go")
	if !slices.Contains(got, "pkg:golang/stdlib@"+goVersion) {
		t.Errorf("no Go standard library %s (the Go binary's build info): %v", goVersion, got)
	}
}

func goEnv(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// The BuildKit protocol: without its variables the scanner says what it needs.
func TestBuildKitProtocolNeedsItsVariables(t *testing.T) {
	t.Setenv("BUILDKIT_SCAN_SOURCE", "")
	t.Setenv("BUILDKIT_SCAN_DESTINATION", "")
	err := buildkit(context.Background())
	if err == nil || !strings.Contains(err.Error(), "BUILDKIT_SCAN_SOURCE and BUILDKIT_SCAN_DESTINATION must be set") {
		t.Fatalf("want a clear error, got %v", err)
	}
}

// One statement per root filesystem, named after it, with BuildKit's
// in-toto envelope (subject left to BuildKit).
func TestBuildKitProtocolWritesStatements(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write(t, src, "package/admin/s6-rc-0.6.1.0/command/s6-rc", "x")
	t.Setenv("BUILDKIT_SCAN_SOURCE", src)
	t.Setenv("BUILDKIT_SCAN_DESTINATION", dst)
	t.Setenv("BUILDKIT_SCAN_SOURCE_EXTRAS", "")
	if err := buildkit(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, filepath.Base(src)+".spdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st statement
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != statementType || st.PredicateType != predicateSPDX {
		t.Errorf("statement %q / %q", st.Type, st.PredicateType)
	}
	var d spdx
	if err := json.Unmarshal(st.Predicate, &d); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d.purls(), "pkg:generic/skarnet.org/s6-rc@0.6.1.0") {
		t.Errorf("the statement's SBOM lacks s6-rc: %v", d.purls())
	}
}
