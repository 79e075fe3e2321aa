package standin

// Runtime files of a gateway, one set per HERMES_HOME, as gateway/status.py
// (pinned) keeps them.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	gatewayKind           = "hermes-gateway"             // _GATEWAY_KIND
	runtimeStatusFile     = "gateway_state.json"         // _RUNTIME_STATUS_FILE
	pidFileName           = "gateway.pid"                // _get_pid_path
	lockFileName          = "gateway.lock"               // _GATEWAY_LOCK_FILENAME
	takeoverMarkerFile    = ".gateway-takeover.json"     // _TAKEOVER_MARKER_FILENAME
	plannedStopMarkerFile = ".gateway-planned-stop.json" // _PLANNED_STOP_MARKER_FILENAME
	markerTTL             = 60 * time.Second             // _TAKEOVER_MARKER_TTL_S, _PLANNED_STOP_MARKER_TTL_S
)

// pidRecord is gateway/status.py _build_pid_record.
type pidRecord struct {
	PID        int      `json:"pid"`
	Kind       string   `json:"kind"`
	Argv       []string `json:"argv"`
	StartTime  *int64   `json:"start_time"`
	HermesHome string   `json:"hermes_home"`
}

func newPidRecord(home string, argv []string) pidRecord {
	pid := os.Getpid()
	return pidRecord{PID: pid, Kind: gatewayKind, Argv: argv, StartTime: processStartTime(pid), HermesHome: canonicalHome(home)}
}

// canonicalHome is _canonical_hermes_home: absolute, symlinks resolved when
// they resolve.
func canonicalHome(home string) string {
	abs, err := filepath.Abs(home)
	if err != nil {
		return home
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return abs
}

// processStartTime is _get_process_start_time: field 22 of /proc/<pid>/stat
// (clock ticks since boot), nil when unknown.
func processStartTime(pid int) *int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return nil
	}
	n, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return nil
	}
	return &n
}

// pidAlive is _pid_exists: zombies are dead; EPERM means alive.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return false
		}
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// waitGone polls until pid is gone or timeout passes.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for pidAlive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// readRecord is _read_json_file(path, bare_pid_ok=True): a JSON object, or a
// legacy bare integer as {"pid": N}; nil when absent or unusable.
func readRecord(path string) map[string]any {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	raw := bytes.TrimSpace(bytes.TrimPrefix(b, []byte("\ufeff")))
	if len(raw) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		if n, err := strconv.Atoi(string(raw)); err == nil {
			return map[string]any{"pid": float64(n)}
		}
		return nil
	}
	switch x := v.(type) {
	case map[string]any:
		return x
	case float64:
		return map[string]any{"pid": x}
	}
	return nil
}

func recordInt(rec map[string]any, key string) (int, bool) {
	f, ok := rec[key].(float64)
	if !ok || f != float64(int(f)) {
		return 0, false
	}
	return int(f), true
}

// livePID is _live_pid_from_record: the record's pid when it is alive and
// its start_time (when both are known) still matches.
func livePID(rec map[string]any) int {
	pid, ok := recordInt(rec, "pid")
	if !ok || !pidAlive(pid) {
		return 0
	}
	if st, ok := rec["start_time"].(float64); ok {
		if cur := processStartTime(pid); cur != nil && float64(*cur) != st {
			return 0
		}
	}
	return pid
}

