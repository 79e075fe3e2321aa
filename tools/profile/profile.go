// Package profile knows where a Hermes profile lives, what names are valid,
// and the desired state of its gateway, recorded atomically in the profile's
// state file so that it survives container restarts.
package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Default is the profile that lives directly in $HERMES_HOME.
const Default = "default"

// PidFile is the gateway's pid file in a profile directory.
const PidFile = "gateway.pid"

// validName: 1-63 of a-z, 0-9, '_', '-', the first a letter or digit.
// (A loop, not a regexp: compiling one at start-up costs every process of
// the multi-call binary, including the per-slot ones.)
func validName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Validate returns a clear error for a name that is not a valid profile name.
func Validate(name string) error {
	if !validName(name) {
		return fmt.Errorf("invalid profile name %q: use 1-63 characters a-z, 0-9, '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Home returns $HERMES_HOME from getenv, or /opt/data.
func Home(getenv func(string) string) string {
	if h := getenv("HERMES_HOME"); h != "" {
		return h
	}
	return "/opt/data"
}

// Dir is the directory of profile name under home.
func Dir(home, name string) string {
	if name == Default {
		return home
	}
	return filepath.Join(home, "profiles", name)
}

// Slot is the s6 slot that supervises the gateway of profile name.
func Slot(name string) string { return "gateway-" + name }

// FromSlot returns the profile of a gateway slot name.
func FromSlot(slot string) (string, bool) {
	name, ok := strings.CutPrefix(slot, "gateway-")
	return name, ok && Validate(name) == nil
}

// Exists reports whether the profile directory exists (default always does).
//
// A symlink is not a profile (the agent never makes one): it could lead
// root, which registers slots and records state, out of $HERMES_HOME.
func Exists(home, name string) bool {
	if name == Default {
		return true
	}
	st, err := os.Lstat(Dir(home, name))
	return err == nil && st.IsDir()
}

// List returns default and every valid profile directory name, sorted.
// Directories with invalid names are returned separately.
func List(home string) (names, invalid []string, err error) {
	names = []string{Default}
	entries, err := os.ReadDir(filepath.Join(home, "profiles"))
	if errors.Is(err, os.ErrNotExist) {
		return names, nil, nil
	}
	if err != nil {
		return names, nil, err
	}
	var rest []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if e.Name() == Default || Validate(e.Name()) != nil {
			invalid = append(invalid, e.Name())
			continue
		}
		rest = append(rest, e.Name())
	}
	sort.Strings(rest)
	return append(names, rest...), invalid, nil
}

// Desired is the state a profile's gateway should be in.
type Desired string

const (
	Running Desired = "running"
	Stopped Desired = "stopped"
)

// StateFile is the agent's runtime status file in a profile directory, which
// also carries the operator's intent, "desired_state" (hermes-agent
// 00067189, gateway/status.py _RUNTIME_STATUS_FILE; service_manager.py
// _write_gateway_desired_state). The gateway rewrites the file while it
// runs; the keys it does not know are kept (read, change, write back).
const StateFile = "gateway_state.json"

// LegacyStateFile is where hermes-s6 before 0.21.3 kept the desired state
// ({"desired": "running"}): still read, replaced on the next write.
const LegacyStateFile = "gateway.desired.json"

// ErrNoState is returned by ReadState when no state was ever recorded.
var ErrNoState = errors.New("no desired state recorded")

// ReadState reads the desired state of the profile in dir as the agent's
// container boot does (hermes_cli/container_boot.py _read_desired_state):
// "desired_state" if set, else the runtime "gateway_state" with draining and
// degraded counting as running; anything else is stopped. Without the file,
// the legacy file; without either, ErrNoState. A file that is not a JSON
// object, or says something unknown, is an error that says why.
func ReadState(home, name string) (Desired, error) {
	dir, err := OpenDir(home, name)
	if errors.Is(err, os.ErrNotExist) {
		return "", ErrNoState
	}
	if err != nil {
		return "", err
	}
	defer dir.Close()
	p := filepath.Join(Dir(home, name), StateFile)
	doc, err := readDoc(dir, StateFile, p)
	if errors.Is(err, os.ErrNotExist) {
		return readLegacy(dir, Dir(home, name))
	}
	if err != nil {
		return "", err
	}
	if v, ok := doc["desired_state"]; ok {
		var d Desired
		if json.Unmarshal(v, &d) != nil || (d != Running && d != Stopped) {
			return "", fmt.Errorf("corrupt state file %s: desired_state %s is neither \"running\" nor \"stopped\"", p, v)
		}
		return d, nil
	}
	if v, ok := doc["gateway_state"]; ok {
		var g string
		if json.Unmarshal(v, &g) != nil {
			return "", fmt.Errorf("corrupt state file %s: gateway_state %s is not a string", p, v)
		}
		switch g {
		case "running", "draining", "degraded":
			return Running, nil
		}
		return Stopped, nil
	}
	return readLegacy(dir, Dir(home, name))
}

// maxStateFile bounds what is read of a state file: the agent's are a few
// KiB; a larger one is not a state file.
const maxStateFile = 1 << 20

func readDoc(dir *os.Root, name, p string) (map[string]json.RawMessage, error) {
	f, err := dir.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("corrupt state file %s: larger than %d bytes", p, maxStateFile)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil || doc == nil {
		if err == nil {
			err = errors.New("not a JSON object")
		}
		return nil, fmt.Errorf("corrupt state file %s: %v", p, err)
	}
	return doc, nil
}

func readLegacy(dir *os.Root, path string) (Desired, error) {
	p := filepath.Join(path, LegacyStateFile)
	b, err := dir.ReadFile(LegacyStateFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", ErrNoState
	}
	if err != nil {
		return "", err
	}
	var doc struct {
		Desired Desired `json:"desired"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("corrupt state file %s: %v", p, err)
	}
	if doc.Desired != Running && doc.Desired != Stopped {
		return "", fmt.Errorf("corrupt state file %s: desired state %q is neither running nor stopped", p, doc.Desired)
	}
	return doc.Desired, nil
}

// WriteState records the desired state as the agent does: "desired_state"
// and "updated_at" (Unix seconds) set in the profile's state file, every
// other key kept (a file that is not a JSON object is replaced). Atomic: temp
// file, fsync, rename, fsync of the directory; a failed write leaves the
// previous file as it was. uid/gid >= 0 chown the file. The legacy file, if
// any, is removed afterwards.
func WriteState(home, name string, d Desired, uid, gid int) error {
	path := Dir(home, name)
	dir, err := OpenDir(home, name)
	if err != nil {
		return fmt.Errorf("recording desired state: %w", err)
	}
	defer dir.Close()
	doc, err := readDoc(dir, StateFile, filepath.Join(path, StateFile))
	if err != nil {
		doc = map[string]json.RawMessage{}
	}
	doc["desired_state"], _ = json.Marshal(d)
	doc["updated_at"], _ = json.Marshal(time.Now().Unix())
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf(".%s.%d.%d", StateFile, os.Getpid(), time.Now().UnixNano())
	f, err := dir.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("recording desired state in %s: %w", path, err)
	}
	fail := func(err error) error {
		f.Close()
		dir.Remove(tmp)
		return fmt.Errorf("recording desired state in %s: %w (%s left as it was)", path, err, StateFile)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := dir.Rename(tmp, StateFile); err != nil {
		dir.Remove(tmp)
		return fmt.Errorf("recording desired state in %s: %w", path, err)
	}
	if d, err := dir.Open("."); err == nil {
		d.Sync()
		d.Close()
	}
	dir.Remove(LegacyStateFile)
	return nil
}

// OpenDir opens the directory of profile name for reading and writing in it
// without ever leaving $HERMES_HOME: root does so (the reconciler, the
// front run by `docker exec` as root), and hermes owns everything below
// $HERMES_HOME, so any name there may be a symlink planted to make root
// write elsewhere. os.Root refuses paths that lead out of home. As root,
// home's parent must not be writable by anyone else (or home itself could
// be swapped for a symlink).
func OpenDir(home, name string) (*os.Root, error) {
	if os.Geteuid() == 0 {
		if err := rootsParent(home); err != nil {
			return nil, err
		}
	}
	h, err := os.OpenRoot(home)
	if err != nil {
		return nil, err
	}
	if name == Default {
		return h, nil
	}
	defer h.Close()
	return h.OpenRoot(filepath.Join("profiles", name))
}

func rootsParent(home string) error {
	st, err := os.Lstat(home)
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("HERMES_HOME %s is a symlink: refusing to write there as root", home)
	}
	parent := filepath.Dir(filepath.Clean(home))
	pst, err := os.Stat(parent)
	if err != nil {
		return err
	}
	sys, ok := pst.Sys().(*syscall.Stat_t)
	if ok && (sys.Uid != 0 || pst.Mode().Perm()&0o022 != 0) {
		return fmt.Errorf("HERMES_HOME's parent %s is not root's alone: refusing to write in HERMES_HOME as root", parent)
	}
	return nil
}

// Truthy is the strict truthiness of opt-out variables: 1, true, yes in any
// case. Everything else (0, false, no, empty, typos, spaces) is false.
func Truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// systemDirs are the directories of the image that HERMES_HOME may be
// neither equal to nor inside: setup hands HERMES_HOME to the hermes user,
// and whatever hermes owns, a prompt injection owns.
var systemDirs = []string{
	"/bin", "/boot", "/command", "/dev", "/etc", "/init", "/lib", "/lib32", "/lib64",
	"/libx32", "/opt/hermes", "/package", "/proc", "/root", "/run", "/sbin", "/sys",
	"/usr", "/var",
}

// sharedDirs hold other things than one user's data: HERMES_HOME may be
// inside them, never one of them.
var sharedDirs = []string{"/home", "/media", "/mnt", "/opt", "/srv", "/tmp"}

// CheckHome refuses a HERMES_HOME that is not an absolute path, that is the
// root directory, or that is (or is inside, or resolves through a symlink
// into) a system directory. An unset HERMES_HOME means /opt/data (Home).
func CheckHome(home string) error {
	if !filepath.IsAbs(home) {
		return fmt.Errorf("HERMES_HOME=%q is not an absolute path: refusing to use it (set it to a data directory such as /opt/data)", home)
	}
	paths := []string{filepath.Clean(home)}
	if real, err := filepath.EvalSymlinks(home); err == nil && real != paths[0] {
		paths = append(paths, real)
	}
	for _, p := range paths {
		if p == "/" {
			return fmt.Errorf("HERMES_HOME=%q is the root directory: refusing to give it to the hermes user (set it to a data directory such as /opt/data)", home)
		}
		for _, d := range sharedDirs {
			if p == d {
				return fmt.Errorf("HERMES_HOME=%q is %s, a shared directory: refusing to give it to the hermes user (use a directory of its own, such as /opt/data)", home, p)
			}
		}
		for _, d := range systemDirs {
			if p == d || strings.HasPrefix(p, d+"/") {
				return fmt.Errorf("HERMES_HOME=%q is %s, a system directory: refusing to give it to the hermes user (set it to a data directory such as /opt/data)", home, describe(p, d))
			}
		}
	}
	return nil
}

func describe(p, d string) string {
	if p == d {
		return p
	}
	return "inside " + d + " (" + p + ")"
}
