package stage

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LayServices lays the longruns of the s6-rc source directory p.RcD where
// s6-overlay 3.2.3.0 has them at boot and in the layout s6-rc gives them
// (rc.init: "s6-rc-compile /run/s6/db …/s6-rc.d …/sources" then "s6-rc-init
// -c /run/s6/db /run/service", with s6-rc's default live directory
// /run/s6-rc):
//
//   - p.DB/servicedirs/NAME: each longrun as s6-rc-compile writes it
//     (s6-rc@v0.6.1.0 src/s6-rc/s6-rc-compile.c: write_servicedirs): only
//     what s6-supervise reads (run, finish, notification-fd, lock-fd,
//     timeout-kill, timeout-finish, max-death-tally, down-signal,
//     flag-timeout-killpg, flag-newpidns, template/, data/, env/): no type,
//     dependencies.d, producer-for, consumer-for or other files. In a
//     pipeline (a producer or a consumer), run and finish are wrappers that
//     take the pipe from s6rc-fdholder and exec the originals, which become
//     run.user and finish.user (write_exe_wrapper). Plus s6rc-oneshot-runner
//     and s6rc-fdholder (make_skel, write_oneshot_runner, write_fdholder),
//     with stand-ins where Debian lacks an s6-rc program.
//   - p.LiveDir, a relative symlink to p.LiveDir:s6-rc-init:XXXXXX
//     (src/s6-rc/s6-rc-init.c: main; src/libs6rc/s6rc_livedir_create.c)
//     holding a copy of those service directories (hiercopy), each with a
//     down file and an event/ fifodir (s6rc_servicedir_manage.c →
//     s6@v2.15.0.0 src/libs6/s6_supervise_link_names.c with option 4,
//     "don't start the service").
//   - p.ScanDir/NAME: a symlink to p.LiveDir/servicedirs/NAME (the path
//     through the p.LiveDir link, as s6_supervise_link gets it); a logger is
//     its own entry NAME-log, never NAME/log.
//   - p.ScanDir/s6-linux-init-shutdownd: a plain directory, as s6-linux-init
//     copies it from its run-image (layShutdownd).
//
// Every s6-rc service is left down; BootServices brings up the boot plan as
// `s6-rc -u change top` does, removing the down files of what it starts.
// Oneshots and bundles are not laid. A source s6-rc-compile would refuse is
// refused, with s6-rc-compile's words.
func LayServices(p Paths) error {
	s, err := readSource(p.RcD)
	if err != nil {
		return err
	}
	compiled := filepath.Join(p.DB, "servicedirs")
	if err := os.MkdirAll(compiled, 0o755); err != nil {
		return err
	}
	if err := writeOneshotRunner(compiled, p.BinDir); err != nil {
		return fmt.Errorf("laying %s: %w", OneshotRunner, err)
	}
	if err := writeFDHolder(compiled, p.BinDir, s.consumers()); err != nil {
		return fmt.Errorf("laying %s: %w", FDHolder, err)
	}
	names := []string{OneshotRunner, FDHolder}
	for _, name := range s.longruns() {
		if err := writeServicedir(s, name, compiled, p.BinDir); err != nil {
			return fmt.Errorf("laying %s: %w", name, err)
		}
		names = append(names, name)
	}
	live, err := makeLiveDir(p)
	if err != nil {
		return fmt.Errorf("creating the live directory: %w", err)
	}
	if err := copyTree(compiled, filepath.Join(live, "servicedirs")); err != nil {
		return fmt.Errorf("copying %s: %w", compiled, err)
	}
	if err := linkLiveDir(p.LiveDir, filepath.Base(live)); err != nil {
		return err
	}
	if err := os.MkdirAll(p.ScanDir, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		dir := filepath.Join(p.LiveDir, "servicedirs", name)
		if err := os.WriteFile(filepath.Join(dir, "down"), nil, 0o644); err != nil {
			return fmt.Errorf("laying %s: %w", name, err)
		}
		if err := fifodir(filepath.Join(dir, "event")); err != nil {
			return fmt.Errorf("laying %s: %w", name, err)
		}
		if err := os.Symlink(dir, filepath.Join(p.ScanDir, name)); err != nil {
			return fmt.Errorf("laying %s: %w", name, err)
		}
	}
	if err := layShutdownd(p); err != nil {
		return fmt.Errorf("laying %s: %w", Shutdownd, err)
	}
	return nil
}

