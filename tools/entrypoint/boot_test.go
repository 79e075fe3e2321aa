package entrypoint

import (
	"bytes"
	"os"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// boot runs Wrapper.Boot on a fake process and says what happened.
func (s system) boot(t *testing.T, pid int, setupCode int, args ...string) (p process, setups int) {
	t.Helper()
	var stderr bytes.Buffer
	w := Wrapper{Proc: fakeProcess{s, &p}, Stderr: &stderr}
	returned := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.code = w.Boot(args, pid, "tini", func() int { setups++; return setupCode })
		returned = true
	}()
	<-done
	p.replaced, p.stderr = !returned, stderr.String()
	return p, setups
}

func TestBootAsPID1BecomesInit(t *testing.T) {
	p, setups := system{uid: 0, hermes: hermesUser}.boot(t, 1, 0, "gateway", "run")
	assert.Check(t, p.replaced)
	assert.Check(t, is.DeepEqual(*p.exec, Plan{InitPath, []string{InitPath, "gateway", "run"}}))
	assert.Check(t, is.Equal(setups, 0), "s6-overlay's cont-init runs the setup")
	assert.Check(t, is.Equal(p.stderr, ""))
}

func TestBootNotPID1RunsTheCMDInTheForeground(t *testing.T) {
	containerEnv(t, nil)
	p, setups := system{uid: 0, hermes: hermesUser}.boot(t, 7, 0, "gateway", "run")
	assert.Check(t, is.Contains(p.stderr, "hermes-init: warning: not PID 1 (PID 1 is tini, e.g. docker run --init): s6 supervision is off"))
	assert.Check(t, is.Equal(setups, 1), "root runs the setup step first")
	assert.Check(t, p.replaced)
	assert.Check(t, is.DeepEqual(*p.exec, Plan{Front, []string{"hermes", "gateway", "run"}}))
	assert.Check(t, is.DeepEqual(p.droppedTo, []int{10000, 10001}), "as hermes")

	p, setups = system{uid: 10000, hermes: &account10000}.boot(t, 7, 0, "gateway", "run")
	assert.Check(t, is.Equal(setups, 0), "no root, no setup")
	assert.Check(t, p.replaced)
}

func TestBootStopsWhenSetupFails(t *testing.T) {
	p, setups := system{uid: 0, hermes: hermesUser}.boot(t, 7, 1, "gateway", "run")
	assert.Check(t, is.Equal(setups, 1))
	assert.Check(t, is.Equal(p.code, 1))
	assert.Check(t, !p.replaced, "nothing runs after a failed setup")
	assert.Check(t, p.exec == nil)
}

func TestBootReportsAnInitThatCannotRun(t *testing.T) {
	p, _ := system{uid: 0, hermes: hermesUser, execErr: errNoInit}.boot(t, 1, 0)
	assert.Check(t, is.Equal(p.code, 111))
	assert.Check(t, is.Equal(p.stderr, "hermes-init: cannot run /init: no such file or directory\n"))
}

var account10000 = *hermesUser

var errNoInit = syscall.ENOENT

func TestHostIsThisProcess(t *testing.T) {
	var h Host
	assert.Check(t, is.Equal(h.Getuid(), os.Getuid()))
	assert.Check(t, is.Equal(h.Getgid(), os.Getgid()))
	a, err := h.Lookup("root")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(a.UID, 0))
	assert.Check(t, is.ErrorContains(h.Exec("/nonexistent/prog", []string{"prog"}, nil), "no such file"))
}
