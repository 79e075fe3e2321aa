package harness

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// BenchmarkProfilesServing: docker run of a volume with N profiles (all
// desired running, each on its own API port) until every gateway answers
// /health from outside the container, for 0, 10, 50 and 100 profiles side
// by side; and what the supervision itself costs per profile, read on the
// host once they all serve:
//
//   - serving-ms: until the last /health answered (asked from the host on
//     the container's address, so nothing runs in the container for it);
//   - ready-ms: until s6 reported every slot up and ready (supervise/status,
//     read through /proc/PID/root), which the readiness probe decides from
//     /health;
//   - sup-cpu-ms/profile: the container's CPU (its cpuacct cgroup: every
//     process, the exited ones too) above the 0-profile run, per profile,
//     less the agent's own start-up CPU (agent-cpu-ms: the stand-in started
//     directly, without supervision, in the same container, until /health);
//   - sup-pss-KiB/profile: the proportional set size (smaps_rollup) of every
//     process of the container that is not the agent, above the 0-profile
//     run, per profile;
//   - pids/profile: pids the container's namespace allocated above the
//     0-profile run, per profile (processes and their threads).
//
// Run: go test -run '^$' -bench BenchmarkProfilesServing -benchtime 3x ./harness/
func BenchmarkProfilesServing(b *testing.B) {
	image := testImage(b)
	var base scaleCost
	for _, n := range []int{0, 10, 50, 100} {
		b.Run(fmt.Sprintf("profiles=%d", n), func(b *testing.B) {
			vol := b.TempDir()
			for i := 0; i < n; i++ {
				dir := filepath.Join(vol, "profiles", fmt.Sprintf("p%03d", i))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				os.WriteFile(filepath.Join(dir, ".env"), []byte(fmt.Sprintf("API_SERVER_PORT=%d\n", 9000+i)), 0o600)
				os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(`{"desired_state":"running"}`), 0o644)
			}
			b.Cleanup(func() { icmd.RunCommand("rm", "-rf", vol) })
			ports := []int{8642}
			for i := 0; i < n; i++ {
				ports = append(ports, 9000+i)
			}
			var serving, ready samples
			var costs []scaleCost
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				name := uniqueName(b)
				removeAtEnd(b, name)
				b.StartTimer()
				t0 := time.Now()
				icmd.RunCommand("docker", "run", "-d", "--name", name, "-e", "API_SERVER_HOST=0.0.0.0", "-v", vol+":/opt/data", image, "gateway", "run").Assert(b, icmd.Success)
				readyAt := make(chan time.Duration, 1)
				go func() { readyAt <- waitAllReady(name, n+1, t0) }()
				waitAllServing(b, name, ports)
				serving = append(serving, time.Since(t0))
				ready = append(ready, <-readyAt)
				b.StopTimer()
				costs = append(costs, measureCost(b, name))
				icmd.RunCommand("docker", "rm", "-f", name)
				b.StartTimer()
			}
			b.ReportMetric(median(serving), "serving-ms")
			cost := medianCost(costs)
			b.ReportMetric(median(ready), "ready-ms")
			if n == 0 {
				base = cost
				b.ReportMetric(cost.agentCPU, "agent-cpu-ms")
				b.ReportMetric(cost.cpu, "container-cpu-ms")
				b.ReportMetric(cost.pss, "non-agent-pss-KiB")
				b.ReportMetric(float64(cost.pids), "pids")
				return
			}
			if base.pids == 0 {
				return // run alone: no 0-profile baseline to compare with
			}
			b.ReportMetric((cost.cpu-base.cpu)/float64(n)-base.agentCPU, "sup-cpu-ms/profile")
			b.ReportMetric((cost.pss-base.pss)/float64(n), "sup-pss-KiB/profile")
			b.ReportMetric(float64(cost.pids-base.pids)/float64(n), "pids/profile")
		})
	}
}

