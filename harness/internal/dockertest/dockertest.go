// Package dockertest is what the harness packages (harness, harness/publish)
// share about the repository, the engine and the image under test.
package dockertest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"gotest.tools/v3/icmd"

	"github.com/hermes-agent/hermes-s6/tools/s6"
)

// BreadcrumbMark is in the breadcrumb `gateway run` prints when it hands
// the gateway to s6 (front.Breadcrumb).
const BreadcrumbMark = "now runs the gateway under s6 supervision"

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(file))))
}

// EngineProblem says why no Docker engine answers, or "".
func EngineProblem() string {
	if r := icmd.RunCommand("docker", "info", "--format", "{{.ServerVersion}}"); r.ExitCode != 0 {
		return "no Docker engine reachable (docker info: " + FirstLine(r.Combined()) + "); run sh .ci/provision"
	}
	return ""
}

// FirstLine is s's first line, trimmed.
func FirstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Tail is s's last n lines.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RandHex is n random bytes in hex, for unique names.
func RandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Slot is a slot's state inside a container, as s6-svstat reports it.
type Slot struct {
	Exists bool
	s6.Status
}

func (s Slot) String() string {
	if !s.Exists {
		return "no such slot"
	}
	return fmt.Sprintf("up=%v wantup=%v pid=%d exit=%d signal=%q for=%.0fs", s.Up, s.WantUp, s.Pid, s.ExitCode, s.Signal, s.Seconds)
}

// SlotArgv is the command that reads slot's state in the image.
func SlotArgv(slot string) []string {
	return []string{"/command/s6-svstat", "-o", s6.SvstatFields, "/run/service/" + slot}
}

// ParseSlot reads SlotArgv's result: a slot that s6-svstat cannot read
// (exit code not 0, or output it does not recognise) does not exist.
func ParseSlot(r *icmd.Result) Slot {
	if r.ExitCode != 0 {
		return Slot{}
	}
	st, err := s6.ParseStatus(r.Stdout())
	if err != nil {
		return Slot{}
	}
	return Slot{Exists: true, Status: st}
}
