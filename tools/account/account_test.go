package account

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestLookup(t *testing.T) {
	a, err := Lookup("root")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(a.UID, 0))
	assert.Check(t, is.Equal(a.GID, 0))
	assert.Check(t, is.Equal(a.Groups[0], 0), "the primary group comes first")
	assert.Check(t, is.Equal(a.Home, "/root"))

	_, err = Lookup("no-such-user-hermes-s6")
	assert.Check(t, is.ErrorContains(err, "no-such-user-hermes-s6"))
}

// Become and Drop change the whole process: they are tested in a child
// process by slotexec's TestRealDropOfPrivileges.
