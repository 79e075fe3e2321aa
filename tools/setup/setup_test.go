package setup

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/account"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseID(t *testing.T) {
	for v, want := range map[string]int{"1": 1, "10000": 10000, "2147483646": 2147483646} {
		n, err := ParseID(v)
		assert.Check(t, err, v)
		assert.Check(t, is.Equal(n, want))
	}
	for _, v := range []string{"0", "-1", "2147483647", "99999999999", "", "abc", " 5", "1e3", "10000 "} {
		_, err := ParseID(v)
		assert.Check(t, is.ErrorContains(err, "is not a valid id (a whole number from 1 to 2147483646; 0 would be root)"), "%q", v)
	}
}

func TestWantedIDs(t *testing.T) {
	for _, tc := range []struct {
		env      map[string]string
		uid, gid int
		log      string
	}{
		{nil, -1, -1, ""},
		{map[string]string{"PUID": "1001", "PGID": "1002"}, 1001, 1002, ""},
		{map[string]string{"HERMES_UID": "2001", "PUID": "1001", "PGID": "1002"}, 2001, 1002, ""},
		{map[string]string{"HERMES_GID": "2002", "PGID": "1002"}, -1, 2002, ""},
		{map[string]string{"HERMES_UID": "0", "PUID": "1001"}, -1, -1, `hermes-setup: ignoring HERMES_UID: "0" is not a valid id`},
		{map[string]string{"PGID": "staff"}, -1, -1, `hermes-setup: ignoring PGID: "staff" is not a valid id`},
	} {
		var log bytes.Buffer
		uid, gid := WantedIDs(func(k string) string { return tc.env[k] }, &log)
		assert.Check(t, is.Equal(uid, tc.uid), "%v", tc.env)
		assert.Check(t, is.Equal(gid, tc.gid), "%v", tc.env)
		if tc.log == "" {
			assert.Check(t, is.Equal(log.String(), ""))
		} else {
			assert.Check(t, is.Contains(log.String(), tc.log))
		}
	}
}

const passwd = `# users
root:x:0:0:root:/root:/bin/bash
hermes:x:10000:10000:Hermes:/opt/data:/usr/sbin/nologin
hermesx:x:10001:10001::/home/hermesx:/bin/sh
`

const group = `root:x:0:
hermes:x:10000:
hermesx:x:10001:
`

func etc(t *testing.T) (string, string) {
	dir := t.TempDir()
	p, g := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	assert.NilError(t, os.WriteFile(p, []byte(passwd), 0o644))
	assert.NilError(t, os.WriteFile(g, []byte(group), 0o644))
	return p, g
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	assert.NilError(t, err)
	return string(b)
}

func TestRemap(t *testing.T) {
	p, g := etc(t)
	acc, err := Remap(p, g, "hermes", 20000, 30000)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(acc, account.Account{Name: "hermes", UID: 20000, GID: 30000}))
	assert.Check(t, is.Equal(read(t, p), strings.Replace(passwd, "hermes:x:10000:10000:", "hermes:x:20000:30000:", 1)))
	assert.Check(t, is.Equal(read(t, g), strings.Replace(group, "hermes:x:10000:", "hermes:x:30000:", 1)))
}

func TestRemapUIDOnlyLeavesTheGroupFileAlone(t *testing.T) {
	p, g := etc(t)
	assert.NilError(t, os.Remove(g))
	acc, err := Remap(p, g, "hermes", 20000, -1)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(acc, account.Account{Name: "hermes", UID: 20000, GID: 10000}))
	assert.Check(t, is.Contains(read(t, p), "\nhermes:x:20000:10000:"))
}

func TestRemapNothingWritesNothing(t *testing.T) {
	// /etc may be read-only: unchanged files are not written at all.
	p, g := etc(t)
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range []string{p, g} {
		assert.NilError(t, os.Chtimes(f, past, past))
	}
	acc, err := Remap(p, g, "hermes", -1, -1)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(acc, account.Account{Name: "hermes", UID: 10000, GID: 10000}))
	acc, err = Remap(p, g, "hermes", 10000, 10000)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(acc, account.Account{Name: "hermes", UID: 10000, GID: 10000}))
	for _, f := range []string{p, g} {
		st, err := os.Stat(f)
		assert.NilError(t, err)
		assert.Check(t, st.ModTime().Equal(past), "%s was written", f)
	}
}