// writeServicedir writes longrun name as s6-rc-compile does
// (s6-rc v0.6.1.0, s6-rc-compile.c: write_servicedirs).
func writeServicedir(s *rcSource, name, compiled, bin string) error {
	src := filepath.Join(s.dir, name)
	dst := filepath.Join(compiled, name)
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	pipelined := s.pipelined(name)
	for _, exe := range []string{"finish", "run"} {
		b, err := os.ReadFile(filepath.Join(src, exe))
		if exe == "finish" && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dst, exe)
		if pipelined {
			if err := writeFile(target, exeWrapper(s, name, exe, bin), 0o755); err != nil {
				return err
			}
			target += ".user"
		}
		if err := writeFile(target, b, 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"notification-fd", "lock-fd", "timeout-kill", "timeout-finish", "max-death-tally"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err != nil {
			return fmt.Errorf("invalid %s/%s", src, f)
		}
		if err := writeFile(filepath.Join(dst, f), []byte(strconv.FormatUint(n, 10)+"\n"), 0o644); err != nil {
			return err
		}
	}
	for _, f := range []string{"flag-timeout-killpg", "flag-newpidns"} {
		if _, err := os.Lstat(filepath.Join(src, f)); err == nil {
			if err := writeFile(filepath.Join(dst, f), nil, 0o644); err != nil {
				return err
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(src, "down-signal")); err == nil {
		if err := writeFile(filepath.Join(dst, "down-signal"), b, 0o644); err != nil {
			return err
		}
	}
	for _, d := range []string{"template", "data", "env"} {
		st, err := os.Stat(filepath.Join(src, d))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("%s/%s is not a directory", src, d)
		}
		if err := copyTree(filepath.Join(src, d), filepath.Join(dst, d)); err != nil {
			return err
		}
		if d == "template" {
			for _, sub := range []string{"instances", "instance"} {
				if err := os.Mkdir(filepath.Join(dst, sub), 0o755); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// exeWrapper is the run (or finish) s6-rc-compile writes for a longrun in a
// pipeline (s6-rc-compile.c: write_exe_wrapper): a consumer gets the read
// end of its pipe on stdin, a producer the write end of its consumer's pipe
// on stdout, both from s6rc-fdholder; then the original runs as run.user.
// s6-rc writes absolute paths to execline's programs; Debian's execlineb
// (a wrapper that puts /usr/lib/execline/bin first in PATH) finds them by
// name.
func exeWrapper(s *rcSource, name, exe, bin string) []byte {
	sv := s.services[name]
	var b strings.Builder
	b.WriteString("#!" + bin + "/execlineb -S0\n")
	if len(sv.consumerFor) > 0 {
		b.WriteString(bin + "/s6-fdholder-retrieve ../" + FDHolder + "/s \"pipe:s6rc-r-" + name + "\"\n")
	}
	if sv.producerFor != "" {
		b.WriteString("fdmove 1 0\n" +
			bin + "/s6-fdholder-retrieve ../" + FDHolder + "/s \"pipe:s6rc-w-" + sv.producerFor + "\"\n" +
			"fdswap 0 1\n")
	}
	b.WriteString("./" + exe + ".user $@\n")
	return []byte(b.String())
}

// skel writes what every s6-rc internal service has (s6-rc-compile.c:
// make_skel): a notification-fd, and access rules that let root and the
// service's own user in (uid/0, gid/0, uid/self → 0).
func skel(dir string, notif int) error {
	for _, d := range []string{"data/rules/gid/0", "data/rules/uid/0"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"data/rules/gid/0/allow", "data/rules/uid/0/allow"} {
		if err := writeFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			return err
		}
	}
	if err := os.Symlink("0", filepath.Join(dir, "data/rules/uid/self")); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "notification-fd"), []byte(strconv.Itoa(notif)+"\n"), 0o644)
}

// writeOneshotRunner writes s6rc-oneshot-runner (s6-rc-compile.c:
// write_oneshot_runner): the same socket server, access rules and s6-sudod,
// but Debian's s6 has no s6-rc-oneshot-run, so what it would run is a refusal.
func writeOneshotRunner(compiled, bin string) error {
	dir := filepath.Join(compiled, OneshotRunner)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := skel(dir, 3); err != nil {
		return err
	}
	run := "#!" + bin + "/execlineb -P\n" +
		"# Laid by the hermes-s6 debian stage layer in the place of s6-rc's\n" +
		"# s6rc-oneshot-runner: the same server, but Debian's s6 has no\n" +
		"# s6-rc-oneshot-run, so any request is refused. This layer runs no s6-rc\n" +
		"# oneshot; cont-init.d is run by its stage 2.\n" +
		"fdmove -c 2 1\n" +
		"fdmove 1 3\n" +
		bin + "/s6-ipcserver-socketbinder -- s\n" +
		bin + "/s6-ipcserverd -1 --\n" +
		bin + "/s6-ipcserver-access -v0 -E -l0 -i data/rules --\n" +
		bin + "/s6-sudod -t 30000 --\n" +
		"/bin/sh -c \"echo \\\"" + OneshotRunner + ": fatal: no s6-rc-oneshot-run in this image (hermes-s6 debian stage layer)\\\" 1>&2 ; exit 100\" s6-rc-oneshot-run\n"
	return writeFile(filepath.Join(dir, "run"), []byte(run), 0o755)
}

// writeFDHolder writes s6rc-fdholder (s6-rc-compile.c: write_fdholder): an
// s6-fdholder-daemon that holds one pipe per consumer, pipe:s6rc-r-NAME and
// pipe:s6rc-w-NAME. s6-rc fills it with s6-rc-fdholder-filler, which Debian's
// s6 lacks: here each pipe is made by execline's piperw and stored with
// s6-fdholder-store; readiness is signalled after the last one, as the
// filler's -1 does.
func writeFDHolder(compiled, bin string, consumers []string) error {
	dir := filepath.Join(compiled, FDHolder)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := skel(dir, 1); err != nil {
		return err
	}
	env := filepath.Join(dir, "data/rules/uid/0/env")
	if err := os.Mkdir(env, 0o755); err != nil {
		return err
	}
	for f, v := range map[string]string{
		"S6_FDHOLDER_LIST":        "\n",
		"S6_FDHOLDER_STORE_REGEX": "^pipe:s6rc-\n",
		"S6_FDHOLDER_SETDUMP":     "\n",
		"S6_FDHOLDER_GETDUMP":     "\n",
	} {
		if err := writeFile(filepath.Join(env, f), []byte(v), 0o644); err != nil {
			return err
		}
	}
	if err := os.Symlink("S6_FDHOLDER_STORE_REGEX", filepath.Join(env, "S6_FDHOLDER_RETRIEVE_REGEX")); err != nil {
		return err
	}
	if err := os.Symlink("../../uid/0/env", filepath.Join(dir, "data/rules/gid/0/env")); err != nil {
		return err
	}
	var autofilled strings.Builder
	for _, c := range consumers {
		autofilled.WriteString(c + "\n")
	}
	if err := writeFile(filepath.Join(dir, "data/autofilled"), []byte(autofilled.String()), 0o644); err != nil {
		return err
	}
	nfds := 2 * len(consumers)
	if nfds < 240 {
		nfds = 256
	} else {
		nfds += nfds>>4 + 2
	}
	run := "#!" + bin + "/execlineb -P\n" +
		"# Laid by the hermes-s6 debian stage layer as s6-rc-compile writes\n" +
		"# s6rc-fdholder, except that Debian's s6 has no s6-rc-fdholder-filler:\n" +
		"# the pipes are made by piperw and stored by s6-fdholder-store.\n" +
		"pipeline -dw --\n" +
		"{\n" +
		"  if --\n" +
		"  {\n" +
		"    forstdin -x0 -- i\n" +
		"      exit 0\n" +
		"  }\n" +
		"  if -nt --\n" +
		"  {\n" +
		"    if --\n" +
		"    {\n" +
		"      if -t -- { eltest -s ./data/autofilled }\n" +
		"      redirfd -r 0 ./data/autofilled\n" +
		"      forstdin -E -o 0 -- name\n" +
		"        piperw 3 4\n" +
		"        if -- { " + bin + "/s6-fdholder-store -d 3 -- s pipe:s6rc-r-${name} }\n" +
		"        " + bin + "/s6-fdholder-store -d 4 -- s pipe:s6rc-w-${name}\n" +
		"    }\n" +
		"    echo\n" +
		"  }\n" +
		"  " + bin + "/s6-svc -t .\n" +
		"}\n" +
		bin + "/s6-fdholder-daemon -1 -n " + strconv.Itoa(nfds) + " -i data/rules -- s\n"
	return writeFile(filepath.Join(dir, "run"), []byte(run), 0o755)
}

// layShutdownd lays the scan-directory entry s6-linux-init-maker makes for
// s6-linux-init-shutdownd in a container (s6-linux-init v1.2.0.1,
// s6-linux-init-maker.c: make_image, shutdownd_script): fifo,
// notification-fd 3, run. Debian packages no s6-linux-init, so its run is a
// stand-in that does what a request on the fifo does there: halt the
// container (here through s6-svscan's finish, which is this layer's stage 3).
func layShutdownd(p Paths) error {
	dir := filepath.Join(p.ScanDir, Shutdownd)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "notification-fd"), []byte("3\n"), 0o644); err != nil {
		return err
	}
	run := "#!/bin/sh -e\n" +
		"# Laid by the hermes-s6 debian stage layer in the place of\n" +
		"# s6-linux-init-shutdownd (Debian packages no s6-linux-init): ready once\n" +
		"# the fifo is open; a request written to it halts the container.\n" +
		"exec 4<>fifo\n" +
		"echo >&3\n" +
		"exec 3>&-\n" +
		"head -c 1 <&4 >/dev/null\n" +
		"exec " + p.BinDir + "/s6-svscanctl -t ..\n"
	return writeFile(filepath.Join(dir, "run"), []byte(run), 0o755)
}