func median(s samples) float64 {
	if len(s) == 0 {
		return 0
	}
	sorted := append(samples(nil), s...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return float64(sorted[len(sorted)/2].Microseconds()) / 1000
}

// medianCost is the median of each figure over the samples (one sample's
// CPU varies with what else the machine runs).
func medianCost(cs []scaleCost) scaleCost {
	pick := func(f func(scaleCost) float64) float64 {
		v := make([]float64, len(cs))
		for i, c := range cs {
			v[i] = f(c)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return scaleCost{
		cpu:      pick(func(c scaleCost) float64 { return c.cpu }),
		pss:      pick(func(c scaleCost) float64 { return c.pss }),
		pids:     int(pick(func(c scaleCost) float64 { return float64(c.pids) })),
		agentCPU: pick(func(c scaleCost) float64 { return c.agentCPU }),
	}
}

// scaleCost is what a container had spent once every gateway served.
type scaleCost struct {
	cpu      float64 // ms, the whole container
	pss      float64 // KiB, every process but the agents
	pids     int     // pids allocated in its namespace
	agentCPU float64 // ms, one stand-in started directly, until /health
}

var benchClient = &http.Client{Timeout: time.Second}

// waitAllServing polls /health on every port of the container's address
// until each has answered once.
func waitAllServing(b *testing.B, name string, ports []int) {
	b.Helper()
	ip := strings.TrimSpace(icmd.RunCommand("docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).Assert(b, icmd.Success).Stdout())
	pending := map[int]bool{}
	for _, p := range ports {
		pending[p] = true
	}
	poll.WaitOn(b, func(poll.LogT) poll.Result {
		for p := range pending {
			if answers(fmt.Sprintf("http://%s:%d/health", ip, p)) {
				delete(pending, p)
			}
		}
		if len(pending) == 0 {
			return poll.Success()
		}
		return poll.Continue("%d of %d gateways not serving", len(pending), len(ports))
	}, poll.WithTimeout(2*time.Minute), poll.WithDelay(10*time.Millisecond))
}

func answers(url string) bool {
	resp, err := benchClient.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// waitAllReady waits until n gateway slots are up and ready in s6's own
// status files, and returns when that was first seen (0 if not within two
// minutes: the serving wait fails the benchmark then). It runs beside the
// serving wait, so it polls on a ticker rather than through poll.WaitOn
// (whose timeout would fail the benchmark from another goroutine).
func waitAllReady(name string, n int, t0 time.Time) time.Duration {
	pid := strings.TrimSpace(icmd.RunCommand("docker", "inspect", "-f", "{{.State.Pid}}", name).Stdout())
	scan := filepath.Join("/proc", pid, "root", "run", "service")
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		ready := 0
		slots, _ := filepath.Glob(filepath.Join(scan, "gateway-*"))
		for _, slot := range slots {
			if statusReady(filepath.Join(slot, "supervise", "status")) {
				ready++
			}
		}
		if ready >= n {
			return time.Since(t0)
		}
		select {
		case <-tick.C:
		case <-deadline:
			return 0
		}
	}
}

// statusReady: s6-supervise's status file says the service is up and
// ready. Two TAI64N stamps (12 bytes each), the pid (8 bytes, big endian,
// 0 when down), then (s6 2.11–2.12, Debian's) the pgid (8 bytes) or not
// (s6 2.13 and later, the release source), the wait status (2 bytes), and
// last a flags byte whose bit 3 is "ready".
func statusReady(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && (len(b) == 35 || len(b) == 43) && binary.BigEndian.Uint64(b[24:32]) != 0 && b[len(b)-1]&8 != 0
}

// measureCost reads the container's CPU, the PSS of its processes that are
// not the agent, and its namespace's pid count; then starts one stand-in
// directly and measures the CPU it takes to serve /health.
func measureCost(b *testing.B, name string) scaleCost {
	b.Helper()
	id := strings.TrimSpace(icmd.RunCommand("docker", "inspect", "-f", "{{.Id}}", name).Assert(b, icmd.Success).Stdout())
	cg := cgroupDir(b, "cpuacct", id)
	var c scaleCost
	c.cpu = cgroupCPU(b, cg)
	for _, pid := range cgroupProcs(b, cg) {
		cmd, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if strings.HasPrefix(string(cmd), "/opt/hermes/bin/hermes-agent\x00") {
			continue
		}
		c.pss += pssKiB(filepath.Join("/proc", pid, "smaps_rollup"))
	}
	// The namespace's last pid, read by the process that takes the next.
	out := icmd.RunCommand("docker", "exec", name, "cat", "/proc/loadavg").Assert(b, icmd.Success).Stdout()
	if f := strings.Fields(out); len(f) == 5 {
		last, _ := strconv.Atoi(f[4])
		c.pids = last - 1
	}
	// The agent alone: one stand-in, started directly as hermes, until it
	// serves /health; the cgroup's CPU before and after (the exec's own
	// shell is in it too: a few ms at most).
	before := cgroupCPU(b, cg)
	icmd.RunCommand("docker", "exec", "-u", "hermes", name, "sh", "-c",
		"mkdir -p /tmp/bench-agent && API_SERVER_PORT=8699 API_SERVER_HOST=0.0.0.0 API_SERVER_KEY=bench-key-0123456789 HERMES_HOME=/tmp/bench-agent exec /opt/hermes/bin/hermes-agent gateway run --no-supervise >/dev/null 2>&1 &").Assert(b, icmd.Success)
	waitAllServing(b, name, []int{8699})
	c.agentCPU = cgroupCPU(b, cg) - before
	return c
}

func cgroupDir(b *testing.B, controller, id string) string {
	b.Helper()
	for _, d := range []string{
		filepath.Join("/sys/fs/cgroup", controller, "docker", id),
		filepath.Join("/sys/fs/cgroup", controller, "system.slice", "docker-"+id+".scope"),
		filepath.Join("/sys/fs/cgroup", "system.slice", "docker-"+id+".scope"),
		filepath.Join("/sys/fs/cgroup", "docker", id),
	} {
		if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err == nil {
			return d
		}
	}
	b.Fatalf("no %s cgroup found for container %s", controller, id)
	return ""
}

// cgroupCPU is the cgroup's CPU time in ms: cpuacct.usage (v1, ns) or
// cpu.stat usage_usec (v2).
func cgroupCPU(b *testing.B, dir string) float64 {
	if raw, err := os.ReadFile(filepath.Join(dir, "cpuacct.usage")); err == nil {
		ns, _ := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
		return ns / 1e6
	}
	f, err := os.Open(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
			us, _ := strconv.ParseFloat(v, 64)
			return us / 1e3
		}
	}
	b.Fatalf("no usage_usec in %s/cpu.stat", dir)
	return 0
}

func cgroupProcs(b *testing.B, dir string) []string {
	raw, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		b.Fatal(err)
	}
	return strings.Fields(string(raw))
}

func pssKiB(path string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb
		}
	}
	return 0
}
