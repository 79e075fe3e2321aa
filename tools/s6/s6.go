// Package s6 manages Hermes slots on a running s6-svscan: it detects s6 as
// PID 1, registers and unregisters service directories atomically, drives
// them with s6-svc and reads their state with s6-svstat.
package s6

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/render"
)

// DefaultScanDir is the scan directory of s6-overlay and of the debian stage layer.
const DefaultScanDir = "/run/service"

// Manager drives the slots of one scan directory.
type Manager struct {
	ScanDir string
	// BinDir holds the s6 binaries; empty means look them up in PATH.
	BinDir string
	// Timeout bounds every wait (default 10 s).
	Timeout time.Duration
	// Group, when >= 0, is the group given control of the slots it registers
	// (the hermes user controls its slots without root).
	Group int
}

// New returns a Manager for scanDir with the defaults.
func New(scanDir string) *Manager {
	return &Manager{ScanDir: scanDir, Timeout: 10 * time.Second, Group: -1}
}

// Error is an s6 command that failed.
type Error struct {
	Cmd    string
	Code   int
	Output string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s failed with exit code %d", e.Cmd, e.Code)
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += ": " + out
	}
	return msg
}

// ErrNoSlot is returned for a slot that is not registered.
var ErrNoSlot = errors.New("no such slot")

// ErrExists is returned when registering a slot that is already registered.
var ErrExists = errors.New("slot already registered")

func (m *Manager) bin(name string) string {
	if m.BinDir != "" {
		return filepath.Join(m.BinDir, name)
	}
	return name
}

func (m *Manager) timeout() time.Duration {
	if m.Timeout <= 0 {
		return 10 * time.Second
	}
	return m.Timeout
}

func (m *Manager) run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout()+5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, m.bin(name), args...).CombinedOutput()
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			return string(out), fmt.Errorf("%s: %w", name, err)
		}
		return string(out), &Error{Cmd: name + " " + strings.Join(args, " "), Code: code, Output: string(out)}
	}
	return string(out), nil
}

// Dir is the service directory of slot name.
func (m *Manager) Dir(name string) string { return filepath.Join(m.ScanDir, name) }

// Exists reports whether slot name is registered.
func (m *Manager) Exists(name string) bool {
	st, err := os.Stat(m.Dir(name))
	return err == nil && st.IsDir()
}

// SlotRef is a Hermes slot found in the scan directory.
type SlotRef struct {
	Name string
	render.Identity
}

// Slots lists the Hermes slots of the scan directory: the directories whose
// identity file says what they supervise (render.IdentityFile). Anything else
// there (s6-rc's services, their NAME-log loggers, s6-overlay's own services,
// dot directories) is not a slot, whatever its name.
func (m *Manager) Slots() ([]SlotRef, error) {
	entries, err := os.ReadDir(m.ScanDir)
	if err != nil {
		return nil, err
	}
	var slots []SlotRef
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		id, err := render.ReadIdentity(m.Dir(e.Name()))
		if err != nil {
			continue
		}
		slots = append(slots, SlotRef{Name: e.Name(), Identity: id})
	}
	return slots, nil
}

// IsSlot reports whether name is a Hermes slot (see Slots).
func (m *Manager) IsSlot(name string) bool {
	_, err := render.ReadIdentity(m.Dir(name))
	return err == nil
}

func (m *Manager) mustExist(name string) error {
	if !m.Exists(name) {
		return fmt.Errorf("%w %q in %s", ErrNoSlot, name, m.ScanDir)
	}
	return nil
}

// Register installs slot, asks s6-svscan to pick it up and waits until it
// is supervised. If anything fails, nothing is left behind.
func (m *Manager) Register(slot render.Slot) error {
	if err := m.Install(slot); err != nil {
		return err
	}
	if err := m.Rescan(); err != nil {
		os.RemoveAll(m.Dir(slot.Name))
		return fmt.Errorf("register %s: %w", slot.Name, err)
	}
	return m.WaitSupervised(slot.Name)
}

