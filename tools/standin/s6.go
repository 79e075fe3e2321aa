package standin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Paths of s6-overlay that the agent uses (hermes_cli/service_manager.py,
// stored at 06da06f5, not at the pin).
const (
	s6ScanDir       = "/run/service" // S6_DYNAMIC_SCANDIR
	s6BinDir        = "/command"     // _S6_BIN_DIR
	s6ServicePrefix = "gateway-"     // S6_SERVICE_PREFIX
	hermesUID       = 10000          // _HERMES_UID / _HERMES_GID
)

// s6ServiceNamePattern is service_manager.py _VALID_PROFILE_RE.
var s6ServiceNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// s6Running mirrors hermes_cli/service_manager.py _s6_running: PID 1's comm
// is s6-svscan AND /run/s6/basedir is a directory. No environment variable
// is consulted.
func (s *System) s6Running() bool {
	comm, err := os.ReadFile(s.path("/proc/1/comm"))
	if err != nil {
		return false
	}
	return strings.TrimSpace(string(comm)) == "s6-svscan" && isDir(s.path("/run/s6/basedir"))
}

func (s *System) s6(prog string, args ...string) (int, string, string, error) {
	return s.Run(append([]string{s.path(s6BinDir + "/" + prog)}, args...))
}

func (s *System) slotDir(profile string) string {
	return s.path(s6ScanDir + "/" + s6ServicePrefix + profile)
}

// Breadcrumb is printed on stderr by hermes_cli/gateway.py
// _maybe_redirect_run_to_s6_supervision (pinned) once the gateway runs
// under s6.
const Breadcrumb = "→ gateway is now running under s6 supervision (auto-restart on crash,\n" +
	"  dashboard supervised alongside if HERMES_DASHBOARD is set).\n" +
	"  This is the recommended setup for the s6 container image — the\n" +
	"  gateway will keep running even if it crashes.\n" +
	"  Use `--no-supervise` (or HERMES_GATEWAY_NO_SUPERVISE=1) to opt out\n" +
	"  and get the pre-s6 foreground behavior instead.\n"

// redirectToS6 mirrors hermes_cli/gateway.py
// _maybe_redirect_run_to_s6_supervision (pinned) with
// _dispatch_via_service_manager_if_s6("start") and S6ServiceManager.start
// (service_manager.py@06da06f5). It returns done=false when the gateway must
// run in the foreground; otherwise the process has been replaced by
// `sleep infinity` (or code is its exit code).
func (s *System) redirectToS6(inv invocation, noSupervise bool) (code int, done bool) {
	if noSupervise || truthyNoSupervise(inv.env.get("HERMES_GATEWAY_NO_SUPERVISE")) {
		return 0, false
	}
	// HERMES_S6_SUPERVISED_CHILD: this process IS the supervised child.
	if inv.env.get("HERMES_S6_SUPERVISED_CHILD") != "" {
		return 0, false
	}
	if !s.s6Running() {
		return 0, false
	}
	// _current_profile_name(): the root home, Docker's /opt/data included,
	// is "default".
	profile := inv.profile
	service := s6ServicePrefix + profile
	slot := s.slotDir(profile)
	// S6ServiceManager._run_svc: a missing slot is GatewayNotRegisteredError,
	// a failing s6-svc S6CommandError; both print "✗ <error>" and exit 1.
	if !isDir(slot) {
		s.outf("✗ no such gateway %s: register it with `hermes profile create %s` first, or pass an existing profile name via `-p <name>`\n", pyRepr(profile), profile)
		return exitFailure, true
	}
	rc, _, stderr, err := s.s6("s6-svc", "-u", slot)
	if err != nil {
		s.outf("✗ cannot run s6-svc: %v\n", err)
		return exitFailure, true
	}
	if rc != 0 {
		msg := fmt.Sprintf("s6-svc start on %s failed (rc=%d)", pyRepr(service), rc)
		if strings.TrimSpace(stderr) != "" {
			msg += ": " + strings.TrimSpace(stderr)
		}
		s.outf("✗ %s\n", msg)
		return exitFailure, true
	}
	writeDesiredState(profileDirForService(inv, profile), "running")
	s.errf("%s", Breadcrumb)
	// os.execvp("sleep", ["sleep", "infinity"]); if that fails,
	// _block_until_terminated (SIGTERM exits 128+15).
	if err := s.Exec("sleep", []string{"sleep", "infinity"}, inv.env.list()); err != nil {
		s.errf("→ `sleep` is unavailable; keeping the s6 CMD process alive in-process until the container is stopped.\n")
		return s.Block(), true
	}
	return exitOK, true // only reached when Exec is a test double
}

// profileDirForService mirrors service_manager.py
// _profile_dir_for_gateway_service: the root of HERMES_HOME for "default",
// else <root>/profiles/<profile>.
func profileDirForService(inv invocation, profile string) string {
	if profile == defaultProfile {
		return inv.root
	}
	return filepath.Join(inv.root, "profiles", profile)
}

// writeDesiredState mirrors service_manager.py _write_gateway_desired_state:
// read-modify-write of gateway_state.json keeping every other key,
// desired_state and updated_at = int(time.time()), compact JSON plus a
// newline, through <file>.tmp. Skipped when the profile directory does not
// exist; best-effort.
func writeDesiredState(profileDir, desired string) {
	if !isDir(profileDir) {
		return
	}
	path := filepath.Join(profileDir, runtimeStatusFile)
	data := map[string]json.RawMessage{}
	if b, err := os.ReadFile(path); err == nil {
		if json.Unmarshal(b, &data) != nil || data == nil {
			data = map[string]json.RawMessage{}
		}
	}
	data["desired_state"] = mustJSON(desired)
	data["updated_at"] = mustJSON(time.Now().Unix())
	b, err := json.Marshal(data)
	if err != nil {
		return
	}
	tmp := path + ".tmp"
	if os.WriteFile(tmp, append(b, '\n'), 0o666) == nil {
		_ = os.Rename(tmp, path)
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// maybeRegisterGatewayService mirrors hermes_cli/profiles.py
// _maybe_register_gateway_service (pinned): under s6 only, an already
// registered slot is no error, any other error is printed and never fails
// the create.
func (s *System) maybeRegisterGatewayService(inv invocation, profile string) {
	if !s.s6Running() {
		return
	}
	err := s.registerProfileGateway(inv, profile)
	if err == nil || errors.Is(err, errAlreadyRegistered) {
		return
	}
	s.outf("⚠ Could not register s6 gateway service: %v\n", err)
}

var errAlreadyRegistered = errors.New("already registered")

// registerProfileGateway mirrors S6ServiceManager.register_profile_gateway
// (service_manager.py@06da06f5) with start_now=False: the slot is built in
// .gateway-<p>.tmp (s6-svscan skips dot entries), holds type, run, finish,
// log/run, a hermes-owned supervise skeleton and `down`, is renamed into
// place, and s6-svscanctl -a makes s6-svscan pick it up; if that fails the
// slot is removed again.
func (s *System) registerProfileGateway(inv invocation, profile string) error {
	if len(profile) > 251 || !s6ServiceNamePattern.MatchString(profile) {
		return fmt.Errorf("profile name must match [a-z0-9][a-z0-9_-]*, got %s", pyRepr(profile))
	}
	dir := s.slotDir(profile)
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("profile gateway %s %w at %s", pyRepr(profile), errAlreadyRegistered, dir)
	}
	tmp := filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp")
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o777); err != nil {
		return err
	}
	if err := buildSlot(tmp, profile); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	rc, stdout, stderr, err := s.s6("s6-svscanctl", "-a", s.path(s6ScanDir))
	if err == nil && rc != 0 {
		out := stderr
		if out == "" {
			out = stdout
		}
		err = fmt.Errorf("s6-svscanctl failed: %s", out)
	}
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	return nil
}

// buildSlot writes the files of a profile gateway slot. The scripts do what
// S6ServiceManager._render_run_script, _render_finish_script and
// _render_log_run render: run drops to hermes and execs
// `hermes [-p P] gateway run --replace` with HERMES_S6_SUPERVISED_CHILD=1;
// finish turns exit 78 and exit 0 into 125 (do not restart); log/run runs
// s6-log into $HERMES_HOME/logs/gateways/<p>.
func buildSlot(dir, profile string) error {
	cmd := "hermes gateway run --replace"
	if profile != defaultProfile {
		cmd = "hermes -p " + profile + " gateway run --replace"
	}
	run := "#!/command/with-contenv sh\n" +
		"# Profile gateway slot registered by " + Program + " (stand-in for the Hermes agent).\n" +
		"set -e\n" +
		"export HOME=/opt/data\n" +
		"cd /opt/data\n" +
		"export HERMES_S6_SUPERVISED_CHILD=1\n" +
		"export HERMES_SUPERVISED_CHILD=1\n" +
		"[ \"$(id -u)\" = 0 ] || exec " + cmd + "\n" +
		"exec s6-setuidgid hermes " + cmd + "\n"
	finish := "#!/command/with-contenv sh\n" +
		"# $1 is the exit code of run: 78 (fatal configuration) and 0 (clean stop)\n" +
		"# must not be restarted; 125 tells s6-supervise so.\n" +
		"if [ \"$1\" = \"78\" ]; then\n  exit 125\nfi\n" +
		"if [ \"$1\" = \"0\" ]; then\n  exit 125\nfi\n" +
		"exit 0\n"
	logRun := "#!/command/with-contenv sh\n" +
		": \"${HERMES_HOME:=/opt/data}\"\n" +
		"log_dir=\"$HERMES_HOME/logs/gateways/" + profile + "\"\n" +
		"if [ \"$(id -u)\" = 0 ]; then\n" +
		"  s6-setuidgid hermes mkdir -p \"$log_dir\"\n" +
		"  s6-setuidgid hermes rm -f \"$log_dir/lock\"\n" +
		"else\n" +
		"  mkdir -p \"$log_dir\"\n" +
		"  rm -f \"$log_dir/lock\"\n" +
		"fi\n" +
		"[ \"$(id -u)\" = 0 ] || exec s6-log 1 n10 s1000000 T \"$log_dir\"\n" +
		"exec s6-setuidgid hermes s6-log 1 n10 s1000000 T \"$log_dir\"\n"
	files := []struct {
		name string
		text string
		mode os.FileMode
	}{
		{"type", "longrun\n", 0o666},
		{"run", run, 0o755},
		{"finish", finish, 0o755},
		{"log/run", logRun, 0o755},
		{"down", "", 0o666},
	}
	if err := os.Mkdir(filepath.Join(dir, "log"), 0o777); err != nil {
		return err
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.text), 0o666); err != nil {
			return err
		}
		if f.mode == 0o755 {
			if err := os.Chmod(p, f.mode); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "log")} {
		if err := seedSupervise(d); err != nil {
			return err
		}
	}
	return nil
}

