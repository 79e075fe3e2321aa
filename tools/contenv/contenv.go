// Package contenv keeps the container environment across s6's clean
// process tree: stage 1 dumps it into a directory, one file per variable
// (as s6-overlay does), and whatever needs it later reads it back.
package contenv

import (
	"os"
	"path/filepath"
	"strings"
)

// Dir is where the container environment is kept.
const Dir = "/run/s6/container_environment"

// Dump writes one file per variable, as s6-linux-init -s does.
func Dump(dir string, environ []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, "/\x00") || k[0] == '.' {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Read reads an environment directory as with-contenv does (s6-envdir
// -Lf: whole files, trailing newlines removed).
func Read(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		env = append(env, e.Name()+"="+strings.TrimRight(string(b), "\n"))
	}
	return env, nil
}

// Environ is the environment of a program started under s6: the container
// environment kept in dir, as with-contenv gives it, unless S6_KEEP_ENV is
// set (to anything but 0) in current or dir cannot be read; then current.
func Environ(current []string, dir string) []string {
	for _, kv := range current {
		if v, ok := strings.CutPrefix(kv, "S6_KEEP_ENV="); ok && v != "" && v != "0" {
			return current
		}
	}
	env, err := Read(dir)
	if err != nil {
		return current
	}
	return env
}

// Apply makes env the process environment (for code that runs in this
// process rather than in a program it execs).
func Apply(env []string) {
	os.Clearenv()
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}
}

// ValidName reports whether k can name an environment variable in a run
// script: a letter or _, then letters, digits and _.
func ValidName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
