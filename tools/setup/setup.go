// Package setup is the first cont-init.d step: remap the hermes user's
// uid/gid, create the $HERMES_HOME tree for it, repair ownership on an
// allowlist of paths (never following symlinks, never touching anything
// else), and give the hermes group control of the s6 scan directory and of
// every slot.
package setup

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hermes-agent/hermes-s6/tools/account"
	"github.com/hermes-agent/hermes-s6/tools/profile"
)

// ParseID reads a uid/gid from the environment: a whole number in 1..2^31-2.
func ParseID(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 2147483646 {
		return 0, fmt.Errorf("%q is not a valid id (a whole number from 1 to 2147483646; 0 would be root)", v)
	}
	return n, nil
}

// WantedIDs returns the uid/gid asked for by HERMES_UID/PUID and
// HERMES_GID/PGID (HERMES_* win), -1 where nothing valid was asked.
func WantedIDs(getenv func(string) string, log io.Writer) (uid, gid int) {
	pick := func(keys ...string) int {
		for _, k := range keys {
			if v := getenv(k); v != "" {
				n, err := ParseID(v)
				if err != nil {
					fmt.Fprintf(log, "hermes-setup: ignoring %s: %v\n", k, err)
					return -1
				}
				return n
			}
		}
		return -1
	}
	return pick("HERMES_UID", "PUID"), pick("HERMES_GID", "PGID")
}

// Remap rewrites the account's uid in passwdFile and gid in groupFile
// (and the primary gid in passwd). -1 leaves a value alone.
func Remap(passwdFile, groupFile, name string, uid, gid int) (account.Account, error) {
	acc := account.Account{Name: name, UID: -1, GID: -1}
	if err := rewrite(passwdFile, func(f []string) []string {
		if len(f) >= 4 && f[0] == name {
			if uid >= 0 {
				f[2] = strconv.Itoa(uid)
			}
			if gid >= 0 {
				f[3] = strconv.Itoa(gid)
			}
			acc.UID, acc.GID = atoiOr(f[2], -2), atoiOr(f[3], -2)
		}
		return f
	}); err != nil {
		return acc, err
	}
	switch {
	case acc.UID == -1:
		return acc, fmt.Errorf("no user %q in %s", name, passwdFile)
	case acc.UID < 0 || acc.GID < 0:
		return acc, fmt.Errorf("user %q in %s: uid or gid is not a number", name, passwdFile)
	}
	if gid >= 0 {
		if err := rewrite(groupFile, func(f []string) []string {
			if len(f) >= 3 && f[0] == name {
				f[2] = strconv.Itoa(gid)
			}
			return f
		}); err != nil {
			return acc, err
		}
	}
	return acc, nil
}

func rewrite(path string, edit func([]string) []string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines[i] = strings.Join(edit(strings.Split(l, ":")), ":")
	}
	out := strings.Join(lines, "\n")
	if out == string(b) {
		return nil
	}
	// /etc may be read-only (--read-only): write in place only when changed.
	return os.WriteFile(path, []byte(out), 0o644)
}

// agentFiles are what the agent keeps in a profile's home, by name
// (hermes-agent 00067189: gateway/status.py, hermes_state, profiles.py;
// upstream's stage2 hook repairs the same list). A `docker exec` as root
// before hermes-s6 ran the agent as hermes could leave them root's.
var agentFiles = []string{
	".env", "config.yaml", "SOUL.md", "auth.json", "auth.lock", "active_profile",
	"state.db", "state.db-wal", "state.db-shm", "hermes_state.db",
	"response_store.db", "response_store.db-wal", "response_store.db-shm",
	"gateway.pid", "gateway.lock", "gateway_state.json", "gateway.desired.json", "processes.json",
}

// agentDirs are the agent's directories in a profile's home, repaired with
// everything below them (upstream's stage2 hook does the same).
var agentDirs = []string{
	"cron", "sessions", "memories", "skills", "skins", "hooks", "plans", "workspace", "home",
	"pairing", "platforms", "logs",
}

// Allowlist is the set of paths under $HERMES_HOME whose ownership is
// repaired (globs, relative to home; "DIR/**" is DIR and everything below
// it). Nothing else is ever chowned, and never through a symlink.
var Allowlist = allowlist()