// seedSupervise mirrors service_manager.py _seed_supervise_skeleton: event/
// (3730), supervise/ (755), supervise/event/ (3730) and the supervise/control
// FIFO (660), given to hermes (uid 10000) when the caller may.
func seedSupervise(dir string) error {
	mk := func(p string, mode os.FileMode) error {
		if _, err := os.Lstat(p); err == nil {
			return nil
		}
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		_ = os.Lchown(p, hermesUID, hermesUID) // PermissionError is swallowed there too
		return nil
	}
	if err := mk(filepath.Join(dir, "event"), 0o730|os.ModeSetgid|os.ModeSticky); err != nil {
		return err
	}
	if err := mk(filepath.Join(dir, "supervise"), 0o755); err != nil {
		return err
	}
	if err := mk(filepath.Join(dir, "supervise", "event"), 0o730|os.ModeSetgid|os.ModeSticky); err != nil {
		return err
	}
	control := filepath.Join(dir, "supervise", "control")
	if _, err := os.Lstat(control); err == nil {
		return nil
	}
	if err := mkfifo(control, 0o660); err != nil {
		return err
	}
	if err := os.Chmod(control, 0o660); err != nil {
		return err
	}
	_ = os.Lchown(control, hermesUID, hermesUID)
	return nil
}