func TestRemapErrors(t *testing.T) {
	p, g := etc(t)
	_, err := Remap(p, g, "nobody-here", 1, 1)
	assert.Check(t, is.ErrorContains(err, `no user "nobody-here" in `+p))
	_, err = Remap(filepath.Join(t.TempDir(), "passwd"), g, "hermes", 1, 1)
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist))
	assert.NilError(t, os.Remove(g))
	_, err = Remap(p, g, "hermes", 1, 1)
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist))
}

func owner(t *testing.T, p string) (int, int) {
	t.Helper()
	st, err := os.Lstat(p)
	assert.NilError(t, err, p)
	sys := st.Sys().(*syscall.Stat_t)
	return int(sys.Uid), int(sys.Gid)
}

func touch(t *testing.T, p string) {
	t.Helper()
	assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	assert.NilError(t, os.WriteFile(p, nil, 0o644))
}

func TestPrepareHome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	acc := account.Account{Name: "hermes", UID: 12345, GID: 23456}
	home := filepath.Join(t.TempDir(), "data")

	// An empty volume gets the tree, all of it for hermes.
	changed, err := PrepareHome(home, acc)
	assert.NilError(t, err)
	sort.Strings(changed)
	assert.Check(t, is.DeepEqual(changed, []string{home, filepath.Join(home, "logs"), filepath.Join(home, "logs/gateways"), filepath.Join(home, "profiles")}))

	// Files root left behind: allowlisted ones are repaired, others not.
	for _, p := range []string{"logs/container-boot.log", "logs/gateways/work/current", "profiles/work/gateway_state.json",
		"profiles/work/gateway.pid", "gateway.pid", "notes.txt", "profiles/work/backups/a.md", "profiles/work/skills/a.md",
		".env", "auth.json", "state.db", "cron/jobs.json"} {
		touch(t, filepath.Join(home, p))
	}
	// Symlinks pointing out of the volume, where allowlisted names are.
	outside := t.TempDir()
	touch(t, filepath.Join(outside, "gateway_state.json"))
	touch(t, filepath.Join(outside, "gateway.pid"))
	touch(t, filepath.Join(outside, "current"))
	assert.NilError(t, os.Symlink(filepath.Join(outside, "gateway_state.json"), filepath.Join(home, "gateway_state.json")))
	assert.NilError(t, os.Symlink(outside, filepath.Join(home, "sessions")))
	assert.NilError(t, os.Symlink(outside, filepath.Join(home, "profiles", "evil")))
	assert.NilError(t, os.Symlink(outside, filepath.Join(home, "logs", "gateways", "evil")))

	changed, err = PrepareHome(home, acc)
	assert.NilError(t, err)
	sort.Strings(changed)
	var want []string
	for _, p := range []string{".env", "auth.json", "cron", "cron/jobs.json", "gateway.pid", "logs/container-boot.log", "logs/gateways/work", "logs/gateways/work/current",
		"profiles/work", "profiles/work/gateway.pid", "profiles/work/gateway_state.json", "profiles/work/skills", "profiles/work/skills/a.md", "state.db"} {
		want = append(want, filepath.Join(home, p))
	}
	assert.Check(t, is.DeepEqual(changed, want))
	for _, p := range want {
		uid, gid := owner(t, p)
		assert.Check(t, uid == acc.UID && gid == acc.GID, "%s is %d:%d", p, uid, gid)
	}
	for _, p := range []string{"notes.txt", "profiles/work/backups", "profiles/work/backups/a.md",
		"gateway_state.json", "sessions", "profiles/evil", "logs/gateways/evil"} {
		uid, gid := owner(t, filepath.Join(home, p))
		assert.Check(t, uid == 0 && gid == 0, "%s must be left alone, is %d:%d", p, uid, gid)
	}
	for _, p := range []string{"", "gateway_state.json", "gateway.pid", "current"} {
		uid, gid := owner(t, filepath.Join(outside, p))
		assert.Check(t, uid == 0 && gid == 0, "outside/%s must never be touched, is %d:%d", p, uid, gid)
	}

	// Once repaired, nothing changes.
	changed, err = PrepareHome(home, acc)
	assert.NilError(t, err)
	assert.Check(t, is.Len(changed, 0))
}

