package account

import (
	"os"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// credentials is what Drop changes, read from the kernel.
type credentials struct {
	UID, EUID, GID, EGID int
	Groups               []int
}

func current(t *testing.T) credentials {
	t.Helper()
	groups, err := os.Getgroups()
	assert.NilError(t, err)
	return credentials{os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), groups}
}

// A step the kernel refuses is reported by name and value, and the later
// steps are not taken: the process keeps the identity it had. Each case
// keeps every step before the failing one at the process's own value, so
// the test process stays what it was even where a step succeeds.
func TestDropNamesTheRefusedStepAndChangesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the steps before the refused one need root to succeed")
	}
	before := current(t)
	tooMany := make([]int, 70000) // above the kernel's NGROUPS_MAX (65536)

	for _, tc := range []struct {
		name      string
		uid, gid  int
		groups    []int
		want      string
		wantErrno syscall.Errno
	}{
		{"groups", before.UID, before.GID, tooMany, "setgroups [0 0 0", syscall.EINVAL},
		{"gid", before.UID, -1, before.Groups, "setgid -1: ", syscall.EINVAL},
		{"uid", -1, before.GID, before.Groups, "setuid -1: ", syscall.EINVAL},
	} {
		err := Drop(tc.uid, tc.gid, tc.groups)
		assert.Check(t, is.ErrorContains(err, tc.want), tc.name)
		assert.Check(t, is.ErrorIs(err, tc.wantErrno), tc.name)
		assert.Check(t, is.DeepEqual(current(t), before), tc.name)
	}
}

// Become is Drop with the account's own ids: an account the kernel refuses
// (here a gid of -1, which no /etc/group line can give) fails at that step.
func TestBecomeDropsToTheAccountsIDs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setgroups needs root")
	}
	before := current(t)
	a := Account{Name: "broken", UID: before.UID, GID: -1, Groups: before.Groups}
	err := a.Become()
	assert.Check(t, is.ErrorContains(err, "setgid -1"))
	assert.Check(t, is.DeepEqual(current(t), before))
}

// Without root even the first step is refused.
func TestDropWithoutRootIsRefused(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as an unprivileged user only")
	}
	err := Drop(os.Getuid(), os.Getgid(), []int{os.Getgid()})
	assert.Check(t, is.ErrorIs(err, syscall.EPERM))
}

// Dropping to the identity the process already has succeeds and changes
// nothing: the entrypoint may call it when it already runs as the account.
func TestDropToTheCurrentIdentityIsANoOp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setgroups needs root")
	}
	before := current(t)
	assert.NilError(t, Drop(before.UID, before.GID, before.Groups))
	assert.Check(t, is.DeepEqual(current(t), before))
}