// lockHeld is is_gateway_runtime_lock_active: some other open file holds
// flock(LOCK_EX) on gateway.lock.
func lockHeld(home string) bool {
	f, err := os.OpenFile(filepath.Join(home, lockFileName), os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// runningPID is get_running_pid (pid_path scoped to home): the pid recorded
// in gateway.pid or gateway.lock, trusted only while the lock is held. Not
// mirrored: the command-line identity check and the gateway_state.json
// fallback (the stand-in's command line is not `hermes gateway run`).
func runningPID(home string) int {
	if !lockHeld(home) {
		return 0
	}
	for _, name := range []string{pidFileName, lockFileName} {
		rec := readRecord(filepath.Join(home, name))
		if rec == nil {
			continue
		}
		if h, ok := rec["hermes_home"].(string); ok && h != "" && canonicalHome(h) != canonicalHome(home) {
			continue
		}
		if pid := livePID(rec); pid != 0 {
			return pid
		}
	}
	return 0
}

// cleanupStale is _cleanup_invalid_pid_path: with the lock inactive,
// gateway.pid and gateway.lock are unlinked (never followed).
func cleanupStale(home string) {
	if lockHeld(home) {
		return
	}
	for _, name := range []string{pidFileName, lockFileName} {
		_ = os.Remove(filepath.Join(home, name))
	}
}

// runtimeLock is the flock on gateway.lock held while the gateway runs.
type runtimeLock struct{ f *os.File }

// acquireLock is acquire_gateway_runtime_lock: open gateway.lock ("a+"),
// flock(LOCK_EX|LOCK_NB), then truncate it and write the pid record.
func acquireLock(home string, rec pidRecord) (*runtimeLock, error) {
	path := filepath.Join(home, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o666)
	if errors.Is(err, fs.ErrPermission) {
		// A stale lock of another owner: the directory owner may unlink it.
		if os.Remove(path) == nil {
			f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o666)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	b, _ := json.Marshal(rec)
	if f.Truncate(0) == nil {
		_, _ = f.Write(b)
		_ = f.Sync()
	}
	return &runtimeLock{f}, nil
}

func (l *runtimeLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}

// writePidFile is write_pid_file: O_CREAT|O_EXCL, so an existing file (or
// symlink) is never written through.
func writePidFile(home string, rec pidRecord) error {
	path := filepath.Join(home, pidFileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(rec)
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// removeOwnPidFile is remove_pid_file: only a record naming this process
// (or no readable pid) is removed.
func removeOwnPidFile(home string) {
	path := filepath.Join(home, pidFileName)
	if rec := readRecord(path); rec != nil {
		if pid, ok := recordInt(rec, "pid"); ok && pid != os.Getpid() {
			return
		}
	}
	_ = os.Remove(path)
}

// isoNow is _utc_now_iso: datetime.now(timezone.utc).isoformat().
func isoNow() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000000-07:00") }

// writeRuntimeStatus mirrors write_runtime_status (pinned): the existing
// gateway_state.json is read and updated, so keys it does not own
// (desired_state in particular) are kept; a missing or unreadable file
// starts from _build_runtime_status_record. kind, pid, argv, start_time and
// updated_at are re-stamped on every write; set holds the explicit fields.
// The file is replaced atomically (atomic_json_write, compact separators).
func writeRuntimeStatus(home string, rec pidRecord, set map[string]any) error {
	path := filepath.Join(home, runtimeStatusFile)
	data := map[string]json.RawMessage{}
	fresh := true
	if b, err := os.ReadFile(path); err == nil {
		var m map[string]json.RawMessage
		if json.Unmarshal(bytes.TrimPrefix(b, []byte("\ufeff")), &m) == nil && m != nil {
			data, fresh = m, false
		}
	}
	if fresh {
		for k, v := range map[string]any{
			"pid": rec.PID, "kind": rec.Kind, "argv": rec.Argv, "start_time": rec.StartTime,
			"hermes_home": rec.HermesHome, "gateway_state": "starting", "exit_reason": nil,
			"restart_requested": false, "active_agents": 0, "platforms": map[string]any{},
			"session_store": map[string]any{"status": "unknown"},
		} {
			data[k] = mustJSON(v)
		}
	}
	if _, ok := data["platforms"]; !ok {
		data["platforms"] = mustJSON(map[string]any{})
	}
	data["kind"], data["pid"] = mustJSON(rec.Kind), mustJSON(rec.PID)
	data["argv"], data["start_time"] = mustJSON(rec.Argv), mustJSON(rec.StartTime)
	data["updated_at"] = mustJSON(isoNow())
	for k, v := range set {
		if k == "platform.api_server" {
			var platforms map[string]json.RawMessage
			if json.Unmarshal(data["platforms"], &platforms) != nil || platforms == nil {
				platforms = map[string]json.RawMessage{}
			}
			entry, _ := v.(map[string]any)
			entry["updated_at"], entry["writer_pid"], entry["writer_start_time"] = isoNow(), rec.PID, rec.StartTime
			platforms["api_server"] = mustJSON(entry)
			data["platforms"] = mustJSON(platforms)
			continue
		}
		data[k] = mustJSON(v)
	}
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o644)
}

// readRuntimeStatus is read_runtime_status.
func readRuntimeStatus(home string) map[string]any {
	b, err := os.ReadFile(filepath.Join(home, runtimeStatusFile))
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(bytes.TrimPrefix(b, []byte("\ufeff")), &m) != nil {
		return nil
	}
	return m
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// over path, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeTakeoverMarker is write_takeover_marker (same-home form).
func writeTakeoverMarker(home string, targetPID int, targetStart *int64) error {
	h := canonicalHome(home)
	b, _ := json.Marshal(map[string]any{
		"target_pid": targetPID, "target_start_time": targetStart, "target_hermes_home": h,
		"replacer_pid": os.Getpid(), "replacer_hermes_home": h, "written_at": isoNow(),
	})
	return writeFileAtomic(filepath.Join(h, takeoverMarkerFile), b, 0o644)
}

func clearTakeoverMarker(home string) {
	_ = os.Remove(filepath.Join(canonicalHome(home), takeoverMarkerFile))
}

// parseISO accepts what datetime.fromisoformat accepts from these writers:
// RFC 3339 with a "T" or a space; a time without zone is refused (comparing
// it with an aware datetime raises in Python, which reads as stale).
func parseISO(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// consumeMarker mirrors _consume_pid_marker_for_self (pinned): a marker
// without target_pid, or older than the TTL (or with a bad written_at), is
// unlinked and does not match; one naming another HERMES_HOME is left alone
// and does not match; otherwise it is unlinked and matches when target_pid
// is this process and the start times agree (or one is unknown).
func consumeMarker(path, home string, now time.Time) bool {
	rec := readRecord(path)
	if rec == nil {
		return false
	}
	target, ok := recordInt(rec, "target_pid")
	written, _ := rec["written_at"].(string)
	at, okTime := parseISO(written)
	if !ok || !okTime || now.Sub(at) > markerTTL {
		_ = os.Remove(path)
		return false
	}
	if th, has := rec["target_hermes_home"]; has && th != nil {
		s, isStr := th.(string)
		if !isStr || canonicalHome(s) != canonicalHome(home) {
			return false
		}
	} else if rh, ok := rec["replacer_hermes_home"].(string); ok && canonicalHome(rh) != canonicalHome(home) {
		return false
	}
	matches := target == os.Getpid()
	if st, ok := rec["target_start_time"].(float64); ok && matches {
		if cur := processStartTime(target); cur != nil && float64(*cur) != st {
			matches = false
		}
	}
	_ = os.Remove(path)
	return matches
}
