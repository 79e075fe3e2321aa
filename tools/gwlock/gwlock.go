// Package gwlock keeps one gateway per profile across containers that share
// the volume: before the front execs a profile's gateway it takes an
// exclusive flock on FileName in the profile's directory and hands the
// descriptor to the agent (not close-on-exec), so the lock lives exactly as
// long as the gateway process. A second container finds it held, says which
// container holds it (the file's contents, written by the holder), and
// retries with a backoff until the holder goes away.
//
// It is a file of its own, not the agent's gateway.lock: the agent takes
// that one itself (gateway/status.py acquire_gateway_runtime_lock) and would
// find it held by its own inherited descriptor.
//
// The file lives in a directory the hermes user owns, so everything here
// treats it as hostile: opened below an already opened directory, one path
// component at a time, never through a symlink, never blocking on a FIFO,
// refused unless it is a regular file with one link; its contents are read
// bounded and printed sanitised.
package gwlock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FileName is the lock file in a profile's directory.
const FileName = ".hermes-s6.lock"

// maxContents bounds what is read of the file.
const maxContents = 4096

// Holder is what the lock's holder writes into the file.
type Holder struct {
	// Host is the holder's hostname (Docker's default: the short
	// container id), for people.
	Host string `json:"host"`
	// Boot and PidNS identify the pid namespace (the kernel's boot id and
	// the namespace's inode): equal for two processes in one container.
	Boot  string `json:"boot_id"`
	PidNS string `json:"pid_ns"`
	// Pid is the gateway's pid in its own pid namespace.
	Pid int `json:"pid"`
	// Since is when it took the lock (UTC, RFC 3339).
	Since   string `json:"since"`
	Profile string `json:"profile"`
}

// Self describes this process as a holder of profile's lock.
func Self(profile string, now time.Time) Holder {
	h := Holder{Pid: os.Getpid(), Since: now.UTC().Format(time.RFC3339), Profile: profile}
	h.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		h.Boot = strings.TrimSpace(string(b))
	}
	if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		h.PidNS = ns
	}
	return h
}

// SameContainer reports whether h ran in the pid namespace of self (its
// pid then means the same process here).
func (h Holder) SameContainer(self Holder) bool {
	return h.PidNS != "" && h.PidNS == self.PidNS && h.Boot == self.Boot
}

// String names the holder for a log line.
func (h Holder) String() string {
	if h.Host == "" && h.Pid == 0 {
		return "an unknown holder (the lock file names none)"
	}
	return fmt.Sprintf("container %s (gateway pid %d there, since %s)", clean(h.Host), h.Pid, clean(h.Since))
}

// clean keeps what is printed of the file to one short line of printable
// ASCII: the hermes user writes it, docker logs prints it.
func clean(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			b.WriteString("…")
			break
		}
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
	}
	if b.Len() == 0 {
		return "?"
	}
	return b.String()
}

// Lock is the open lock file of one profile.
type Lock struct {
	fd   int
	Path string
}

// ErrHeld is returned by TryLock while another open file holds the lock.
var ErrHeld = errors.New("held by another gateway")

// Open opens the lock file of the profile whose directory is rel below home
// ("" or "." for the default profile, "profiles/NAME" otherwise): for
// taking it (create: read-write, created if missing) or only for testing it
// and reading its holder (read-only, never created). home is opened as given; every component
// below it must be a real directory, the file a regular file with one link.
// The descriptor is close-on-exec until Inherit.
func Open(home, rel string, create bool) (*Lock, error) {
	dfd, err := unix.Open(home, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: home, Err: err}
	}
	path := home
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			unix.Close(dfd)
			return nil, fmt.Errorf("gwlock: %q leaves %s", rel, home)
		}
		path += "/" + c
		next, err := unix.Openat(dfd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(dfd)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: describe(err)}
		}
		dfd = next
	}
	defer unix.Close(dfd)
	path += "/" + FileName
	// Read-only unless creating: enough to test the lock and read its
	// holder (root does so at boot, and writes nothing there).
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	if create {
		flags = unix.O_RDWR | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	}
	fd, err := unix.Openat(dfd, FileName, flags, 0o644)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: describe(err)}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a plain file (a regular file with one link): refusing to use it as the gateway lock; remove it", path)
	}
	return &Lock{fd: fd, Path: path}, nil
}

func describe(err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%w (a symlink or not a directory: refused)", err)
	}
	return err
}

// settle is how long TryLock keeps trying before it says the lock is held:
// Held (the probe, status, healthcheck and the reconciler test the lock with
// a shared lock dropped at once) must not pass for a holder.
var settle = []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond}

// TryLock takes the exclusive lock without waiting for a holder: ErrHeld
// while another open file holds it (for longer than a test of Held lasts).
func (l *Lock) TryLock() error {
	err := l.tryLock()
	for _, d := range settle {
		if err != ErrHeld {
			break
		}
		time.Sleep(d) // a test of Held lasts microseconds
		err = l.tryLock()
	}
	return err
}

func (l *Lock) tryLock() error {
	for {
		err := unix.Flock(l.fd, unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return ErrHeld
		}
		return fmt.Errorf("flock %s: %w", l.Path, err)
	}
}

// Held reports whether another open file holds the lock, without keeping
// anything: a shared lock is tried and dropped at once.
func (l *Lock) Held() bool {
	err := unix.Flock(l.fd, unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		unix.Flock(l.fd, unix.LOCK_UN)
		return false
	}
	return errors.Is(err, unix.EWOULDBLOCK)
}

