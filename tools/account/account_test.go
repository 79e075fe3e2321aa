package account

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
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

// Drop changes the whole process: it runs in a child (this test binary).
func TestDropReallyDrops(t *testing.T) {
	if os.Getenv("ACCOUNT_TEST_DROP_CHILD") == "1" {
		// In the child: drop, then say who we are.
		if err := Drop(65534, 65533, []int{65533}); err != nil {
			os.Stdout.WriteString("error: " + err.Error())
			os.Exit(1)
		}
		groups, _ := os.Getgroups()
		fmt.Printf("uid=%d euid=%d gid=%d egid=%d groups=%v", os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), groups)
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		t.Skip("dropping privileges needs root")
	}
	// In a child process: the test process keeps root.
	cmd := exec.Command(os.Args[0], "-test.run=^TestDropReallyDrops$")
	cmd.Env = append(os.Environ(), "ACCOUNT_TEST_DROP_CHILD=1")
	out, err := cmd.Output()
	assert.NilError(t, err, string(out))
	assert.Check(t, is.Equal(string(out), "uid=65534 euid=65534 gid=65533 egid=65533 groups=[65533]"))
}

// A child started with Credential runs as the account while the parent
// keeps root.
func TestCredentialStartsTheChildAsTheAccount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("starting a child as another user needs root")
	}
	a := Account{Name: "nobody", UID: 65534, GID: 65533, Groups: []int{65533, 65532}}
	cmd := exec.Command("/bin/sh", "-c", "id -u; id -g; id -G")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: a.Credential()}
	out, err := cmd.Output()
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(out), "65534\n65533\n65533 65532\n"))
	assert.Check(t, is.Equal(os.Geteuid(), 0), "the parent keeps its ids")
}