// makeLiveDir creates the live directory as s6-rc-init does (s6-rc v0.6.1.0,
// s6rc_livedir_create): LIVE:s6-rc-init:XXXXXX beside LIVE, mode 0755, with
// servicedirs/, compiled → the database, scandir → the scan directory, and
// empty prefix and lock files. (s6-rc's state file is not written: Debian
// has no s6-rc to keep it.) It returns the directory's path.
func makeLiveDir(p Paths) (string, error) {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var dir string
	for {
		suffix := make([]byte, 6)
		for i := range suffix {
			suffix[i] = chars[rand.IntN(len(chars))]
		}
		dir = p.LiveDir + ":s6-rc-init:" + string(suffix)
		err := os.Mkdir(dir, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if err := os.Mkdir(filepath.Join(dir, "servicedirs"), 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(p.DB, filepath.Join(dir, "compiled")); err != nil {
		return "", err
	}
	if err := os.Symlink(p.ScanDir, filepath.Join(dir, "scandir")); err != nil {
		return "", err
	}
	for _, f := range []string{"prefix", "lock"} {
		if err := writeFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			return "", err
		}
	}
	return dir, os.Chmod(dir, 0o755)
}

// linkLiveDir points live at target (a name beside it), replacing what is
// there atomically, as s6-rc-init does (atomic_symlink4).
func linkLiveDir(live, target string) error {
	tmp := live + ".tmp-" + strconv.Itoa(os.Getpid())
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, live); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// fifodir makes an event fifodir as s6_supervise_link does through
// ftrigw_fifodir_make(dir, getegid(), 0): mode 3730, group the egid.
func fifodir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, -1, os.Getegid()); err != nil {
		return err
	}
	return os.Chmod(dir, os.ModeSetgid|os.ModeSticky|0o730)
}

// writeFile writes a new file with exactly mode perm (umask aside).
func writeFile(p string, b []byte, perm os.FileMode) error {
	if err := os.WriteFile(p, b, perm); err != nil {
		return err
	}
	return os.Chmod(p, perm)
}

// copyTree copies a directory as skalibs' hiercopy does: directories,
// regular files and symlinks, keeping modes.
// Directories get their modes last, so that a read-only one can be filled.
func copyTree(src, dst string) error {
	type dirMode struct {
		path string
		mode os.FileMode
	}
	var dirs []dirMode
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case info.IsDir():
			dirs = append(dirs, dirMode{target, info.Mode() & (fs.ModePerm | fs.ModeSetgid | fs.ModeSticky)})
			return os.MkdirAll(target, 0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return writeFile(target, b, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i].path, dirs[i].mode); err != nil {
			return err
		}
	}
	return nil
}

func mkfifo(p string, mode uint32) error {
	if err := syscall.Mkfifo(p, mode); err != nil {
		return fmt.Errorf("mkfifo %s: %w", p, err)
	}
	return os.Chmod(p, os.FileMode(mode))
}
