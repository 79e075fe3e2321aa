package standin

// The production System: what it runs, execs and waits for (standin.go).

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// The package's Main is the production System: help works before any
// profile is resolved, and a missing command is a usage error on stderr.
func TestMainOnTheRealSystem(t *testing.T) {
	t.Parallel()
	var out, errOut strings.Builder
	assert.Equal(t, Main([]string{"--help"}, &out, &errOut), exitOK)
	assert.Check(t, is.Equal(out.String(), Usage))
	assert.Check(t, is.Equal(errOut.String(), ""))

	s := NewSystem(&out, &errOut)
	assert.Check(t, s.Root == "", "production paths are not prefixed")
	assert.Check(t, s.Run != nil && s.Exec != nil && s.Block != nil)
}

// runProgram reports a program's exit code with what it printed (the s6
// programs' failures are shown from their stderr); a program that cannot be
// started is an error, not an exit code.
func TestRunProgramReportsExitCodeAndOutput(t *testing.T) {
	t.Parallel()
	code, stdout, stderr, err := runProgram([]string{"/bin/sh", "-c", "echo out; echo err >&2; exit 3"})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, 3))
	assert.Check(t, is.Equal(stdout, "out\n"))
	assert.Check(t, is.Equal(stderr, "err\n"))

	code, stdout, _, err = runProgram([]string{"/bin/sh", "-c", "echo fine"})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(code, 0))
	assert.Check(t, is.Equal(stdout, "fine\n"))

	code, _, _, err = runProgram([]string{"/command/hermes-s6-no-such-program"})
	assert.Check(t, errors.Is(err, syscall.ENOENT), "%v", err)
	assert.Check(t, is.Equal(code, -1))
}

// execvp looks a bare name up in PATH like os.execvp; a name it cannot find
// or a path that does not exist is an error and the process goes on (the s6
// redirect then blocks until SIGTERM instead of exec'ing sleep).
func TestExecvpFailsWithoutReplacingTheProcess(t *testing.T) {
	t.Parallel()
	err := execvp("hermes-s6-no-such-program", []string{"x"}, nil)
	assert.Check(t, errors.Is(err, exec.ErrNotFound), "%v", err)
	err = execvp("/nonexistent/sleep", []string{"sleep", "infinity"}, nil)
	assert.Check(t, errors.Is(err, syscall.ENOENT), "%v", err)
}

// blockUntilSIGTERM is _block_until_terminated: it returns 128+SIGTERM once
// SIGTERM arrives.
func TestBlockUntilSIGTERMExits143(t *testing.T) {
	guardSignals(t)
	done := make(chan int, 1)
	go func() { done <- blockUntilSIGTERM() }()
	var code int
	// It listens only once it runs: send SIGTERM until it answers.
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		select {
		case code = <-done:
			return poll.Success()
		default:
		}
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			return poll.Error(err)
		}
		return poll.Continue("still blocked")
	}, waitOpts...)
	assert.Check(t, is.Equal(code, 143))
}
