package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestValidate(t *testing.T) {
	for _, ok := range []string{"default", "a", "0", "work", "a_b-c", strings.Repeat("a", 63)} {
		assert.Check(t, Validate(ok), ok)
	}
	for _, bad := range []string{"", "../x", "A", "-x", "_x", strings.Repeat("a", 64), "a/b", "a b", "a.b", "é"} {
		assert.Check(t, is.ErrorContains(Validate(bad), "invalid profile name"), bad)
	}
}

func TestTruthy(t *testing.T) {
	for _, v := range []string{"1", "true", "TRUE", "True", "yes", "Yes", "YES"} {
		assert.Check(t, Truthy(v), "%q must opt out", v)
	}
	for _, v := range []string{"0", "false", "no", "", "ture", " 1", "1 ", "on", "y", "2"} {
		assert.Check(t, !Truthy(v), "%q must not opt out", v)
	}
}

func TestDirsAndSlots(t *testing.T) {
	assert.Equal(t, Dir("/h", "default"), "/h")
	assert.Equal(t, Dir("/h", "work"), "/h/profiles/work")
	assert.Equal(t, Slot("work"), "gateway-work")
	p, ok := FromSlot("gateway-work")
	assert.Check(t, ok && p == "work")
	_, ok = FromSlot("dashboard")
	assert.Check(t, !ok)
	_, ok = FromSlot("gateway-Bad")
	assert.Check(t, !ok)
	assert.Equal(t, Home(func(string) string { return "" }), "/opt/data")
	assert.Equal(t, Home(func(string) string { return "/x" }), "/x")
}

func TestList(t *testing.T) {
	home := t.TempDir()
	names, invalid, err := List(home)
	assert.NilError(t, err)
	assert.DeepEqual(t, names, []string{"default"})
	assert.Check(t, is.Len(invalid, 0))
	for _, d := range []string{"zeta", "alpha", "Bad", "default"} {
		assert.NilError(t, os.MkdirAll(filepath.Join(home, "profiles", d), 0o755))
	}
	assert.NilError(t, os.WriteFile(filepath.Join(home, "profiles", "file"), nil, 0o644))
	names, invalid, err = List(home)
	assert.NilError(t, err)
	assert.DeepEqual(t, names, []string{"default", "alpha", "zeta"})
	assert.DeepEqual(t, invalid, []string{"Bad", "default"})
	assert.Check(t, Exists(home, "alpha"))
	assert.Check(t, Exists(home, "default"))
	assert.Check(t, !Exists(home, "nope"))
}

func TestStateRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadState(dir, Default)
	assert.Check(t, errors.Is(err, ErrNoState))

	assert.NilError(t, WriteState(dir, Default, Running, -1, -1))
	d, err := ReadState(dir, Default)
	assert.NilError(t, err)
	assert.Equal(t, d, Running)
	assert.NilError(t, WriteState(dir, Default, Stopped, os.Getuid(), os.Getgid()))
	d, err = ReadState(dir, Default)
	assert.NilError(t, err)
	assert.Equal(t, d, Stopped)
	entries, _ := os.ReadDir(dir)
	assert.Check(t, is.Len(entries, 1), "no temp files left")

	assert.NilError(t, os.WriteFile(filepath.Join(dir, StateFile), []byte("{garbage"), 0o644))
	_, err = ReadState(dir, Default)
	assert.Check(t, is.ErrorContains(err, "corrupt state file"))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"desired_state":"sideways"}`), 0o644))
	_, err = ReadState(dir, Default)
	assert.Check(t, is.ErrorContains(err, `desired_state "sideways" is neither "running" nor "stopped"`))
	for _, bad := range []string{"", "[]", "null", "42", "\x00\x01binary"} {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, StateFile), []byte(bad), 0o644))
		_, err = ReadState(dir, Default)
		assert.Check(t, is.ErrorContains(err, "corrupt state file"), "%q", bad)
	}
	assert.NilError(t, os.WriteFile(filepath.Join(dir, StateFile), bytes.Repeat([]byte(" "), 2<<20), 0o644))
	_, err = ReadState(dir, Default)
	assert.Check(t, is.ErrorContains(err, "larger than"))

	err = WriteState(filepath.Join(dir, "missing"), Default, Running, -1, -1)
	assert.Check(t, is.ErrorContains(err, "recording desired state"))
}

func TestCheckHome(t *testing.T) {
	for _, ok := range []string{"/opt/data", "/data", "/home/me/hermes", "/srv/hermes", "/opt/data/"} {
		assert.Check(t, CheckHome(ok), ok)
	}
	for home, want := range map[string]string{
		"/":                   "is the root directory",
		"//":                  "is the root directory",
		"/etc":                "is /etc, a system directory",
		"/etc/":               "is /etc, a system directory",
		"/etc/hermes":         "is inside /etc (/etc/hermes), a system directory",
		"/usr/local/x":        "inside /usr",
		"/run":                "is /run, a system directory",
		"/opt/hermes":         "is /opt/hermes, a system directory",
		"/var/lib/x":          "inside /var",
		"/opt":                "is /opt, a shared directory",
		"/tmp":                "is /tmp, a shared directory",
		"opt/data":            "is not an absolute path",
		"":                    "is not an absolute path",
		"/opt/data/../../etc": "is /etc, a system directory",
	} {
		assert.Check(t, is.ErrorContains(CheckHome(home), want), home)
	}
	link := filepath.Join(t.TempDir(), "data")
	assert.NilError(t, os.Symlink("/usr/lib", link))
	assert.Check(t, is.ErrorContains(CheckHome(link), "inside /usr"), "through a symlink")
}

func TestStateIsTheAgentsFile(t *testing.T) {
	// A volume written by the upstream image: the gateway's runtime record,
	// with or without the operator's desired_state
	// (hermes_cli/container_boot.py _read_desired_state).
	dir := t.TempDir()
	for doc, want := range map[string]Desired{
		`{"pid":7,"gateway_state":"running","platforms":{}}`:    Running,
		`{"gateway_state":"draining"}`:                          Running,
		`{"gateway_state":"degraded"}`:                          Running,
		`{"gateway_state":"stopped"}`:                           Stopped,
		`{"gateway_state":"startup_failed"}`:                    Stopped,
		`{"gateway_state":"starting"}`:                          Stopped,
		`{"gateway_state":"running","desired_state":"stopped"}`: Stopped,
		`{"gateway_state":"stopped","desired_state":"running"}`: Running,
		`{"gateway_state":"running","desired_state":"running","timestamp":1,"migrated_from":"legacy-container-cmd"}`: Running,
	} {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, StateFile), []byte(doc), 0o644))
		d, err := ReadState(dir, Default)
		assert.NilError(t, err, doc)
		assert.Check(t, is.Equal(d, want), doc)
	}

	// A write keeps what the gateway wrote and sets the intent.
	assert.NilError(t, os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"pid":7,"gateway_state":"running","platforms":{"telegram":{"state":"connected"}}}`), 0o644))
	assert.NilError(t, WriteState(dir, Default, Stopped, -1, -1))
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	assert.NilError(t, err)
	var doc map[string]any
	assert.NilError(t, json.Unmarshal(b, &doc))
	assert.Check(t, is.Equal(doc["desired_state"], "stopped"))
	assert.Check(t, is.Equal(doc["gateway_state"], "running"))
	assert.Check(t, is.Equal(doc["pid"], 7.0))
	assert.Check(t, is.DeepEqual(doc["platforms"], map[string]any{"telegram": map[string]any{"state": "connected"}}))
	_, isNumber := doc["updated_at"].(float64)
	assert.Check(t, isNumber, "updated_at is Unix seconds, as the agent writes it: %v", doc["updated_at"])
}

