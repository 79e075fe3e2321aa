package standin

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

const defaultHermesHome = "/opt/data"

// profile is a named profile and the directory that holds its state.
type profile struct {
	name string
	dir  string
}

func hermesHome() string {
	if home := os.Getenv("HERMES_HOME"); home != "" {
		return home
	}
	return defaultHermesHome
}

func profilesDir() string { return filepath.Join(hermesHome(), "profiles") }

// resolveProfile maps a profile name to its directory; it does not touch the
// file system.
func resolveProfile(name string) (profile, error) {
	if err := validateProfileName(name); err != nil {
		return profile{}, err
	}
	if name == defaultProfile {
		return profile{name: name, dir: hermesHome()}, nil
	}
	return profile{name: name, dir: filepath.Join(profilesDir(), name)}, nil
}

// ensureDir creates the default profile directory if missing and requires
// any other profile directory to exist already (exit 78 otherwise).
func (p profile) ensureDir() error {
	if p.name == defaultProfile {
		if err := os.MkdirAll(p.dir, 0o750); err != nil {
			return failf(exitFailure, "cannot create HERMES_HOME: %v", err)
		}
		return nil
	}
	info, err := os.Stat(p.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return failf(exitConfig, "profile %q does not exist: no directory %s (create it with \"profile create %s\")", p.name, p.dir, p.name)
	case err != nil:
		return failf(exitConfig, "profile %q: %v", p.name, err)
	case !info.IsDir():
		return failf(exitConfig, "profile %q: %s is not a directory", p.name, p.dir)
	}
	return nil
}

func runProfile(args []string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return failf(exitUsage, "usage: %s profile create|delete NAME | profile list", Program)
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "list":
		if len(rest) != 0 {
			return failf(exitUsage, "usage: %s profile list", Program)
		}
		return listProfiles(stdout)
	case "create", "delete":
		if len(rest) != 1 {
			return failf(exitUsage, "usage: %s profile %s NAME", Program, sub)
		}
		p, err := resolveProfile(rest[0])
		if err != nil {
			return err
		}
		if p.name == defaultProfile {
			return failf(exitFailure, "profile %q is %s itself and cannot be %sd", p.name, p.dir, sub)
		}
		if sub == "create" {
			return createProfile(p, stdout)
		}
		return deleteProfile(p, stdout)
	default:
		return failf(exitUsage, "unknown command %q", "profile "+sub)
	}
}

func createProfile(p profile, stdout io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(p.dir), 0o750); err != nil {
		return failf(exitFailure, "cannot create profile %q: %v", p.name, err)
	}
	if err := os.Mkdir(p.dir, 0o750); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return failf(exitFailure, "profile %q already exists: %s", p.name, p.dir)
		}
		return failf(exitFailure, "cannot create profile %q: %v", p.name, err)
	}
	// Mkdir is subject to the umask; the contract promises 0750.
	if err := os.Chmod(p.dir, 0o750); err != nil {
		return failf(exitFailure, "cannot set mode of %s: %v", p.dir, err)
	}
	cfg := fmt.Sprintf("# %s profile %q: flat \"key: value\" lines; see \"%s --help\".\n", Program, p.name, Program)
	if err := os.WriteFile(filepath.Join(p.dir, "config.yaml"), []byte(cfg), 0o640); err != nil {
		return failf(exitFailure, "cannot write config of profile %q: %v", p.name, err)
	}
	fmt.Fprintf(stdout, "created profile %s at %s\n", p.name, p.dir)
	return nil
}

func deleteProfile(p profile, stdout io.Writer) error {
	info, err := os.Lstat(p.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return failf(exitFailure, "profile %q does not exist: no directory %s", p.name, p.dir)
	case err != nil:
		return failf(exitFailure, "cannot delete profile %q: %v", p.name, err)
	case !info.IsDir():
		return failf(exitFailure, "cannot delete profile %q: %s is not a directory", p.name, p.dir)
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return failf(exitFailure, "cannot delete profile %q: %v", p.name, err)
	}
	fmt.Fprintf(stdout, "deleted profile %s\n", p.name)
	return nil
}

func listProfiles(stdout io.Writer) error {
	names, err := profileNames()
	if err != nil {
		return failf(exitFailure, "cannot list profiles: %v", err)
	}
	for _, name := range names {
		fmt.Fprintln(stdout, name)
	}
	return nil
}

// profileNames returns "default" followed by the sorted names of the valid
// profile directories under $HERMES_HOME/profiles.
func profileNames() ([]string, error) {
	entries, err := os.ReadDir(profilesDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != defaultProfile && profileNamePattern.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return append([]string{defaultProfile}, names...), nil
}
