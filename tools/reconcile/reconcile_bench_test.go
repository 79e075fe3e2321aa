package reconcile

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
	"github.com/hermes-agent/hermes-s6/tools/profile"
	"github.com/hermes-agent/hermes-s6/tools/render"
	"github.com/hermes-agent/hermes-s6/tools/s6"
)

// BenchmarkReconcile100Profiles: a boot reconcile of 100 profiles whose
// desired state is running, on a live s6-svscan, until every slot is up.
func BenchmarkReconcile100Profiles(b *testing.B) {
	if _, err := exec.LookPath("s6-svscan"); err != nil {
		b.Skip("s6 is not installed")
	}
	const n = 100
	b.Run("reconcile-until-all-up", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			m, home, stop := benchScan(b)
			for p := 0; p < n; p++ {
				dir := profile.Dir(home, fmt.Sprintf("p%03d", p))
				os.MkdirAll(dir, 0o755)
				profile.WriteState(home, fmt.Sprintf("p%03d", p), profile.Running, -1, -1)
			}
			r := &Reconciler{Home: home, S6: m, Getenv: func(string) string { return "" }, UID: -1, GID: -1, Log: io.Discard, Slot: benchSlot}
			b.StartTimer()
			t0 := time.Now()
			r.Run()
			b.ReportMetric(float64(time.Since(t0).Milliseconds()), "reconcile-ms")
			waitAllUp(b, m, n)
			b.StopTimer()
			stop()
		}
	})
}

var benchSlot func(string) render.Slot

// benchScan starts s6-svscan on a temp scan dir whose slots run `sleep`.
func benchScan(b *testing.B) (*s6.Manager, string, func()) {
	root := b.TempDir()
	scan := filepath.Join(root, "service")
	home := filepath.Join(root, "home")
	os.MkdirAll(scan, 0o755)
	os.MkdirAll(home, 0o755)
	front := filepath.Join(root, "front")
	os.WriteFile(front, []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755)
	cmd := exec.Command("s6-svscan", scan)
	cmd.Env = append(os.Environ(), "HERMES_HOME="+home)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for exec.Command("s6-svscanctl", "-a", scan).Run() != nil {
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	m := s6.New(scan)
	u, _ := user.Current()
	tool := s6test.Tool(b)
	slot := func(p string) render.Slot {
		s := render.GatewaySlot(p)
		s.Front, s.Shell, s.User, s.Tool = front, "/bin/sh", u.Username, tool
		s.Probe = nil // nothing serves /health here: a probe would poll for ever
		return s
	}
	benchSlot = slot
	return m, home, func() {
		exec.Command("s6-svscanctl", "-t", scan).Run()
		cmd.Wait()
		s6test.KillUnder(root)
	}
}

// waitAllUp waits until n slots have been seen up; a slot seen up is not
// asked again, so the polling itself stays cheap.
func waitAllUp(b *testing.B, m *s6.Manager, n int) {
	deadline := time.Now().Add(time.Minute)
	seen := map[string]bool{}
	for {
		slots, _ := m.Slots()
		for _, s := range slots {
			if !seen[s.Name] {
				if st, err := m.Status(s.Name); err == nil && st.Up {
					seen[s.Name] = true
				}
			}
		}
		if len(seen) >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d slots up after a minute", len(seen), n)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}
