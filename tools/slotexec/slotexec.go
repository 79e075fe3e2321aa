// Package slotexec starts the program of a supervised slot, for its run
// scripts: one process instead of the chain with-contenv → env → s6-envdir
// → sh → id → s6-setuidgid that each script used to exec. Process creation
// is what a container starting fifty gateways spends its time on.
//
//	hermes-s6 slot-exec [-user NAME] [-env NAME=VALUE]... -- PROGRAM ARGS...
//
// The program gets the container environment (contenv.Environ), with each
// -env set over it (the recursion guard HERMES_S6_SUPERVISED_CHILD=1 is one),
// and its words expanded from that environment: ${NAME} and
// ${NAME:-default}, $$ for a literal $. Started as root, it runs as -user.
// A program that is a command of hermes-s6 itself (the `hermes` front, the
// readiness probe) runs in the same process instead of a new exec.
//
//	hermes-s6 slot-log [-user NAME] LOGNAME
//
// is a slot's logger: s6-log copying to docker logs and keeping a rotated,
// timestamped copy in $HERMES_HOME/logs/gateways/LOGNAME, created as -user;
// when that directory cannot be made, docker logs only, with a warning.
package slotexec

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/account"
	"github.com/hermes-agent/hermes-s6/tools/contenv"
)

// LogScript is what s6-log does with a slot's output: copy it to its own
// stdout (docker logs) and, when the directory exists, keep a TAI64N-stamped
// copy rotated at 1 MiB, ten archives.
var LogScript = []string{"1", "T", "s1048576", "n10"}

// Process is everything the commands touch, replaced in tests.
type Process struct {
	Environ func() []string
	Geteuid func() int
	Lookup  func(string) (account.Account, error)
	Become  func(account.Account) error
	Mkdir   func(string) error
	Exec    func(path string, argv, env []string) error
	Stderr  io.Writer
	EnvDir  string
	// InProcess, when not nil, returns how to run path+argv inside this
	// process, if path is this very binary and argv one of its commands
	// (the `hermes` front, the readiness probe): one Go start less per slot.
	// It runs with the program's environment as the process environment.
	InProcess func(path string, argv []string) func() int
	// FreeLog, when not nil, ends an orphaned s6-log holding the log
	// directory's lock and returns its pid (FreeLogDir).
	FreeLog func(dir string) (int, error)
}

// System is the real process.
func System() Process {
	return Process{
		Environ: os.Environ,
		Geteuid: os.Geteuid,
		Lookup:  account.Lookup,
		Become:  account.Account.Become,
		Mkdir:   func(d string) error { return os.MkdirAll(d, 0o755) },
		Exec:    syscall.Exec,
		Stderr:  os.Stderr,
		EnvDir:  contenv.Dir,
		FreeLog: func(dir string) (int, error) { return FreeLogDir(dir, OrphanedLogger, 2*time.Second) },
	}
}

