package account

import (
	"bufio"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// memberOfAGroup finds, in /etc/group, a user listed as a member of a group
// other than their primary one, with that group's gid.
func memberOfAGroup(t *testing.T) (string, int) {
	t.Helper()
	f, err := os.Open("/etc/group")
	assert.NilError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) != 4 || fields[3] == "" {
			continue
		}
		gid, err := strconv.Atoi(fields[2])
		if err != nil {
			continue
		}
		for _, name := range strings.Split(fields[3], ",") {
			if u, err := user.Lookup(name); err == nil && u.Gid != fields[2] {
				return name, gid
			}
		}
	}
	t.Skip("no user on this host is a supplementary member of a group")
	return "", 0
}

// Lookup gives the primary group first, then the supplementary groups
// /etc/group lists the user in, each once (hermes's groups must survive
// the drop, e.g. the Docker socket's group).
func TestLookupListsSupplementaryGroupsAfterThePrimary(t *testing.T) {
	t.Parallel()
	name, gid := memberOfAGroup(t)
	a, err := Lookup(name)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(a.Groups[0], a.GID))
	assert.Check(t, slices.Contains(a.Groups[1:], gid), "groups %v lack %d", a.Groups, gid)
	assert.Check(t, !slices.Contains(a.Groups[1:], a.GID), "primary group repeated: %v", a.Groups)
}