func TestPrepareHomeChownFailure(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may chown anything")
	}
	_, err := PrepareHome(t.TempDir(), account.Account{UID: 1, GID: 1})
	assert.Check(t, is.ErrorContains(err, "chown "))
}

func TestRootOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to root needs root")
	}
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	assert.NilError(t, os.Mkdir(run, 0o777))
	assert.NilError(t, os.Chmod(run, os.ModeSticky|0o777))
	assert.NilError(t, os.Chown(run, 4242, 4242))
	assert.NilError(t, RootOnly(0, run))
	st, err := os.Lstat(run)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode(), os.ModeDir|0o755))
	u, g := owner(t, run)
	assert.Check(t, is.Equal(u, 0))
	assert.Check(t, is.Equal(g, 0))

	// Not root: nothing to protect, nothing done.
	assert.NilError(t, os.Chmod(run, 0o777))
	assert.NilError(t, RootOnly(10000, run))
	st, _ = os.Lstat(run)
	assert.Check(t, is.Equal(st.Mode(), os.ModeDir|0o777))

	// A symlink or a file is refused, and left alone.
	link := filepath.Join(dir, "link")
	assert.NilError(t, os.Symlink(run, link))
	assert.Check(t, is.ErrorContains(RootOnly(0, link), "is not a directory"))
	st, _ = os.Lstat(run)
	assert.Check(t, is.Equal(st.Mode(), os.ModeDir|0o777), "the target is untouched")
	assert.Check(t, is.ErrorIs(RootOnly(0, filepath.Join(dir, "missing")), os.ErrNotExist))
}

func TestPrepareHomeRefusesSystemDirectories(t *testing.T) {
	for _, home := range []string{"/", "/etc", "/etc/hermes", "/usr/local", "/run", "relative"} {
		before, err := os.Lstat(filepath.Clean("/" + home))
		changed, err2 := PrepareHome(home, account.Account{Name: "hermes", UID: 4242, GID: 4242})
		assert.Check(t, is.ErrorContains(err2, "refusing"), home)
		assert.Check(t, is.Len(changed, 0), home)
		if err == nil {
			after, err := os.Lstat(filepath.Clean("/" + home))
			assert.NilError(t, err)
			assert.Check(t, is.DeepEqual(after.Sys(), before.Sys()), "%s unchanged", home)
		}
	}
	// Through a symlink into one: refused too.
	link := filepath.Join(t.TempDir(), "data")
	assert.NilError(t, os.Symlink("/etc", link))
	_, err := PrepareHome(link, account.Account{Name: "hermes", UID: 4242, GID: 4242})
	assert.Check(t, is.ErrorContains(err, `is /etc, a system directory`))
}

func TestPrepareHomeMakesItsTreeInsideHomeOnly(t *testing.T) {
	home, outside := filepath.Join(t.TempDir(), "data"), t.TempDir()
	assert.NilError(t, os.MkdirAll(home, 0o755))
	assert.NilError(t, os.Symlink(outside, filepath.Join(home, "logs")))
	_, err := PrepareHome(home, account.Account{Name: "hermes", UID: os.Getuid(), GID: os.Getgid()})
	assert.Check(t, err != nil, "logs/gateways cannot be made through a symlink out of home")
	_, err = os.Stat(filepath.Join(outside, "gateways"))
	assert.Check(t, os.IsNotExist(err), "nothing made outside home")
}

func TestMakeTree(t *testing.T) {
	home := filepath.Join(t.TempDir(), "data")
	assert.NilError(t, os.Mkdir(home, 0o755))
	assert.NilError(t, MakeTree(home))
	for _, d := range Tree {
		st, err := os.Stat(filepath.Join(home, d))
		assert.NilError(t, err)
		assert.Check(t, st.IsDir(), d)
	}
	assert.Check(t, is.ErrorContains(MakeTree("/etc"), "refusing"))
}