// ExecMain runs `slot-exec ARGS`; it returns only on failure, with the exit code.
func (p Process) ExecMain(args []string) int {
	fs := flag.NewFlagSet("slot-exec", flag.ContinueOnError)
	fs.SetOutput(p.Stderr)
	user := fs.String("user", "", "account to run as when started as root")
	var set []string
	fs.Func("env", "NAME=VALUE to set over the container environment (repeatable)", func(kv string) error {
		if k, _, ok := strings.Cut(kv, "="); !ok || !contenv.ValidName(k) {
			return fmt.Errorf("want NAME=VALUE, got %q", kv)
		}
		set = append(set, kv)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(p.Stderr, "usage: hermes-s6 slot-exec [-user NAME] [-env NAME=VALUE]... -- PROGRAM ARGS...")
		return 2
	}
	env := Environ(contenv.Environ(p.Environ(), p.EnvDir), set)
	argv, err := Expand(fs.Args(), env)
	if err != nil {
		return p.fail(2, "slot-exec", err)
	}
	if err := p.become(*user); err != nil {
		return p.fail(111, "slot-exec", err)
	}
	return p.exec("slot-exec", argv, env)
}

// LogMain runs `slot-log ARGS`; it returns only on failure, with the exit code.
func (p Process) LogMain(args []string) int {
	fs := flag.NewFlagSet("slot-log", flag.ContinueOnError)
	fs.SetOutput(p.Stderr)
	user := fs.String("user", "", "account to run as when started as root")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || !validLogName(fs.Arg(0)) {
		fmt.Fprintln(p.Stderr, "usage: hermes-s6 slot-log [-user NAME] LOGNAME   (LOGNAME: one path component)")
		return 2
	}
	env := contenv.Environ(p.Environ(), p.EnvDir)
	if err := p.become(*user); err != nil {
		return p.fail(111, "slot-log", err)
	}
	dir := LogDir(lookup(env, "HERMES_HOME"), fs.Arg(0))
	argv := append([]string{"s6-log", "--"}, LogScript...)
	if err := p.Mkdir(dir); err != nil {
		fmt.Fprintf(p.Stderr, "slot-log: %s: logging to docker logs only: %v\n", fs.Arg(0), err)
		argv = []string{"s6-log", "--", "1"}
	} else {
		argv = append(argv, dir)
		if p.FreeLog != nil {
			if pid, err := p.FreeLog(dir); err != nil {
				fmt.Fprintf(p.Stderr, "slot-log: %s: checking the log directory's lock: %v\n", fs.Arg(0), err)
			} else if pid > 0 {
				fmt.Fprintf(p.Stderr, "slot-log: %s: ended the orphaned s6-log (pid %d) its killed supervisor left holding %s\n", fs.Arg(0), pid, dir)
			}
		}
	}
	return p.exec("slot-log", argv, env)
}

// LogDir is where a slot's logger keeps its files.
func LogDir(home, logName string) string {
	if home == "" {
		home = "/opt/data"
	}
	return filepath.Join(home, "logs", "gateways", logName)
}

func (p Process) become(name string) error {
	if name == "" || p.Geteuid() != 0 {
		return nil
	}
	a, err := p.Lookup(name)
	if err != nil {
		return fmt.Errorf("cannot run as %s: %v", name, err)
	}
	if err := p.Become(a); err != nil {
		return fmt.Errorf("cannot run as %s: %v", name, err)
	}
	return nil
}

func (p Process) exec(cmd string, argv, env []string) int {
	path, err := LookPath(argv[0], lookup(env, "PATH"))
	if err == nil && p.InProcess != nil {
		if run := p.InProcess(path, argv); run != nil {
			contenv.Apply(env)
			return run()
		}
	}
	if err == nil {
		err = p.Exec(path, argv, env)
	}
	return p.fail(127, cmd, fmt.Errorf("cannot run %s: %v", argv[0], err))
}

func (p Process) fail(code int, cmd string, err error) int {
	fmt.Fprintf(p.Stderr, "%s: %v\n", cmd, err)
	return code
}

// Environ returns env with each NAME=VALUE of set replacing or adding NAME.
func Environ(env, set []string) []string {
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !has(set, k) {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}

// Expand replaces ${NAME} and ${NAME:-default} (default when NAME is unset
// or empty, as in sh) in each word with values from env; $$ is a literal $.
// Any other $ is an error, so a word never silently loses one. (os.Expand
// has no defaults and drops what it cannot parse.)
func Expand(words, env []string) ([]string, error) {
	out := make([]string, len(words))
	for i, w := range words {
		var b strings.Builder
		for j := 0; j < len(w); j++ {
			switch {
			case w[j] != '$':
				b.WriteByte(w[j])
			case strings.HasPrefix(w[j:], "$$"):
				b.WriteByte('$')
				j++
			case strings.HasPrefix(w[j:], "${") && strings.Contains(w[j:], "}"):
				end := j + strings.IndexByte(w[j:], '}')
				name, def, hasDef := strings.Cut(w[j+2:end], ":-")
				if !contenv.ValidName(name) {
					return nil, fmt.Errorf("word %q: bad reference %q: use ${NAME}, ${NAME:-default} or $$", w, w[j:end+1])
				}
				v := lookup(env, name)
				if v == "" && hasDef {
					v = def
				}
				b.WriteString(v)
				j = end
			default:
				return nil, fmt.Errorf("word %q: a $ must start ${NAME} or ${NAME:-default}, or be doubled ($$)", w)
			}
		}
		out[i] = b.String()
	}
	return out, nil
}

// LookPath finds prog in the colon-separated path, as execvp does; a name
// with a slash is used as it is.
func LookPath(prog, path string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, prog)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w in PATH %q", exec.ErrNotFound, path)
}

func lookup(env []string, k string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], k+"="); ok {
			return v
		}
	}
	return ""
}

func has(env []string, k string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			return true
		}
	}
	return false
}

func validLogName(n string) bool {
	return n != "" && n != "." && n != ".." && !strings.ContainsAny(n, "/\x00")
}