// maybeUnregisterGatewayService mirrors hermes_cli/profiles.py
// _maybe_unregister_gateway_service with
// S6ServiceManager.unregister_profile_gateway: s6-svc -d, s6-svwait -D -t
// 10000, s6-svscanctl -an (their exit codes unchecked), then the slot is
// removed. Idempotent; an error is printed, never fatal.
func (s *System) maybeUnregisterGatewayService(profile string) {
	if !s.s6Running() {
		return
	}
	if err := s.unregisterProfileGateway(profile); err != nil {
		s.outf("⚠ Could not unregister s6 gateway service: %v\n", err)
	}
}

func (s *System) unregisterProfileGateway(profile string) error {
	if !s6ServiceNamePattern.MatchString(profile) {
		return fmt.Errorf("profile name must match [a-z0-9][a-z0-9_-]*, got %s", pyRepr(profile))
	}
	dir := s.slotDir(profile)
	if _, err := os.Lstat(dir); err != nil {
		return nil
	}
	for _, argv := range [][]string{
		{"s6-svc", "-d", dir},
		{"s6-svwait", "-D", "-t", "10000", dir},
		{"s6-svscanctl", "-an", s.path(s6ScanDir)},
	} {
		if _, _, _, err := s.s6(argv[0], argv[1:]...); err != nil {
			return err
		}
	}
	time.Sleep(200 * time.Millisecond) // s6-svscan reads the flag on its next loop
	_ = os.RemoveAll(dir)              // shutil.rmtree(..., ignore_errors=True)
	return nil
}

func mkfifo(path string, mode os.FileMode) error { return syscall.Mkfifo(path, uint32(mode.Perm())) }
