package stage

// More of what s6-rc-compile refuses (s6-rc@v0.6.1.0
// src/s6-rc/s6-rc-compile.c), each with its reason, and nothing laid: no
// scan directory entry, no live directory, no compiled service directory.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func longrunAt(t *testing.T, rcd, name string) {
	t.Helper()
	write(t, filepath.Join(rcd, name, "type"), "longrun\n", 0o644)
	write(t, filepath.Join(rcd, name, "run"), "#!/bin/sh\n", 0o755)
}

func TestLayServicesRefusesBadSourcesAndLaysNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, rcd string)
		err   string
	}{
		{"control character in a name", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "bad\tname")
		}, `identifier "bad\tname" contains a control character, a quote or a backslash`},
		{"quote in a name", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, `say"hi`)
		}, "contains a control character, a quote or a backslash"},
		{"s6-rc- prefix", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "s6-rc-mine")
		}, "identifier s6-rc-mine starts with reserved prefix"},
		{"unknown type", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "svc", "type"), "daemon\n", 0o644)
		}, "svc/type: must be oneshot, longrun, or bundle"},
		{"unreadable type", func(t *testing.T, rcd string) {
			assert.NilError(t, os.MkdirAll(filepath.Join(rcd, "svc", "type"), 0o755))
		}, "unable to read " + "RCD/svc/type: "},
		{"run is a directory", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "svc", "type"), "longrun\n", 0o644)
			assert.NilError(t, os.MkdirAll(filepath.Join(rcd, "svc", "run"), 0o755))
		}, "svc/run is not a regular file"},
		{"two producer-for names", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "svc")
			write(t, filepath.Join(rcd, "svc", "producer-for"), "a\nb\n", 0o644)
		}, "svc/producer-for should only contain one service name"},
		{"two pipeline names", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "svc")
			longrunAt(t, rcd, "svc-log")
			write(t, filepath.Join(rcd, "svc", "producer-for"), "svc-log\n", 0o644)
			write(t, filepath.Join(rcd, "svc-log", "consumer-for"), "svc\n", 0o644)
			write(t, filepath.Join(rcd, "svc-log", "pipeline-name"), "p1\np2\n", 0o644)
		}, "svc-log/pipeline-name should only contain one name"},
		{"pipeline named like a service", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "svc")
			longrunAt(t, rcd, "svc-log")
			write(t, filepath.Join(rcd, "svc", "producer-for"), "svc-log\n", 0o644)
			write(t, filepath.Join(rcd, "svc-log", "consumer-for"), "svc\n", 0o644)
			write(t, filepath.Join(rcd, "svc-log", "pipeline-name"), "svc\n", 0o644)
		}, "duplicate service definition: pipeline svc of svc-log is already defined"},
		{"pipeline with a reserved name", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "svc")
			longrunAt(t, rcd, "svc-log")
			write(t, filepath.Join(rcd, "svc", "producer-for"), "svc-log\n", 0o644)
			write(t, filepath.Join(rcd, "svc-log", "consumer-for"), "svc\n", 0o644)
			write(t, filepath.Join(rcd, "svc-log", "pipeline-name"), "s6rc-pipe\n", 0o644)
		}, "identifier s6rc-pipe starts with reserved prefix"},
		{"consumer of a oneshot", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "once", "type"), "oneshot\n", 0o644)
			write(t, filepath.Join(rcd, "once", "up"), "true\n", 0o644)
			longrunAt(t, rcd, "svc-log")
			write(t, filepath.Join(rcd, "svc-log", "consumer-for"), "once\n", 0o644)
		}, "longrun service svc-log declares being the consumer for a service named once of type oneshot"},
		{"consumer whose producer does not declare it", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "svc")
			longrunAt(t, rcd, "svc-log")
			write(t, filepath.Join(rcd, "svc-log", "consumer-for"), "svc\n", 0o644)
		}, "longrun service svc-log declares a producer svc that does not declare it back"},
		{"producer for a bundle", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "svc")
			write(t, filepath.Join(rcd, "svc", "producer-for"), "user\n", 0o644)
		}, "declares being a producer for a service named user of type bundle"},
		{"bundle of nothing known", func(t *testing.T, rcd string) {
			write(t, filepath.Join(rcd, "mine", "type"), "bundle\n", 0o644)
			write(t, filepath.Join(rcd, "mine", "contents.d", "ghost"), "", 0o644)
		}, "during resolution of bundle mine: undefined service name ghost"},
		{"user bundle entry of nothing known", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "svc")
			write(t, filepath.Join(filepath.Dir(rcd), "user-bundles.d", "user", "contents.d", "ghost"), "", 0o644)
		}, "during resolution of bundle user: undefined service name ghost"},
		{"bad timeout-up", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "svc")
			write(t, filepath.Join(rcd, "svc", "timeout-up"), "soon\n", 0o644)
		}, "invalid RCD/svc/timeout-up"},
		{"negative timeout-up", func(t *testing.T, rcd string) {
			longrunAt(t, rcd, "svc")
			write(t, filepath.Join(rcd, "svc", "timeout-up"), "-1\n", 0o644)
		}, "invalid RCD/svc/timeout-up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := testPaths(t, "/command")
			tc.setup(t, p.RcD)
			err := LayServices(p)
			assert.Check(t, is.ErrorContains(err, strings.Replace(tc.err, "RCD", p.RcD, 1)))
			for _, d := range []string{p.ScanDir, p.LiveDir, p.DB} {
				_, statErr := os.Stat(d)
				assert.Check(t, os.IsNotExist(statErr), "%s laid for a refused source", d)
			}
		})
	}
}
