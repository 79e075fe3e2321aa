package harness

import (
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"

	"github.com/hermes-agent/hermes-s6/tools/imagesize"
)

// Benchmarks of what operators feel, each beside its baseline in the same
// run. Run with: go test -run '^$' -bench . -benchtime 5x ./harness/
// Every sub-benchmark reports median-ms (the median of its b.N samples).

// pollFast polls cond every 5 ms up to a minute; it fails the benchmark on timeout.
func pollFast(b *testing.B, what string, cond func() bool) {
	b.Helper()
	poll.WaitOn(b, func(poll.LogT) poll.Result {
		if cond() {
			return poll.Success()
		}
		return poll.Continue("waiting for %s", what)
	}, poll.WithTimeout(time.Minute), poll.WithDelay(5*time.Millisecond))
}

type samples []time.Duration

func (s samples) report(b *testing.B) {
	if len(s) == 0 {
		return
	}
	sorted := append(samples(nil), s...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	b.ReportMetric(float64(sorted[len(sorted)/2].Microseconds())/1000, "median-ms")
}

func startForBench(b *testing.B, image string, opts ...RunOpt) *Container {
	b.Helper()
	return Start(b, image, opts...)
}

func healthy(c *Container, port int) bool {
	_, err := c.GetHealth(port)
	return err == nil
}

// BenchmarkBoot: docker run until the gateway is supervised and /health
// answers, beside the engine's floor (no init at all) and a CMD that exits.
// removeAtEnd removes a benchmark's container when the benchmark ends,
// whichever way (a failed wait included); the loops also remove each one as
// soon as it is measured.
func removeAtEnd(b *testing.B, name string) {
	b.Cleanup(func() { icmd.RunCommand("docker", "rm", "-f", "-v", name) })
}

func BenchmarkBoot(b *testing.B) {
	image := testImage(b)
	b.Run("floor-entrypoint-true", func(b *testing.B) {
		var s samples
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			icmd.RunCommand("docker", "run", "--rm", "--entrypoint", "/bin/true", image).Assert(b, icmd.Success)
			s = append(s, time.Since(t0))
		}
		s.report(b)
	})
	b.Run("cmd-true", func(b *testing.B) {
		var s samples
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			icmd.RunCommand("docker", "run", "--rm", image, "true").Assert(b, icmd.Success)
			s = append(s, time.Since(t0))
		}
		s.report(b)
	})
	b.Run("supervised-and-healthy", func(b *testing.B) {
		var s samples
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			name := uniqueName(b)
			removeAtEnd(b, name)
			b.StartTimer()
			t0 := time.Now()
			icmd.RunCommand("docker", "run", "-d", "--name", name, "-p", "127.0.0.1::8642", "-e", "API_SERVER_HOST=0.0.0.0", image, "gateway", "run").Assert(b, icmd.Success)
			c := &Container{t: b, Name: name, ports: map[int]int{8642: hostPort(b, name, 8642)}}
			pollFast(b, "gateway healthy", func() bool { return healthy(c, 8642) })
			s = append(s, time.Since(t0))
			b.StopTimer()
			icmd.RunCommand("docker", "rm", "-f", "-v", name)
			b.StartTimer()
		}
		s.report(b)
	})
}

// BenchmarkCrashToServing: a crashed gateway serving again from a new pid,
// beside the stand-in's own cold start (the floor for any restart).
func BenchmarkCrashToServing(b *testing.B) {
	image := testImage(b)
	c := startForBench(b, image, Publish(8642, 8643), Cmd("gateway", "run"))
	pollFast(b, "gateway healthy", func() bool { return healthy(c, 8642) })
	b.Run("floor-agent-cold-start", func(b *testing.B) {
		var s samples
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			c.ExecAs("hermes", "sh", "-c", "API_SERVER_PORT=8643 API_SERVER_HOST=0.0.0.0 API_SERVER_KEY=bench-key-0123456789 HERMES_HOME=/tmp exec /opt/hermes/bin/hermes-agent gateway run --no-supervise >/dev/null 2>&1 &").Assert(b, icmd.Success)
			pollFast(b, "stand-in serving", func() bool { return healthy(c, 8643) })
			s = append(s, time.Since(t0))
			b.StopTimer()
			Post(c.URL(8643, "/debug/crash"))
			pollFast(b, "stand-in gone", func() bool { return !healthy(c, 8643) })
			b.StartTimer()
		}
		s.report(b)
	})
	b.Run("crash-to-serving", func(b *testing.B) {
		var s samples
		for i := 0; i < b.N; i++ {
			// s6-supervise spaces two starts of a service by at least a second;
			// a gateway that crashes after running a while is restarted at once.
			b.StopTimer()
			pollFast(b, "gateway up for a second", func() bool { return c.Slot("gateway-default").Seconds >= 1 })
			b.StartTimer()
			h, err := c.GetHealth(8642)
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if err := Post(c.URL(8642, "/debug/crash")); err != nil {
				b.Fatal(err)
			}
			pollFast(b, "new pid serving", func() bool {
				n, err := c.GetHealth(8642)
				return err == nil && n.Pid != h.Pid
			})
			s = append(s, time.Since(t0))
		}
		s.report(b)
	})
}

// BenchmarkStop: docker stop with gateway + dashboard supervised, beside the
// same image with --no-supervise (the gateway as the CMD).
func BenchmarkStop(b *testing.B) {
	image := testImage(b)
	for _, tc := range []struct {
		name string
		opts []RunOpt
	}{
		{"baseline-no-supervise", []RunOpt{Publish(8642), Cmd("gateway", "run", "--no-supervise")}},
		{"supervised-gateway-and-dashboard", []RunOpt{Publish(8642), Env("HERMES_DASHBOARD=1"), Cmd("gateway", "run")}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var s samples
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c := startForBench(b, image, tc.opts...)
				pollFast(b, "gateway healthy", func() bool { return healthy(c, 8642) })
				b.StartTimer()
				t0 := time.Now()
				icmd.RunCommand("docker", "stop", c.Name).Assert(b, icmd.Success)
				s = append(s, time.Since(t0))
			}
			s.report(b)
		})
	}
}

// BenchmarkImageSize reports the image's parts (uncompressed), read from the
// image itself: what s6, tools and rootfs add beside the base and the agent.
func BenchmarkImageSize(b *testing.B) {
	image := testImage(b)
	tarPath := filepath.Join(b.TempDir(), "image.tar")
	icmd.RunCommand("docker", "save", "-o", tarPath, image).Assert(b, icmd.Success)
	img, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		b.Fatal(err)
	}
	var totals map[string]int64
	for i := 0; i < b.N; i++ {
		layers, err := imagesize.Layers(img)
		if err != nil {
			b.Fatal(err)
		}
		totals = imagesize.Totals(layers)
	}
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	b.ReportMetric(mib(totals["base"]+totals["agent"]), "base+agent-MiB")
	b.ReportMetric(mib(totals["s6"]+totals["tools"]+totals["rootfs"]), "added-MiB")
	for _, p := range []string{"s6", "tools", "rootfs"} {
		b.ReportMetric(mib(totals[p]), p+"-MiB")
	}
}