// Install renders slot in a dot-prefixed temporary directory (ignored by
// s6-svscan) and renames it into place, without a rescan: many slots can be
// installed, then one Rescan. If anything fails, nothing is left behind.
// Exactly one of two concurrent installs of the same slot succeeds; the
// other gets ErrExists.
func (m *Manager) Install(slot render.Slot) error {
	if err := slot.Validate(); err != nil {
		return err
	}
	final := m.Dir(slot.Name)
	if m.Exists(slot.Name) {
		return fmt.Errorf("%w: %s", ErrExists, slot.Name)
	}
	tmp, err := os.MkdirTemp(m.ScanDir, "."+slot.Name+".new-")
	if err != nil {
		return fmt.Errorf("register %s: %w", slot.Name, err)
	}
	cleanup := func() { os.RemoveAll(tmp) }
	if err := os.Chmod(tmp, 0o755); err != nil {
		cleanup()
		return fmt.Errorf("register %s: %w", slot.Name, err)
	}
	if err := render.Write(tmp, slot); err != nil {
		cleanup()
		return fmt.Errorf("register %s: %w", slot.Name, err)
	}
	if err := PrepareControl(tmp, m.Group); err != nil {
		cleanup()
		return fmt.Errorf("register %s: %w", slot.Name, err)
	}
	// RENAME_NOREPLACE: of two concurrent registrations exactly one wins,
	// and s6-svscan never sees a half-written directory.
	if err := renameNoReplace(tmp, final); err != nil {
		cleanup()
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, slot.Name)
		}
		return fmt.Errorf("register %s: %w", slot.Name, err)
	}
	return nil
}

// PrepareControl creates the slot's supervise/ directory and control fifo
// before s6-supervise starts (it keeps existing ones), so that members of
// group gid (>= 0) can read the slot's status and control it from the start.
// The logger's supervise/ is left to s6-supervise: root's alone.
func PrepareControl(dir string, gid int) error {
	sup := filepath.Join(dir, "supervise")
	if err := os.MkdirAll(sup, 0o700); err != nil {
		return err
	}
	ctl := filepath.Join(sup, "control")
	if _, err := os.Lstat(ctl); errors.Is(err, os.ErrNotExist) {
		if err := mkfifo(ctl, 0o600); err != nil {
			return fmt.Errorf("mkfifo %s: %w", ctl, err)
		}
	}
	return GrantGroup(dir, gid)
}

// GrantGroup gives group gid what `s6-svperms -G` gives a group: read the
// slot's status (supervise/ readable) and send it commands (supervise/control
// writable), nothing more. The service directory, its files and its event/
// fifodir stay root's: s6-supervise, running as root, executes run and finish
// and writes into every fifo of event/, so a group that could write any of
// them would be root. A negative gid changes nothing.
func GrantGroup(dir string, gid int) error {
	if gid < 0 {
		return nil
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(dir, "supervise"), os.ModeDir | 0o750},
		{filepath.Join(dir, "supervise", "control"), os.ModeNamedPipe | 0o620},
	} {
		st, err := os.Lstat(c.path)
		if err != nil {
			return err
		}
		if st.Mode().Type() != c.mode.Type() {
			return fmt.Errorf("grant %s: is %s, want %s", c.path, st.Mode().Type(), c.mode.Type())
		}
		if err := os.Lchown(c.path, 0, gid); err != nil {
			return fmt.Errorf("chgrp %s: %w", c.path, err)
		}
		if err := os.Chmod(c.path, c.mode.Perm()); err != nil {
			return fmt.Errorf("chmod %s: %w", c.path, err)
		}
	}
	return nil
}

// Rescan asks s6-svscan to scan now (and forget vanished services).
func (m *Manager) Rescan() error {
	_, err := m.run("s6-svscanctl", "-an", m.ScanDir)
	return err
}

