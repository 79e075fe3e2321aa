// Package s6test starts a real s6-svscan on a temporary scan directory for
// tests, and leaves no process behind when the test ends.
package s6test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Scan is a live s6-svscan on Dir, with HERMES_HOME set to Home for its services.
type Scan struct {
	Dir  string
	Home string
}

// Need skips a test that runs s6 programs when s6 is not installed.
func Need(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("s6-svscan"); err != nil {
		t.Skip("s6 is not installed (apt-get install s6): ", err)
	}
}

// Start starts s6-svscan (skipping the test when s6 is not installed) and
// registers its shutdown: s6-svscanctl -t, then every process still running
// from under the test's directories is killed.
func Start(t testing.TB) Scan {
	t.Helper()
	Need(t)
	root := t.TempDir()
	s := Scan{Dir: filepath.Join(root, "service"), Home: filepath.Join(root, "home")}
	for _, d := range []string{s.Dir, s.Home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("s6-svscan", s.Dir)
	cmd.Env = append(os.Environ(), "HERMES_HOME="+s.Home)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		exec.Command("s6-svscanctl", "-t", s.Dir).Run()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
		KillUnder(root)
	})
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("s6-svscanctl", "-a", s.Dir).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatal("s6-svscan did not start within 30s")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	return s
}

// KillUnder kills every process whose working directory or command line
// is under root.
func KillUnder(root string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.HasPrefix(cwd, root) || strings.Contains(string(cmdline), root) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

var tool struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Tool returns the path of a hermes-s6 binary built from this tree, once
// per test process: rendered run scripts exec it (slot-exec, slot-log).
// Packages that use it remove it after their tests with Main.
func Tool(t testing.TB) string {
	t.Helper()
	tool.once.Do(func() {
		if tool.dir, tool.err = os.MkdirTemp("", "hermes-s6-tool-"); tool.err != nil {
			return
		}
		tool.path = filepath.Join(tool.dir, "hermes-s6")
		out, err := exec.Command("go", "build", "-o", tool.path, "github.com/hermes-agent/hermes-s6/tools/cmd/hermes-s6").CombinedOutput()
		if err != nil {
			tool.err = fmt.Errorf("go build hermes-s6: %v\n%s", err, out)
		}
	})
	if tool.err != nil {
		t.Fatal(tool.err)
	}
	return tool.path
}

// Main runs the package's tests, then removes what Tool built.
func Main(m *testing.M) {
	code := m.Run()
	if tool.dir != "" {
		os.RemoveAll(tool.dir)
	}
	os.Exit(code)
}
