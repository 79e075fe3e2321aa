package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// chartPod reads the pod template of the StatefulSet in the chart's plain
// rendering (deploy/kubernetes/hermes-s6.yaml, kept equal to the chart by
// deploy/helm's golden test).
func chartPod(t *testing.T) corev1.PodTemplateSpec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dockertest.RepoRoot(), "deploy", "kubernetes", "hermes-s6.yaml"))
	assert.NilError(t, err)
	for _, doc := range strings.Split(string(b), "\n---") {
		if !strings.Contains(doc, "kind: StatefulSet") {
			continue
		}
		var sts appsv1.StatefulSet
		assert.NilError(t, yaml.UnmarshalStrict([]byte(doc), &sts))
		return sts.Spec.Template
	}
	t.Fatal("no StatefulSet in deploy/kubernetes/hermes-s6.yaml")
	return corev1.PodTemplateSpec{}
}

// podRun is what a kubelet would do with the pod, said with docker run.
type podRun struct {
	flags     []string
	probe     []string
	grace     time.Duration
	ports     []int
	volumeDir map[string]string // mount path → host directory
}

// kubeletDir makes a host directory as the kubelet leaves a volume for a pod
// with fsGroup: root's, group fsGroup, setgid, and writable by the group
// (emptyDir: 0777 as well).
func kubeletDir(t *testing.T, fsGroup int64, mode os.FileMode) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "hermes-pod-")
	assert.NilError(t, err)
	t.Cleanup(func() { os.RemoveAll(parent) })
	assert.NilError(t, os.Chmod(parent, 0o755))
	dir := filepath.Join(parent, "vol")
	assert.NilError(t, os.Mkdir(dir, 0o700))
	assert.NilError(t, os.Chown(dir, 0, int(fsGroup)))
	assert.NilError(t, os.Chmod(dir, os.ModeSetgid|mode))
	return dir
}

// derive turns the pod template into docker run flags: the user and group,
// fsGroup as a supplementary group, no capabilities, no_new_privs, a
// read-only root, the environment, one host directory per volume with the
// kubelet's ownership, the container ports; the readiness probe and the
// grace period for the test to use.
func derive(t *testing.T, pod corev1.PodTemplateSpec) podRun {
	t.Helper()
	assert.Assert(t, is.Len(pod.Spec.Containers, 1))
	c := pod.Spec.Containers[0]
	psc, csc := pod.Spec.SecurityContext, c.SecurityContext
	assert.Assert(t, psc != nil && csc != nil, "the chart sets both securityContexts")
	r := podRun{volumeDir: map[string]string{}}
	uid, gid := psc.RunAsUser, psc.RunAsGroup
	if csc.RunAsUser != nil {
		uid = csc.RunAsUser
	}
	if csc.RunAsGroup != nil {
		gid = csc.RunAsGroup
	}
	assert.Assert(t, uid != nil && gid != nil && psc.FSGroup != nil)
	r.flags = append(r.flags, "--user", fmt.Sprintf("%d:%d", *uid, *gid), "--group-add", strconv.FormatInt(*psc.FSGroup, 10))
	if csc.Capabilities != nil {
		for _, d := range csc.Capabilities.Drop {
			r.flags = append(r.flags, "--cap-drop", string(d))
		}
	}
	if csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation {
		r.flags = append(r.flags, "--security-opt", "no-new-privileges")
	}
	if csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem {
		r.flags = append(r.flags, "--read-only")
	}
	for _, e := range c.Env {
		r.flags = append(r.flags, "-e", e.Name+"="+e.Value)
	}
	emptyDirs := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir != nil {
			emptyDirs[v.Name] = true
		}
	}
	for _, m := range c.VolumeMounts {
		mode := os.FileMode(0o775) // a claim: group-writable for fsGroup
		if emptyDirs[m.Name] {
			mode = 0o777
		}
		dir := kubeletDir(t, *psc.FSGroup, mode)
		r.volumeDir[m.MountPath] = dir
		r.flags = append(r.flags, "-v", dir+":"+m.MountPath)
	}
	for _, p := range c.Ports {
		r.ports = append(r.ports, int(p.ContainerPort))
	}
	assert.Assert(t, c.ReadinessProbe != nil && c.ReadinessProbe.Exec != nil, "the readiness probe is the image's own check")
	r.probe = c.ReadinessProbe.Exec.Command
	assert.Assert(t, pod.Spec.TerminationGracePeriodSeconds != nil)
	r.grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	return r
}

// TestChartPodRunsTheImage runs the image as the chart's pod would run it,
// flags derived from the rendered pod spec, on both s6 sources: ready by its
// probe, serving, a profile made and started as the pod's user (kubectl
// exec), a crash restarted, stopped within the grace period, and nothing
// written outside the declared volumes. A chart change that breaks the image
// fails here.
func TestChartPodRunsTheImage(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		if os.Geteuid() != 0 {
			t.Skip("making volumes with the kubelet's ownership needs root")
		}
		pod := chartPod(t)
		r := derive(t, pod)
		uid := strings.SplitN(r.flags[1], ":", 2)[0]
		c := Start(t, image, Flags(r.flags...), Publish(r.ports...), Cmd("gateway", "run"))
		probe := func(poll.LogT) poll.Result {
			res := icmd.RunCommand("docker", append([]string{"exec", "-u", uid, c.Name}, r.probe...)...)
			if res.ExitCode == 0 {
				return poll.Success()
			}
			return poll.Continue("readiness probe: %s", res.Combined())
		}
		// Everything is exec'd as the pod's user: root in this container has
		// no capabilities, and cannot read the pod user's files either.
		poll.WaitOn(t, probe, waitOpts...)
		poll.WaitOn(t, c.Healthy(8642, nil), waitOpts...)

		// kubectl exec: the pod's user.
		c.ExecAs(uid, "hermes", "profile", "create", "work").Assert(t, icmd.Success)
		c.ExecAs(uid, "sh", "-c", "echo API_SERVER_PORT=8760 >> /opt/data/profiles/work/.env").Assert(t, icmd.Success)
		c.ExecAs(uid, "hermes", "-p", "work", "gateway", "start").Assert(t, icmd.Success)
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			out := c.ExecAs(uid, "hermes", "-p", "work", "gateway", "status").Stdout()
			if strings.HasPrefix(out, "gateway-work: up") {
				return poll.Success()
			}
			return poll.Continue("gateway-work: %s", out)
		}, waitOpts...)
		poll.WaitOn(t, probe, waitOpts...)

		h, err := c.GetHealth(8642)
		assert.NilError(t, err)
		assert.NilError(t, Post(c.URL(8642, "/debug/crash")))
		poll.WaitOn(t, c.Healthy(8642, func(n Health) bool { return n.Pid != h.Pid }), waitOpts...)

		diff := icmd.RunCommand("docker", "diff", c.Name)
		diff.Assert(t, icmd.Success)
		assert.Check(t, is.Equal(strings.TrimSpace(diff.Stdout()), ""), "nothing written outside the declared volumes")

		start := time.Now()
		icmd.RunCommand("docker", "stop", "-t", strconv.Itoa(int(r.grace/time.Second)), c.Name).Assert(t, icmd.Success)
		took := time.Since(start)
		assert.Check(t, took < r.grace, "stopped within terminationGracePeriodSeconds (%s): %s", r.grace, took)
		state, err := os.ReadFile(filepath.Join(r.volumeDir["/opt/data"], "gateway_state.json"))
		assert.NilError(t, err)
		assert.Check(t, is.Contains(string(state), `"gateway_state":"stopped"`), "the gateway stopped on its own")
	})
}
