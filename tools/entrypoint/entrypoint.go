// Package entrypoint is the CMD wrapper (S6_CMD_ARG0): it restores the
// container environment, refuses users other than root and hermes, drops
// root to hermes and runs the CMD: nothing → `hermes`; an executable on PATH
// → that executable; anything else → `hermes ARGS...`.
package entrypoint

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/hermes-agent/hermes-s6/tools/account"
	"github.com/hermes-agent/hermes-s6/tools/contenv"
)

// Front is the `hermes` command.
const Front = "/usr/local/bin/hermes"

// Plan is what the wrapper will exec.
type Plan struct {
	Path string
	Argv []string
}

// Resolve maps the CMD to the program to exec.
func Resolve(args []string, lookPath func(string) (string, error)) Plan {
	if len(args) == 0 {
		return Plan{Front, []string{account.Hermes}}
	}
	if p, err := lookPath(args[0]); err == nil {
		return Plan{p, args}
	}
	return Plan{Front, append([]string{account.Hermes}, args...)}
}

// Identity is who the wrapper runs as and who it may become.
type Identity struct {
	UID, GID    int
	HermesUID   int
	HermesGID   int
	HermesHome  string
	HermesKnown bool
}

// CheckUser returns the clear refusal for a --user other than root/hermes.
func CheckUser(id Identity) error {
	if id.UID == 0 || (id.HermesKnown && id.UID == id.HermesUID) {
		return nil
	}
	want := "10000:10000"
	if id.HermesKnown {
		want = fmt.Sprintf("%d:%d", id.HermesUID, id.HermesGID)
	}
	return fmt.Errorf("refusing to run as uid %d: run the container as root (the default; it drops to the hermes user) or as hermes (--user %s); remap hermes with HERMES_UID/HERMES_GID instead", id.UID, want)
}

// Process is what the wrapper does to its process: Host is the real one;
// tests use a fake, since the test process must neither be replaced nor lose
// root.
type Process interface {
	Getuid() int
	Getgid() int
	Lookup(name string) (account.Account, error)
	Become(account.Account) error
	Exec(path string, argv, env []string) error
}

// Host is this process.
type Host struct{}

func (Host) Getuid() int                                 { return os.Getuid() }
func (Host) Getgid() int                                 { return os.Getgid() }
func (Host) Lookup(name string) (account.Account, error) { return account.Lookup(name) }
func (Host) Become(a account.Account) error              { return a.Become() }
func (Host) Exec(path string, argv, env []string) error  { return syscall.Exec(path, argv, env) }

// Wrapper is the CMD wrapper on a process.
type Wrapper struct {
	Proc   Process
	Stderr io.Writer
}

// Main runs the wrapper with the container environment kept by stage 1;
// it returns only on error.
func Main(args []string) int {
	return Wrapper{Host{}, os.Stderr}.Run(args, contenv.Environ(os.Environ(), contenv.Dir))
}

// Run runs the CMD args with env as its environment; it returns only on
// error, with the exit code.
func (w Wrapper) Run(args []string, env []string) int {
	id := Identity{UID: w.Proc.Getuid(), GID: w.Proc.Getgid()}
	hermes, err := w.Proc.Lookup(account.Hermes)
	if err == nil {
		id.HermesUID, id.HermesGID, id.HermesHome, id.HermesKnown = hermes.UID, hermes.GID, hermes.Home, true
	}
	if err := CheckUser(id); err != nil {
		fmt.Fprintln(w.Stderr, "hermes:", err)
		return 1
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			os.Setenv("PATH", v)
		}
	}
	plan := Resolve(args, exec.LookPath)
	if id.UID == 0 && id.HermesKnown {
		env = setEnv(env, "HOME", id.HermesHome)
		env = setEnv(env, "USER", account.Hermes)
		if err := w.Proc.Become(hermes); err != nil {
			fmt.Fprintln(w.Stderr, "hermes: cannot drop to the hermes user:", err)
			return 1
		}
	}
	err = w.Proc.Exec(plan.Path, plan.Argv, env)
	fmt.Fprintf(w.Stderr, "hermes: cannot run %s: %v\n", plan.Argv[0], err)
	return 127
}

func setEnv(env []string, k, v string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, k+"=") {
			out = append(out, kv)
		}
	}
	return append(out, k+"="+v)
}
