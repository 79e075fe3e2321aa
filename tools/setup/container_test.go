package setup

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// paths is a container's setup paths in a temporary directory.
func paths(t *testing.T) Paths {
	t.Helper()
	root := t.TempDir()
	p, g := etc(t)
	ps := Paths{Passwd: p, Group: g, Run: filepath.Join(root, "run"), ScanDir: filepath.Join(root, "run", "service"),
		RunHermes: filepath.Join(root, "run", "hermes"), Home: filepath.Join(root, "data")}
	assert.NilError(t, os.MkdirAll(ps.ScanDir, 0o777))
	assert.NilError(t, os.Chmod(ps.Run, os.ModeSticky|0o777))
	assert.NilError(t, os.Mkdir(ps.Home, 0o755))
	return ps
}

func TestContainerAsRootRemapsAndPreparesTheHome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	p := paths(t)
	env := map[string]string{"HERMES_UID": "20000", "PGID": "30000"}
	var log bytes.Buffer
	code := Container(p, 0, 0, func(k string) string { return env[k] }, &log)
	assert.Check(t, is.Equal(code, 0), log.String())
	assert.Check(t, is.Contains(log.String(), "hermes-setup: hermes is uid 20000, gid 30000\n"))
	assert.Check(t, is.Contains(read(t, p.Passwd), "hermes:x:20000:30000:"))
	st, err := os.Stat(p.Run)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Mode().Perm()|st.Mode()&os.ModeSticky, os.FileMode(0o755)), "/run is root's alone")
	uid, gid := owner(t, p.Home)
	assert.Check(t, is.Equal(uid, 20000))
	assert.Check(t, is.Equal(gid, 30000))
	_, err = os.Stat(p.RunHermes)
	assert.Check(t, err)
}

func TestContainerAsAUserCannotRemapAndSaysSo(t *testing.T) {
	p := paths(t)
	before := read(t, p.Passwd)
	var log bytes.Buffer
	code := Container(p, 10000, 10000, func(k string) string { return map[string]string{"PUID": "20000"}[k] }, &log)
	assert.Check(t, is.Equal(code, 0))
	assert.Check(t, is.Contains(log.String(), "need root to remap the hermes user; the container runs as uid 10000, gid 10000: carrying on as that"))
	assert.Check(t, is.Equal(read(t, p.Passwd), before), "nothing rewritten")
	st, err := os.Stat(p.Run)
	assert.NilError(t, err)
	assert.Check(t, st.Mode()&os.ModeSticky != 0, "not root: /run left as it is")
	_, err = os.Stat(filepath.Join(p.Home, "profiles"))
	assert.Check(t, err, "the home's tree is made")
}

func TestContainerFailsWithoutAHermesAccount(t *testing.T) {
	p := paths(t)
	assert.NilError(t, os.WriteFile(p.Passwd, []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644))
	var log bytes.Buffer
	code := Container(p, 0, 0, func(string) string { return "" }, &log)
	if _, err := os.Stat("/etc/passwd"); err == nil && bytes.Contains(must(os.ReadFile("/etc/passwd")), []byte("\nhermes:")) {
		t.Skip("this host has a hermes account: the fallback finds it")
	}
	assert.Check(t, is.Equal(code, 1))
	assert.Check(t, is.Contains(log.String(), `hermes-setup: uid/gid remap: no user "hermes" in `+p.Passwd))
	assert.Check(t, is.Contains(log.String(), "hermes-setup: the hermes account: "))
}

func TestRemapRefusesAnAccountWithoutNumericIDs(t *testing.T) {
	p, g := etc(t)
	assert.NilError(t, os.WriteFile(p, []byte("hermes:x:abc:10000::/opt/data:/usr/sbin/nologin\n"), 0o644))
	_, err := Remap(p, g, "hermes", -1, -1)
	assert.Check(t, is.ErrorContains(err, `user "hermes" in `+p+": uid or gid is not a number"))
}

func TestDefaultPaths(t *testing.T) {
	p := DefaultPaths(func(k string) string { return map[string]string{"HERMES_HOME": "/srv/h"}[k] }, "/run/service")
	assert.Check(t, is.DeepEqual(p, Paths{Passwd: "/etc/passwd", Group: "/etc/group", Run: "/run", ScanDir: "/run/service", RunHermes: "/run/hermes", Home: "/srv/h"}))
}

func must(b []byte, err error) []byte {
	if err != nil {
		return nil
	}
	return b
}
