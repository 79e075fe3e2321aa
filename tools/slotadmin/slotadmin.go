// Package slotadmin registers and removes profile gateway slots on behalf of
// the unprivileged hermes user. The scan directory and every slot in it are
// root's (a slot's run script runs as root before it drops privileges), so
// hermes cannot write them; it asks instead. The model is s6's own:
//
//	hermes-admin (an s6-rc longrun, root)
//	  s6-ipcserver on /run/hermes-admin/socket (directory 0750 root:hermes)
//	  s6-ipcserver-access (rules: uid 0 and the hermes group)
//	  s6-sudod → hermes-s6 slot-admin VERB PROFILE
//
// and the client is `s6-sudo SOCKET VERB PROFILE` (Remote). A request is a
// verb and a profile name, nothing else: the name is validated, and the slot
// is rendered by root from the one template (render.GatewaySlot), so nothing
// the caller chooses ends up in a file that root executes. Root itself needs
// no socket (Local).
package slotadmin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

// Paths of the admin service.
const (
	Dir    = "/run/hermes-admin"
	Socket = Dir + "/socket"
)

// Verbs a request may name.
const (
	Register   = "register"
	Unregister = "unregister"
)

// Registrar registers and removes the gateway slot of a profile.
type Registrar interface {
	Register(profile string) error
	Unregister(profile string) error
}

// RequestError is a request refused before anything was changed.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// Local does the work in this process: for root (the reconciler, the admin
// service itself, `docker exec` as root).
type Local struct {
	S6   *s6.Manager
	Home string
	// Slot describes a profile's gateway slot (nil: render.GatewaySlot).
	Slot func(profile string) render.Slot
}

// Register registers the gateway slot of an existing profile, down. A slot
// that is already registered is left as it is.
func (l Local) Register(name string) error {
	if err := profile.Validate(name); err != nil {
		return &RequestError{err.Error()}
	}
	if !profile.Exists(l.Home, name) {
		return &RequestError{fmt.Sprintf("no profile %q under %s", name, l.Home)}
	}
	slot := render.GatewaySlot(name)
	if l.Slot != nil {
		slot = l.Slot(name)
	}
	if err := l.S6.Register(slot); err != nil && !errors.Is(err, s6.ErrExists) {
		return err
	}
	return nil
}

// Unregister stops and removes the gateway slot of a profile. The default
// profile's slot is never removed; a slot that is not registered is not an
// error.
func (l Local) Unregister(name string) error {
	if err := profile.Validate(name); err != nil {
		return &RequestError{err.Error()}
	}
	if name == profile.Default {
		return &RequestError{"the default profile's slot is never removed"}
	}
	slot := profile.Slot(name)
	if !l.S6.Exists(slot) {
		return nil
	}
	return l.S6.Unregister(slot)
}

// Serve handles one request, `slot-admin VERB PROFILE`, and returns the exit
// code: 0 done, 2 refused (bad request: nothing changed), 1 failed.
func Serve(r Registrar, args []string, stderr io.Writer, caller string) int {
	if len(args) != 2 {
		fmt.Fprintf(stderr, "hermes-admin: refused request %q from %s: want `register PROFILE` or `unregister PROFILE`\n", args, caller)
		return 2
	}
	verb, name := args[0], args[1]
	var err error
	switch verb {
	case Register:
		err = r.Register(name)
	case Unregister:
		err = r.Unregister(name)
	default:
		fmt.Fprintf(stderr, "hermes-admin: refused request %q from %s: unknown verb %q (want register or unregister)\n", args, caller, verb)
		return 2
	}
	var re *RequestError
	switch {
	case errors.As(err, &re):
		fmt.Fprintf(stderr, "hermes-admin: refused %s %q from %s: %v\n", verb, name, caller, err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "hermes-admin: %s %s: %v\n", verb, name, err)
		return 1
	}
	return 0
}

// Remote asks the admin service over its socket with s6-sudo: for hermes.
// The service's messages go to Stdout/Stderr directly (s6-sudo passes them).
type Remote struct {
	Socket         string
	Stdout, Stderr io.Writer
	// Timeout bounds one request (default 30 s).
	Timeout time.Duration
}

// ExitError is a request the admin service refused (Code 2) or failed (1);
// it has already said why on the caller's stderr.
type ExitError struct{ Code int }

func (e *ExitError) Error() string {
	if e.Code == 2 {
		return "the slot service refused the request"
	}
	return fmt.Sprintf("the slot service failed (exit %d)", e.Code)
}

func (r Remote) Register(name string) error   { return r.ask(Register, name) }
func (r Remote) Unregister(name string) error { return r.ask(Unregister, name) }

func (r Remote) ask(verb, name string) error {
	sock := r.Socket
	if sock == "" {
		sock = Socket
	}
	if _, err := os.Stat(sock); err != nil {
		return fmt.Errorf("the slot service (hermes-admin) is not reachable at %s: %v", sock, err)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	cmd := exec.Command("s6-sudo", "-e", "-t", "5000", "-T", strconv.FormatInt(timeout.Milliseconds(), 10), sock, verb, name)
	cmd.Stdout, cmd.Stderr = r.Stdout, r.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Code: ee.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("asking the slot service: %w", err)
	}
	return nil
}

// ServerArgv is the command line of the admin service on dir (Dir in the
// image), after Prepare: s6's super-server on dir/socket, access checked
// against dir/rules, s6-sudod running `tool slot-admin VERB PROFILE` for
// each accepted client with the client's stdout and stderr. -1 announces
// readiness on stdout (the service's notification fd).
func ServerArgv(tool, dir string) []string {
	return []string{
		"s6-ipcserver", "-1", "-c", "16", "-C", "8", "-a", "0770", filepath.Join(dir, "socket"),
		"s6-ipcserver-access", "-v", "1", "-i", filepath.Join(dir, "rules"),
		"s6-sudod", "-0",
		tool, "slot-admin",
	}
}

// Prepare makes the admin directory afresh: root's, group gid, mode 2750
// (only root and the group reach the socket; setgid, so the socket that
// s6-ipcserver binds there with mode 0770 is the group's too), with the
// access rules: uid 0 and gid allowed, everyone else refused.
func Prepare(dir string, gid int) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, 0, gid); err != nil {
		return err
	}
	if err := os.Chmod(dir, os.ModeSetgid|0o750); err != nil {
		return err
	}
	for _, allow := range []string{"uid/0/allow", "gid/" + strconv.Itoa(gid) + "/allow"} {
		p := filepath.Join(dir, "rules", allow)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}
