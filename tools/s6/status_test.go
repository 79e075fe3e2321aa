package s6

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Status
		str  string
	}{
		{"true true false true 42 -1 NA 7\n", Status{Up: true, WantUp: true, Ready: true, Pid: 42, ExitCode: -1, Seconds: 7}, "up (pid 42) 7 seconds"},
		{"false false true false -1 78 NA 3", Status{NormallyUp: true, ExitCode: 78, Seconds: 3}, "down (exitcode 78) 3 seconds"},
		{"false true false false -1 -1 SIGKILL 0", Status{WantUp: true, ExitCode: -1, Signal: "SIGKILL"}, "down (signal SIGKILL) 0 seconds, want up"},
	} {
		st, err := ParseStatus(tc.line)
		assert.NilError(t, err)
		assert.Check(t, is.DeepEqual(st, tc.want))
		assert.Check(t, is.Equal(st.String(), tc.str))
	}
}

func TestParseStatusRejectsGarbage(t *testing.T) {
	for _, line := range []string{"", "up (pid 3) 4 seconds", "maybe true false false 1 -1 NA 0", "true true false false x -1 NA 0", "true true false false 1 y NA 0", "true true false false 1 -1 NA z"} {
		_, err := ParseStatus(line)
		assert.Check(t, err != nil, "%q must not parse", line)
	}
}

func TestParseDeath(t *testing.T) {
	st, ok, err := ParseDeath("@400000006b075e8609c39ef7 exitcode 0\n@400000006b075e89188ca0fa exitcode 70\n")
	assert.Check(t, err)
	assert.Check(t, ok)
	assert.Check(t, is.Equal(st.ExitCode, 70))
	st, ok, err = ParseDeath("@400000006b075e89188ca0fa signal SIGKILL\n")
	assert.Check(t, err)
	assert.Check(t, ok)
	assert.Check(t, is.DeepEqual(st, Status{ExitCode: -1, Signal: "SIGKILL"}))
	_, ok, err = ParseDeath("")
	assert.Check(t, err)
	assert.Check(t, !ok, "no death recorded")
	_, _, err = ParseDeath("@4000 something else\n")
	assert.Check(t, is.ErrorContains(err, "unexpected output"))
	_, _, err = ParseDeath("@4000 exitcode x\n")
	assert.Check(t, is.ErrorContains(err, `exit code "x"`))
}