// Holder reads who wrote the file last (the holder, while it is held).
func (l *Lock) Holder() (Holder, error) {
	buf := make([]byte, maxContents+1)
	n, err := unix.Pread(l.fd, buf, 0)
	if err != nil {
		return Holder{}, fmt.Errorf("reading %s: %w", l.Path, err)
	}
	if n > maxContents {
		return Holder{}, fmt.Errorf("%s: larger than %d bytes", l.Path, maxContents)
	}
	var h Holder
	if b := bytes.TrimSpace(buf[:n]); len(b) > 0 {
		if err := json.Unmarshal(b, &h); err != nil {
			return Holder{}, fmt.Errorf("%s: %v", l.Path, err)
		}
	}
	return h, nil
}

// Record writes h as the file's contents; call it holding the lock.
func (l *Lock) Record(h Holder) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := unix.Ftruncate(l.fd, 0); err != nil {
		return fmt.Errorf("writing %s: %w", l.Path, err)
	}
	if n, err := unix.Pwrite(l.fd, b, 0); err != nil || n != len(b) {
		if err == nil {
			err = fmt.Errorf("short write (%d of %d bytes)", n, len(b))
		}
		return fmt.Errorf("writing %s: %w", l.Path, err)
	}
	return nil
}

// Inherit clears close-on-exec: the program exec'd next holds the lock, and
// it is released when that process (and any child it passed the descriptor
// on to) is gone.
func (l *Lock) Inherit() error {
	if _, err := unix.FcntlInt(uintptr(l.fd), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("%s: %w", l.Path, err)
	}
	return nil
}

// Fd is the descriptor (the lock, once taken).
func (l *Lock) Fd() int { return l.fd }

// Close releases the descriptor (and the lock, if this was its last copy).
func (l *Lock) Close() error { return unix.Close(l.fd) }

// Backoff is the pause before retry n (0-based): 1 s, doubling, at most
// 30 s.
func Backoff(n int) time.Duration {
	d := time.Second
	for i := 0; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// Waiter takes a lock for a gateway, waiting while another holds it.
type Waiter struct {
	Lock   *Lock
	Self   Holder
	Sleep  func(time.Duration)
	Logf   func(format string, a ...any)
	Alive  func(pid int) bool // in this pid namespace
	Remind int                // retries at the longest pause between two "still waiting" lines
	Now    func() time.Time   // when set, Self.Since is the time the lock is taken
	// Replace, when set, is asked to end a live holder of this container
	// (`gateway run --replace`: its supervisor was killed and the gateway
	// lives on, orphaned); true when it did. Asked once per holder.
	Replace  func(h Holder) bool
	replaced int
	retries  int
}

// Wait returns once the lock is taken and recorded as Self's, or with the
// error that keeps it from being taken. While another holds it, it says so
// when it starts waiting, whenever the holder changes, and every Remind
// retries; then it sleeps Backoff(n) and tries again.
func (w *Waiter) Wait() error {
	var last string
	since := 0
	for n := 0; ; n++ {
		err := w.Lock.TryLock()
		if err == nil {
			break
		}
		if !errors.Is(err, ErrHeld) {
			return err
		}
		if w.Replace != nil {
			if h, err := w.Lock.Holder(); err == nil && h.SameContainer(w.Self) && h.Pid > 0 && h.Pid != w.replaced &&
				(w.Alive == nil || w.Alive(h.Pid)) && w.Replace(h) {
				w.Logf("--replace: asked this container's gateway pid %d, which holds the gateway lock %s, to stop", h.Pid, w.Lock.Path)
				w.replaced = h.Pid
			}
		}
		who := w.describeHolder()
		if who != last || (w.Remind > 0 && since >= w.Remind) {
			w.Logf("the gateway lock %s is held by %s: not starting a second gateway for profile %s; retrying with a backoff up to 30s, and taking over when it is released", w.Lock.Path, who, clean(w.Self.Profile))
			last, since = who, 0
		}
		since++
		w.retries++
		w.Sleep(Backoff(n))
	}
	if w.retries > 0 {
		w.Logf("took the gateway lock %s after %d retries: starting the gateway of profile %s", w.Lock.Path, w.retries, clean(w.Self.Profile))
	}
	if w.Now != nil {
		w.Self.Since = w.Now().UTC().Format(time.RFC3339)
	}
	if err := w.Lock.Record(w.Self); err != nil {
		// The lock is what counts; the contents only name the holder.
		w.Logf("warning: %v (other containers will not see who holds the lock)", err)
	}
	return nil
}

// Retries is how often Wait found the lock held.
func (w *Waiter) Retries() int { return w.retries }

func (w *Waiter) describeHolder() string {
	h, err := w.Lock.Holder()
	if err != nil {
		return "an unknown holder (" + clean(err.Error()) + ")"
	}
	if !h.SameContainer(w.Self) {
		return h.String()
	}
	s := fmt.Sprintf("this container (gateway pid %d, since %s)", h.Pid, clean(h.Since))
	if w.Alive != nil && h.Pid > 0 && !w.Alive(h.Pid) {
		s += ", and that gateway has exited: a process it started keeps the descriptor open (find it with `ls -l /proc/*/fd | grep " + FileName + "`)"
	}
	return s
}