// WaitSupervised waits until s6-supervise runs for slot name: until its
// control fifo has a reader. No process is spawned while waiting.
func (m *Manager) WaitSupervised(name string) error {
	deadline := time.Now().Add(m.timeout())
	for {
		if supervised(m.Dir(name)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("register %s: s6-supervise did not start within %s", name, m.timeout())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Unregister brings slot name down, waits for it, removes its directory
// and lets s6-svscan forget it.
func (m *Manager) Unregister(name string) error {
	if err := m.mustExist(name); err != nil {
		return err
	}
	if !m.IsSlot(name) {
		return fmt.Errorf("unregister %s: not a Hermes slot (no %s): left alone", name, render.IdentityFile)
	}
	if err := m.Stop(name, true); err != nil {
		return err
	}
	dir := m.Dir(name)
	gone, err := os.MkdirTemp(m.ScanDir, "."+name+".gone-")
	if err != nil {
		return fmt.Errorf("unregister %s: %w", name, err)
	}
	os.Remove(gone)
	if err := os.Rename(dir, gone); err != nil {
		return fmt.Errorf("unregister %s: %w", name, err)
	}
	if err := m.Rescan(); err != nil {
		return fmt.Errorf("unregister %s: %w", name, err)
	}
	// s6-svscan now stops the supervisors of the vanished service and its
	// logger; wait until they have released their locks.
	deadline := time.Now().Add(m.timeout())
	for _, d := range []string{gone, filepath.Join(gone, "log")} {
		for {
			if _, err := os.Stat(d); err != nil {
				break
			}
			if _, err := m.run("s6-svok", d); err != nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("unregister %s: supervisor still running after %s", name, m.timeout())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("unregister %s: %w", name, err)
	}
	return nil
}

// Start brings slot name up (s6-svc -u) and returns once s6-supervise has
// taken the command (its status says it wants the slot up). It writes only to
// the control fifo, so the hermes group can do it; the down marker, which
// says what a restarted supervisor does, is root's (MarkUp, MarkDown).
func (m *Manager) Start(name string) error {
	if err := m.mustExist(name); err != nil {
		return err
	}
	if err := control(m.Dir(name), "u"); err != nil {
		return err
	}
	return m.waitStatus(name, "want up", func(st Status) bool { return st.WantUp })
}

// Stop brings slot name down (s6-svc -d). With wait it returns once the
// service is down (bounded by Timeout), otherwise once s6-supervise has taken
// the command.
func (m *Manager) Stop(name string, wait bool) error {
	if err := m.mustExist(name); err != nil {
		return err
	}
	if err := control(m.Dir(name), "d"); err != nil {
		return err
	}
	if !wait {
		return m.waitStatus(name, "want down", func(st Status) bool { return !st.WantUp })
	}
	return m.waitStatus(name, "down", func(st Status) bool { return !st.WantUp && !st.Up })
}

// MarkUp removes the slot's down marker: a (re)started supervisor starts it.
// Root only: the marker lives in the root-owned service directory.
func (m *Manager) MarkUp(name string) error {
	if err := m.mustExist(name); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(m.Dir(name), "down")); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// SetNormallyUp keeps the slot's down marker in step with up: what a
// restarted supervisor does. It sends no command. Root only (see MarkUp).
func (m *Manager) SetNormallyUp(name string, up bool) error {
	if up {
		return m.MarkUp(name)
	}
	if err := m.mustExist(name); err != nil {
		return err
	}
	return touch(filepath.Join(m.Dir(name), "down"))
}

// MarkDown makes the slot down now and at the next supervisor start.
// Root only (see MarkUp).
func (m *Manager) MarkDown(name string) error {
	if err := m.mustExist(name); err != nil {
		return err
	}
	if err := touch(filepath.Join(m.Dir(name), "down")); err != nil {
		return err
	}
	return control(m.Dir(name), "d")
}

func touch(p string) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// Restart restarts slot name: a running slot gets a new process (it returns
// once the old one is gone), a down slot is started.
func (m *Manager) Restart(name string) error {
	st, err := m.Status(name)
	if err != nil {
		return err
	}
	if !st.Up || !st.WantUp {
		return m.Start(name)
	}
	if err := control(m.Dir(name), "r"); err != nil {
		return err
	}
	old := st.Pid
	return m.waitStatus(name, "restarted", func(st Status) bool { return st.Pid != old })
}

// waitStatus polls the slot's status until ok, bounded by Timeout. s6's own
// waiters (s6-svwait, s6-svc -w) subscribe to the slot's event/ fifodir,
// which is root's (see GrantGroup); reading the status works for the group.
func (m *Manager) waitStatus(name, what string, ok func(Status) bool) error {
	deadline := time.Now().Add(m.timeout())
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		st, err := m.Status(name)
		if err == nil && ok(st) {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%s: not %s within %s: %w", name, what, m.timeout(), err)
			}
			return fmt.Errorf("%s: not %s within %s (%s)", name, what, m.timeout(), st)
		}
		time.Sleep(wait) // polling interval
	}
}

// UnderPID1 reports whether s6-svscan is PID 1 and supervises scanDir: what
// PID 1 is (its comm in procRoot, normally /proc) and that s6's runtime
// control directory exists. No container heuristics.
func UnderPID1(procRoot, scanDir string) bool {
	comm, err := os.ReadFile(filepath.Join(procRoot, "1", "comm"))
	if err != nil || strings.TrimSpace(string(comm)) != "s6-svscan" {
		return false
	}
	st, err := os.Stat(filepath.Join(scanDir, ".s6-svscan"))
	return err == nil && st.IsDir()
}

// StopSlots brings every slot down at once and waits for each, bounded by
// the manager's Timeout, so that a slow gateway can flush while a quick one
// does not hold up the stop. Only the slots: their loggers (and s6-rc's
// services, the watcher among them) stay up, so the slots' last words are
// logged. It returns the slots it stopped.
func (m *Manager) StopSlots() ([]string, error) {
	slots, err := m.Slots()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(slots))
	done := make(chan struct{}, len(slots))
	for i, s := range slots {
		names[i] = s.Name
		go func() { m.Stop(s.Name, true); done <- struct{}{} }()
	}
	for range slots {
		<-done
	}
	return names, nil
}
