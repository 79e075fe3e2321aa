// Package account looks up a Unix account and makes the process become it.
package account

import (
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// Hermes is the unprivileged account the gateways, the dashboard and the
// agent run as.
const Hermes = "hermes"

// Account is who a process becomes.
type Account struct {
	Name     string
	UID, GID int
	Groups   []int // supplementary groups, the primary one included
	Home     string
}

// Lookup reads name from /etc/passwd and its groups from /etc/group (the
// binary is static: no NSS), as s6-envuidgid does.
func Lookup(name string) (Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, err
	}
	a := Account{Name: name, Home: u.HomeDir}
	if a.UID, err = strconv.Atoi(u.Uid); err != nil {
		return Account{}, fmt.Errorf("user %s: uid %q: %v", name, u.Uid, err)
	}
	if a.GID, err = strconv.Atoi(u.Gid); err != nil {
		return Account{}, fmt.Errorf("user %s: gid %q: %v", name, u.Gid, err)
	}
	a.Groups = []int{a.GID}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && g != a.GID {
				a.Groups = append(a.Groups, g)
			}
		}
	}
	return a, nil
}

// Become drops the process (every thread) to the account.
func (a Account) Become() error { return Drop(a.UID, a.GID, a.Groups) }

// Credential is the account as exec.Cmd's SysProcAttr.Credential: a child
// started as the account, the parent keeping its own ids.
func (a Account) Credential() *syscall.Credential {
	groups := make([]uint32, len(a.Groups))
	for i, g := range a.Groups {
		groups[i] = uint32(g)
	}
	return &syscall.Credential{Uid: uint32(a.UID), Gid: uint32(a.GID), Groups: groups}
}

// Drop sets the supplementary groups, then the gid, then the uid: once the
// uid is not 0 the others can no longer be changed.
func Drop(uid, gid int, groups []int) error {
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", groups, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	return nil
}
