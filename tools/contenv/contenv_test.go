package contenv

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestDumpReadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "container_environment")
	environ := []string{
		"SPACES=a value with  spaces",
		`QUOTES=it's "quoted" and \escaped`,
		"NEWLINES=line one\nline two\n\nline four",
		"EQUALS=a=b=c",
		"EMPTY=",
		"TRAILING=value\n\n",
		// Not variables a directory can hold: skipped.
		"NOEQUALS", "=nameless", "a/b=1", ".hidden=1",
	}
	assert.NilError(t, Dump(dir, environ))
	assert.NilError(t, os.Mkdir(filepath.Join(dir, "subdir"), 0o755))

	env, err := Read(dir)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(env, []string{
		"EMPTY=",
		"EQUALS=a=b=c",
		"NEWLINES=line one\nline two\n\nline four",
		`QUOTES=it's "quoted" and \escaped`,
		"SPACES=a value with  spaces",
		"TRAILING=value", // trailing newlines go, as with s6-envdir -L
	}))
}

func TestReadErrors(t *testing.T) {
	_, err := Read(filepath.Join(t.TempDir(), "missing"))
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist))

	dir := t.TempDir()
	assert.NilError(t, os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "DANGLING")))
	_, err = Read(dir)
	assert.Check(t, is.ErrorIs(err, os.ErrNotExist))

	file := filepath.Join(t.TempDir(), "file")
	assert.NilError(t, os.WriteFile(file, nil, 0o644))
	assert.Check(t, Dump(filepath.Join(file, "env"), []string{"A=1"}) != nil)
	assert.NilError(t, os.Mkdir(filepath.Join(dir, "A"), 0o755))
	assert.Check(t, Dump(dir, []string{"A=1"}) != nil, "A is a directory")
}

func TestEnviron(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, Dump(dir, []string{"FROM=container", "PATH=/container/bin"}))
	current := []string{"FROM=supervisor", "PATH=/command:/usr/bin"}

	assert.Check(t, is.DeepEqual(Environ(current, dir), []string{"FROM=container", "PATH=/container/bin"}))
	assert.Check(t, is.DeepEqual(Environ(append(current, "S6_KEEP_ENV=0"), dir), []string{"FROM=container", "PATH=/container/bin"}))
	keep := append(current, "S6_KEEP_ENV=1")
	assert.Check(t, is.DeepEqual(Environ(keep, dir), keep), "S6_KEEP_ENV=1 keeps the current environment")
	assert.Check(t, is.DeepEqual(Environ(current, filepath.Join(dir, "missing")), current), "no container environment: the current one")
}

func TestApply(t *testing.T) {
	t.Setenv("HERMES_TEST_GONE", "x")
	t.Setenv("PATH", os.Getenv("PATH")) // restored after the test
	Apply([]string{"HERMES_TEST_SET=a=b", "PATH=/bin"})
	assert.Check(t, is.Equal(os.Getenv("HERMES_TEST_SET"), "a=b"))
	assert.Check(t, is.Equal(os.Getenv("PATH"), "/bin"))
	_, gone := os.LookupEnv("HERMES_TEST_GONE")
	assert.Check(t, !gone, "the process environment is replaced, not merged")
	os.Unsetenv("HERMES_TEST_SET")
}