func allowlist() []string {
	l := []string{".", "profiles", "profiles/*"}
	for _, prefix := range []string{"", "profiles/*/"} {
		for _, f := range agentFiles {
			l = append(l, prefix+f)
		}
		for _, d := range agentDirs {
			l = append(l, prefix+d+"/**")
		}
	}
	return l
}

// Tree creates the directories the gateways need.
var Tree = []string{"logs/gateways", "profiles"}

// MakeTree creates $HERMES_HOME's tree, inside home only. It is all a
// container run as --user (Kubernetes runAsUser) can do: no root to repair
// ownership with, and a volume the kubelet gave to its fsGroup.
func MakeTree(home string) error {
	if err := profile.CheckHome(home); err != nil {
		return err
	}
	root, err := profile.OpenDir(home, profile.Default)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, d := range Tree {
		if err := root.MkdirAll(d, 0o775); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(home, d), err)
		}
	}
	return nil
}

// PrepareHome creates the tree and repairs ownership on the allowlist.
// It returns the paths it changed. A home that is the root directory or a
// system directory is refused before anything is touched (profile.CheckHome).
func PrepareHome(home string, acc account.Account) ([]string, error) {
	if err := profile.CheckHome(home); err != nil {
		return nil, err
	}
	var changed []string
	if err := os.MkdirAll(home, 0o755); err != nil {
		return changed, err
	}
	// The tree is made inside home only: a symlink hermes left there
	// (logs -> /etc) must not make root create directories elsewhere.
	root, err := profile.OpenDir(home, profile.Default)
	if err != nil {
		return changed, err
	}
	defer root.Close()
	for _, d := range Tree {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return changed, fmt.Errorf("%s: %w", filepath.Join(home, d), err)
		}
	}
	for _, pattern := range Allowlist {
		matches := expand(home, pattern)
		for _, p := range matches {
			st, err := os.Lstat(p)
			if err != nil || st.Mode()&os.ModeSymlink != 0 || throughSymlink(home, p) {
				continue // never follow or chown symlinks
			}
			sys, ok := st.Sys().(*syscall.Stat_t)
			if !ok || (int(sys.Uid) == acc.UID && int(sys.Gid) == acc.GID) {
				continue
			}
			if err := os.Lchown(p, acc.UID, acc.GID); err != nil {
				return changed, fmt.Errorf("chown %s: %w", p, err)
			}
			changed = append(changed, p)
		}
	}
	return changed, nil
}

// expand lists what pattern names under home; "DIR/**" walks DIR without
// following symlinks (they are listed, and skipped by the caller).
func expand(home, pattern string) []string {
	dir, recursive := strings.CutSuffix(pattern, "/**")
	matches, _ := filepath.Glob(filepath.Join(home, dir))
	if !recursive {
		return matches
	}
	var out []string
	for _, m := range matches {
		filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			out = append(out, p)
			return nil
		})
	}
	return out
}

// throughSymlink reports whether p is reached from home through a symlinked
// directory (a glob such as profiles/*/gateway.pid matches through one).
func throughSymlink(home, p string) bool {
	rel, err := filepath.Rel(home, p)
	if err != nil {
		return true
	}
	dir := home
	parts := strings.Split(rel, string(filepath.Separator))
	for _, part := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, part)
		if st, err := os.Lstat(dir); err != nil || st.Mode()&os.ModeSymlink != 0 {
			return true
		}
	}
	return false
}

// RootOnly makes each directory root's and 0755, for a process running as
// root: the paths where root creates and reads what s6 executes (/run, the
// scan directory) must not be writable by anyone else. A symlink is refused:
// it is not what s6-overlay or the stage layer made. Not root: nothing to do
// (a container run as --user has no root to protect).
func RootOnly(euid int, dirs ...string) error {
	if euid != 0 {
		return nil
	}
	for _, d := range dirs {
		st, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory (%s)", d, st.Mode().Type())
		}
		if err := os.Lchown(d, 0, 0); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// atoiOr is s as a number, or bad when it is not one.
func atoiOr(s string, bad int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return bad
	}
	return n
}
