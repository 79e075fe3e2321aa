package harness

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// rootPaths are where root keeps what it reads or executes: nothing under
// them may be writable by hermes, but for what hermes is given on purpose
// (allowedWritable).
var rootPaths = []string{"/", "/run", "/etc", "/usr", "/command", "/package", "/init", "/opt/hermes", "/bin", "/sbin", "/lib", "/var"}

// allowedWritable is what hermes may write outside its data, and why.
var allowedWritable = []struct{ path, why string }{
	{`^/run/service/(gateway-[a-z0-9][a-z0-9_-]*|dashboard)/supervise/control$`, "start/stop/restart a gateway or the dashboard (s6-svperms -G)"},
	{`^/run/hermes-admin/socket$`, "ask root to register or remove a profile slot (access rules: uid 0, gid hermes)"},
	// s6-rc's own super-servers bind their sockets 0777 and refuse every
	// client but root in s6-ipcserver-access (s6-rc-compile.c, make_skel:
	// data/rules/uid/0/allow and gid/0/allow only).
	{`^/run/s6-rc:s6-rc-init:[^/]+/servicedirs/s6rc-(oneshot-runner|fdholder)/s$`, "s6-rc's socket; its rules allow root only"},
}

func allowed(p string) bool {
	for _, a := range allowedWritable {
		if regexp.MustCompile(a.path).MatchString(p) {
			return true
		}
	}
	return false
}

// writableByHermes lists what hermes can write under rootPaths: not its
// data, the temporary directories, or /dev and /proc.
func writableByHermes(t *testing.T, c *Container) []string {
	t.Helper()
	script := `find ` + strings.Join(rootPaths, " ") + ` -xdev \
  \( -path /opt/data -o -path /tmp -o -path /var/tmp -o -path /run/lock -o -path /dev -o -path /proc -o -path /sys \) -prune \
  -o -writable ! -type l -print 2>/dev/null; exit 0`
	out := c.ExecAs("hermes", "sh", "-c", script).Stdout()
	var paths []string
	for _, p := range strings.Split(strings.TrimSpace(out), "\n") {
		if p != "" {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	return paths
}

func TestNoPathFromHermesToRoot(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Env("HERMES_DASHBOARD=1"), Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		poll.WaitOn(t, c.SlotIs("dashboard", "up", isUp), waitOpts...)

		// Nothing a root process reads or executes is writable by hermes,
		// but the control fifos and the admin socket.
		for _, p := range writableByHermes(t, c) {
			assert.Check(t, allowed(p), "%s is writable by hermes", p)
		}

		fingerprint := func() string {
			return c.Exec("sh", "-c", `ls -la /run /run/service /run/service/gateway-default /run/service/gateway-default/supervise /run/s6/container_environment /etc/cont-init.d /usr/local/bin /command | md5sum; md5sum /run/service/gateway-default/run /run/service/gateway-default/finish /etc/passwd; ls -la /run/service/gateway-default/event`).Stdout()
		}
		before := fingerprint()
		for what, script := range map[string]string{
			"replace a slot's run script (issue: uid=0 shell)":                             `cd /run/service/gateway-default && mv run run.orig`,
			"write a slot's run script":                                                    `printf '#!/bin/sh\nid > /tmp/x\n' > /run/service/gateway-default/run`,
			"add a slot directory to the scan directory":                                   `mkdir /run/service/evil`,
			"rescan the scan directory":                                                    `s6-svscanctl -a /run/service`,
			"plant an event fifo symlink (s6-supervise writes every ftrig1 entry as root)": `ln -s /etc/passwd '/run/service/gateway-default/event/ftrig1:@40000000aaaaaaaaaaaaaaaa:abcdefghijkl'`,
			"replace a slot's supervise status":                                            `echo x > /run/service/gateway-default/supervise/status`,
			"control the logger":                                                           `s6-svc -d /run/service/gateway-default/log`,
			"plant a symlink in /run":                                                      `ln -s /etc/shadow /run/evil`,
			"write the container environment":                                              `echo 1 > /run/s6/container_environment/EVIL`,
			"add a cont-init.d script":                                                     `echo 'id > /tmp/x' > /etc/cont-init.d/99-evil`,
			"add a program to /usr/local/bin":                                              `echo x > /usr/local/bin/evil`,
			"add a program to /command":                                                    `echo x > /command/evil`,
			"write the admin service's rules":                                              `mkdir -p /run/hermes-admin/rules/uid/10001 && touch /run/hermes-admin/rules/uid/10001/allow`,
			"run a oneshot through s6-rc's runner":                                         `s6-sudo /run/service/s6rc-oneshot-runner/s up 1`,
		} {
			r := c.ExecAs("hermes", "sh", "-c", script)
			assert.Check(t, r.ExitCode != 0, "as hermes, %s must fail:\n%s", what, r.Combined())
		}
		assert.Check(t, is.Equal(fingerprint(), before), "nothing a refused attempt touched may have changed")
		assert.Check(t, c.Exec("test", "-e", "/tmp/x").ExitCode != 0, "no root shell ran")
		s := c.Slot("gateway-default")
		assert.Check(t, isUp(s), "the gateway still runs: %s", s)

		// The admin service takes a verb and a valid, existing profile name:
		// nothing else, and a refusal changes nothing.
		slots := func() string { return c.Exec("ls", "-a", "/run/service").Stdout() }
		beforeSlots := slots()
		for _, args := range [][]string{
			{"register", "../evil"}, {"register", "Evil"}, {"register", "nosuch"}, {"start", "default"},
			{"unregister", "default"}, {"register", "a", "b"},
		} {
			r := c.ExecAs("hermes", append([]string{"s6-sudo", "/run/hermes-admin/socket"}, args...)...)
			assert.Check(t, is.Equal(r.ExitCode, 2), "%q: %s", args, r.Combined())
			assert.Check(t, is.Contains(r.Stderr(), "hermes-admin: refused"), "%q", args)
		}
		assert.Check(t, is.Equal(slots(), beforeSlots))

		// What hermes may do still works: profile create, start, stop, delete.
		c.ExecAs("hermes", "hermes", "profile", "create", "work").Assert(t, icmd.Expected{Out: "slot gateway-work, down"})
		id := c.Exec("cat", "/run/service/gateway-work/hermes-slot").Stdout()
		assert.Check(t, is.Equal(id, "gateway work\n"))
		owner := c.Exec("stat", "-c", "%U %a", "/run/service/gateway-work", "/run/service/gateway-work/run").Stdout()
		assert.Check(t, is.Equal(owner, "root 755\nroot 755\n"), "a slot registered for hermes is root's")
		c.ExecAs("hermes", "hermes", "-p", "work", "gateway", "start").Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-work", "up", isUp), waitOpts...)
		c.ExecAs("hermes", "hermes", "-p", "work", "gateway", "stop").Assert(t, icmd.Success)
		c.ExecAs("hermes", "hermes", "gateway", "restart").Assert(t, icmd.Success)
		c.ExecAs("hermes", "hermes", "profile", "delete", "work").Assert(t, icmd.Success)
		assert.Check(t, c.Exec("test", "-e", "/run/service/gateway-work").ExitCode != 0)
		for _, p := range writableByHermes(t, c) {
			assert.Check(t, allowed(p), "after the verbs, %s is writable by hermes", p)
		}
	})
}