func TestLegacyStateIsReadAndReplaced(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, LegacyStateFile), []byte(`{"desired":"running","updated":"2026-01-01T00:00:00Z"}`), 0o644))
	d, err := ReadState(dir, Default)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(d, Running))
	assert.NilError(t, WriteState(dir, Default, Stopped, -1, -1))
	_, err = os.Stat(filepath.Join(dir, LegacyStateFile))
	assert.Check(t, os.IsNotExist(err), "the legacy file is gone once the agent's file has the state")
	d, err = ReadState(dir, Default)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(d, Stopped))
}

func TestStateNeverLeavesHome(t *testing.T) {
	// hermes owns everything below HERMES_HOME; root (the reconciler, the
	// front under `docker exec` as root) must not be led out of it.
	home, outside := t.TempDir(), t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(home, "profiles"), 0o755))
	assert.NilError(t, os.Symlink(outside, filepath.Join(home, "profiles", "evil")))
	err := WriteState(home, "evil", Running, -1, -1)
	assert.Check(t, is.ErrorContains(err, "recording desired state"))
	entries, _ := os.ReadDir(outside)
	assert.Check(t, is.Len(entries, 0), "nothing written outside HERMES_HOME")

	// A state file that is a symlink out of home is neither read nor
	// replaced through.
	secret := filepath.Join(outside, "secret")
	assert.NilError(t, os.WriteFile(secret, []byte(`{"desired_state":"running"}`), 0o600))
	assert.NilError(t, os.Symlink(secret, filepath.Join(home, StateFile)))
	_, err = ReadState(home, Default)
	assert.Check(t, err != nil && !errors.Is(err, ErrNoState), "not read: %v", err)
	assert.NilError(t, WriteState(home, Default, Stopped, -1, -1))
	b, _ := os.ReadFile(secret)
	assert.Check(t, is.Equal(string(b), `{"desired_state":"running"}`), "the target is untouched")
	st, err := os.Lstat(filepath.Join(home, StateFile))
	assert.NilError(t, err)
	assert.Check(t, st.Mode().IsRegular(), "the symlink was replaced by the state file")
}

func TestOpenDirAsRootWantsARootOwnedParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the parent check applies to root")
	}
	parent := t.TempDir()
	home := filepath.Join(parent, "data")
	assert.NilError(t, os.Mkdir(home, 0o755))
	d, err := OpenDir(home, Default)
	assert.NilError(t, err)
	d.Close()
	// A parent hermes could write: home could be swapped for a symlink.
	assert.NilError(t, os.Chown(parent, 10000, 10000))
	_, err = OpenDir(home, Default)
	assert.Check(t, is.ErrorContains(err, "is not root's alone"))
	assert.NilError(t, os.Chown(parent, 0, 0))
	assert.NilError(t, os.Chmod(parent, 0o777))
	_, err = OpenDir(home, Default)
	assert.Check(t, is.ErrorContains(err, "is not root's alone"))
	assert.NilError(t, os.Chmod(parent, 0o700))
	// Home itself a symlink.
	link := filepath.Join(parent, "link")
	assert.NilError(t, os.Symlink(home, link))
	_, err = OpenDir(link, Default)
	assert.Check(t, is.ErrorContains(err, "is a symlink"))
}