func TestSystemDirectoryAsHermesHomeIsRefused(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		for _, home := range []string{"/", "/etc"} {
			c := Start(t, image, Env("HERMES_HOME="+home), Cmd("sleep", "infinity"))
			poll.WaitOn(t, c.LogContains(`HERMES_HOME="`+home+`" is`), waitOpts...)
			assert.Check(t, is.Contains(c.Logs(), "refusing to give it to the hermes user"))
			owners := c.Exec("stat", "-c", "%U %a %n", "/", "/etc", "/etc/passwd").Stdout()
			assert.Check(t, is.Equal(owners, "root 755 /\nroot 755 /etc\nroot 644 /etc/passwd\n"), home)
			c.Exec("hermes", "gateway", "status").Assert(t, icmd.Expected{ExitCode: 1, Err: "refusing to give it to the hermes user"})
			assert.Check(t, is.Len(procsMatching(c.Procs(), gatewayRE), 0), "no gateway runs")
		}
		r := RunToExit(t, image, Env("HERMES_HOME=/etc"), Cmd("gateway", "run"))
		assert.Check(t, is.Equal(r.ExitCode, 1), r.Combined())
		assert.Check(t, is.Contains(r.Combined(), `hermes: HERMES_HOME="/etc" is /etc, a system directory`))
	})
}

// TestSymlinksPlantedInTheVolumeLeadRootNowhere: hermes owns the volume, so
// it can leave symlinks where root later writes (the boot log, a profile
// directory). Neither a reboot nor an operator's `docker exec` as root may
// then write, or hand to hermes, anything outside the volume.
func TestSymlinksPlantedInTheVolumeLeadRootNowhere(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		c := Start(t, image, Cmd("gateway", "run"))
		poll.WaitOn(t, c.SlotIs("gateway-default", "up", isUp), waitOpts...)
		target := "/etc/cont-init.d/10-hermes-setup"
		before := c.Exec("sh", "-c", "stat -c '%U %a' "+target+"; md5sum "+target).Stdout()
		c.ExecAs("hermes", "sh", "-c", `set -e
cd /opt/data
rm -f logs/container-boot.log && ln -s `+target+` logs/container-boot.log
ln -s /etc/cont-init.d profiles/evil`).Assert(t, icmd.Success)

		// The operator, as root, drives the planted profile.
		r := c.Exec("hermes", "-p", "evil", "gateway", "start")
		assert.Check(t, r.ExitCode != 0, "a profile that leads out of the volume is refused: %s", r.Combined())
		icmd.RunCommand("docker", "restart", "-t", "10", c.Name).Assert(t, icmd.Success)
		poll.WaitOn(t, c.SlotIs("gateway-default", "up after restart", isUp), waitOpts...)

		assert.Check(t, is.Equal(c.Exec("sh", "-c", "stat -c '%U %a' "+target+"; md5sum "+target).Stdout(), before), "the root-run script is untouched")
		assert.Check(t, c.Exec("sh", "-c", "ls /etc/cont-init.d | grep -v '^[0-9]'").Stdout() == "", "nothing new in /etc/cont-init.d")
		for _, p := range writableByHermes(t, c) {
			assert.Check(t, allowed(p), "%s is writable by hermes", p)
		}
	})
}
