package helm

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

const chartDir = "hermes-s6"

// The plain manifests for `kubectl apply` users: the chart rendered with its
// default values, release name hermes-s6. Relative to testdata/ (golden's
// root), so deploy/kubernetes/hermes-s6.yaml. Regenerate with
// `go test ./deploy/helm -update`.
const plainManifests = "../../kubernetes/hermes-s6.yaml"

// Realistic overrides, as a user would write them in a -f values file.
var overrides = map[string]string{
	"default": ``,
	"dashboard with basic auth": `
dashboard:
  enabled: true
  auth:
    existingSecret: hermes-dashboard-auth
envSecret:
  existingSecret: hermes-env
`,
	"custom image, resources and storage": `
image:
  repository: registry.internal/hermes-s6
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  pullPolicy: Always
imagePullSecrets:
  - name: internal-registry
resources:
  requests: {cpu: 250m, memory: 512Mi}
  limits: {memory: 2Gi}
persistence:
  storageClass: fast-ssd
  size: 20Gi
stopTimeoutMs: 30500
podAnnotations:
  backup.velero.io/backup-volumes: data
nodeSelector:
  kubernetes.io/arch: arm64
tolerations:
  - {key: dedicated, operator: Equal, value: agents, effect: NoSchedule}
`,
	"extra env and profiles": `
extraEnv:
  - name: HERMES_PROBE
    value: "1"
  - name: OPENAI_API_KEY
    valueFrom:
      secretKeyRef: {name: llm-keys, key: openai}
profiles:
  - name: work
    apiPort: 8643
  - name: home_2
    apiPort: 8644
dashboard:
  enabled: true
  host: 127.0.0.1
`,
}

// render renders the chart as `helm template hermes-s6 ./deploy/helm/hermes-s6
// -f values.yaml` does: Helm's own install action, client only.
func render(t *testing.T, valuesYAML string) (string, error) {
	t.Helper()
	manifest, _, err := renderWithNotes(t, valuesYAML)
	return manifest, err
}

func renderWithNotes(t *testing.T, valuesYAML string) (manifest, notes string, err error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	assert.NilError(t, err)
	vals, err := chartutil.ReadValues([]byte(valuesYAML))
	assert.NilError(t, err)
	install := action.NewInstall(&action.Configuration{Log: func(string, ...interface{}) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.ReleaseName = "hermes-s6"
	install.Namespace = "hermes"
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return "", "", err
	}
	return rel.Manifest, rel.Info.Notes, nil
}

type objects struct {
	statefulSets []appsv1.StatefulSet
	services     []corev1.Service
}

// decode splits the manifest and decodes every object strictly into its
// k8s.io/api type: an unknown or duplicated field fails.
func decode(t *testing.T, manifest string) objects {
	t.Helper()
	var out objects
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(manifest, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		assert.NilError(t, yaml.Unmarshal([]byte(doc), &tm))
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 StatefulSet":
			var o appsv1.StatefulSet
			assert.NilError(t, yaml.UnmarshalStrict([]byte(doc), &o), "strict decode of %s", doc)
			out.statefulSets = append(out.statefulSets, o)
		case "v1 Service":
			var o corev1.Service
			assert.NilError(t, yaml.UnmarshalStrict([]byte(doc), &o), "strict decode of %s", doc)
			out.services = append(out.services, o)
		default:
			t.Fatalf("unexpected object %s %s in the chart:\n%s", tm.APIVersion, tm.Kind, doc)
		}
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

var restricted = psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}

// psaRefusals evaluates a pod against the restricted Pod Security Standard,
// latest version, and returns why it is refused (empty: allowed).
func psaRefusals(t *testing.T, meta *metav1.ObjectMeta, spec *corev1.PodSpec) []string {
	t.Helper()
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	assert.NilError(t, err)
	var why []string
	for _, r := range ev.EvaluatePod(restricted, meta, spec) {
		if !r.Allowed {
			why = append(why, r.ForbiddenReason+": "+r.ForbiddenDetail)
		}
	}
	return why
}

func container(sts appsv1.StatefulSet) corev1.Container {
	return sts.Spec.Template.Spec.Containers[0]
}

func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestChartRendersValidRestrictedObjects(t *testing.T) {
	for name, values := range overrides {
		t.Run(name, func(t *testing.T) {
			manifest, err := render(t, values)
			assert.NilError(t, err)
			objs := decode(t, manifest)
			assert.Assert(t, is.Len(objs.statefulSets, 1))
			assert.Check(t, is.Len(objs.services, 2))
			sts := objs.statefulSets[0]
			assert.Check(t, is.Equal(*sts.Spec.Replicas, int32(1)))

			why := psaRefusals(t, &sts.Spec.Template.ObjectMeta, &sts.Spec.Template.Spec)
			assert.Check(t, is.Len(why, 0), "restricted %s refuses the pod:\n%s", restricted, strings.Join(why, "\n"))

			pod := sts.Spec.Template.Spec
			c := container(sts)
			assert.Check(t, is.Len(c.Command, 0), "the image's ENTRYPOINT runs")
			assert.Check(t, is.Len(c.Args, 0), "the image's CMD (gateway run) runs")
			assert.Check(t, is.Equal(*c.SecurityContext.ReadOnlyRootFilesystem, true))
			assert.Check(t, is.Equal(*pod.SecurityContext.RunAsUser, int64(10000)))
			assert.Check(t, is.Equal(*pod.SecurityContext.FSGroup, int64(10000)))
			assert.Check(t, is.Equal(*pod.AutomountServiceAccountToken, false))
			e := env(c)
			assert.Check(t, is.Equal(e["S6_READ_ONLY_ROOT"], "1"))
			assert.Check(t, is.Equal(e["S6_YES_I_WANT_A_WORLD_WRITABLE_RUN_BECAUSE_KUBERNETES"], "1"))
			assert.Check(t, is.Equal(e["API_SERVER_HOST"], "0.0.0.0"))

			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m.Name
			}
			assert.Check(t, is.DeepEqual(mounts, map[string]string{"/opt/data": "data", "/run": "run", "/tmp": "tmp"}))
			for _, v := range pod.Volumes {
				if v.Name == "run" {
					assert.Check(t, v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory, "/run is a memory emptyDir")
				}
			}
			for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
				assert.Assert(t, p != nil && p.Exec != nil)
				assert.Check(t, is.DeepEqual(p.Exec.Command, []string{"/usr/local/bin/hermes", "healthcheck"}))
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	manifest, err := render(t, "")
	assert.NilError(t, err)
	objs := decode(t, manifest)
	sts := objs.statefulSets[0]
	c := container(sts)
	assert.Check(t, is.Equal(c.Image, "ghcr.io/hermes-agent/hermes-s6:latest"))
	assert.Check(t, is.Equal(*sts.Spec.Template.Spec.TerminationGracePeriodSeconds, int64(10)), "ceil(4000 ms) + 6 s")
	assert.Check(t, is.Equal(env(c)["HERMES_STOP_TIMEOUT_MS"], "4000"))
	assert.Check(t, is.Equal(env(c)["API_SERVER_PORT"], "8642"))
	_, dash := env(c)["HERMES_DASHBOARD"]
	assert.Check(t, !dash, "no dashboard by default")
	assert.Check(t, is.Len(c.EnvFrom, 0))
	assert.Check(t, is.DeepEqual(servicePorts(objs.services[0]), map[string]int32{"api": 8642}))
	assert.Assert(t, is.Len(sts.Spec.VolumeClaimTemplates, 1))
	pvc := sts.Spec.VolumeClaimTemplates[0]
	assert.Check(t, is.Equal(pvc.Name, "data"))
	assert.Check(t, is.Equal(pvc.Spec.Resources.Requests.Storage().String(), "1Gi"))
	assert.Check(t, pvc.Spec.StorageClassName == nil, "the cluster's default StorageClass")

	r, l := c.ReadinessProbe, c.LivenessProbe
	assert.Check(t, is.Equal(r.PeriodSeconds, int32(5)))
	assert.Check(t, is.Equal(r.FailureThreshold, int32(3)))
	assert.Check(t, is.Equal(l.InitialDelaySeconds, int32(30)))
	assert.Check(t, is.Equal(l.PeriodSeconds, int32(30)))
	assert.Check(t, is.Equal(l.FailureThreshold, int32(3)))
}

func servicePorts(s corev1.Service) map[string]int32 {
	m := map[string]int32{}
	for _, p := range s.Spec.Ports {
		m[p.Name] = p.Port
	}
	return m
}

func TestOverrides(t *testing.T) {
	t.Run("dashboard with basic auth", func(t *testing.T) {
		manifest, err := render(t, overrides["dashboard with basic auth"])
		assert.NilError(t, err)
		objs := decode(t, manifest)
		c := container(objs.statefulSets[0])
		e := env(c)
		assert.Check(t, is.Equal(e["HERMES_DASHBOARD"], "1"))
		assert.Check(t, is.Equal(e["HERMES_DASHBOARD_HOST"], "0.0.0.0"))
		assert.Check(t, is.Equal(e["HERMES_DASHBOARD_PORT"], "9119"))
		var from []string
		for _, f := range c.EnvFrom {
			assert.Assert(t, f.SecretRef != nil, "secrets come from Secrets, never ConfigMaps")
			from = append(from, f.SecretRef.Name)
		}
		assert.Check(t, is.DeepEqual(from, []string{"hermes-env", "hermes-dashboard-auth"}))
		assert.Check(t, is.DeepEqual(servicePorts(objs.services[0]), map[string]int32{"api": 8642, "dashboard": 9119}))
	})
	t.Run("custom image, resources and storage", func(t *testing.T) {
		manifest, err := render(t, overrides["custom image, resources and storage"])
		assert.NilError(t, err)
		sts := decode(t, manifest).statefulSets[0]
		c := container(sts)
		assert.Check(t, is.Equal(c.Image, "registry.internal/hermes-s6@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"))
		assert.Check(t, is.Equal(string(c.ImagePullPolicy), "Always"))
		assert.Check(t, is.Equal(c.Resources.Limits.Memory().String(), "2Gi"))
		assert.Check(t, is.Equal(c.Resources.Requests.Cpu().String(), "250m"))
		pvc := sts.Spec.VolumeClaimTemplates[0]
		assert.Check(t, is.Equal(*pvc.Spec.StorageClassName, "fast-ssd"))
		assert.Check(t, is.Equal(pvc.Spec.Resources.Requests.Storage().String(), "20Gi"))
		assert.Check(t, is.Equal(*sts.Spec.Template.Spec.TerminationGracePeriodSeconds, int64(37)), "ceil(30.5 s) + 6 s")
		assert.Check(t, is.Equal(env(c)["HERMES_STOP_TIMEOUT_MS"], "30500"))
		assert.Check(t, is.Equal(sts.Spec.Template.Annotations["backup.velero.io/backup-volumes"], "data"))
		assert.Check(t, is.Equal(sts.Spec.Template.Spec.NodeSelector["kubernetes.io/arch"], "arm64"))
		assert.Check(t, is.Len(sts.Spec.Template.Spec.Tolerations, 1))
	})
	t.Run("extra env and profiles", func(t *testing.T) {
		manifest, err := render(t, overrides["extra env and profiles"])
		assert.NilError(t, err)
		objs := decode(t, manifest)
		c := container(objs.statefulSets[0])
		last := c.Env[len(c.Env)-1]
		assert.Check(t, is.Equal(last.Name, "OPENAI_API_KEY"), "extraEnv comes last, so it wins")
		assert.Check(t, is.Equal(last.ValueFrom.SecretKeyRef.Key, "openai"))
		assert.Check(t, is.Equal(env(c)["HERMES_PROBE"], "1"))
		assert.Check(t, is.Equal(env(c)["HERMES_DASHBOARD_HOST"], "127.0.0.1"))
		// A loopback dashboard is not published; each profile's port is.
		assert.Check(t, is.DeepEqual(servicePorts(objs.services[0]), map[string]int32{"api": 8642, "api-p1": 8643, "api-p2": 8644}))

		_, notes, err := renderWithNotes(t, overrides["extra env and profiles"])
		assert.NilError(t, err)
		assert.Check(t, is.Contains(notes, "exec sts/hermes-s6 -- hermes profile create work\n"))
		assert.Check(t, is.Contains(notes, "echo API_SERVER_PORT=8644 >> /opt/data/profiles/home_2/.env"))
		assert.Check(t, is.Contains(notes, "exec sts/hermes-s6 -- hermes -p home_2 gateway start\n"))
		assert.Check(t, is.Contains(notes, "port-forward pod/hermes-s6-0 9119"))
	})
}

// The volume without the claim template: an existing claim, or none.
func TestPersistenceVariants(t *testing.T) {
	for name, tc := range map[string]struct {
		values string
		check  func(t *testing.T, v corev1.Volume)
	}{
		"existing claim": {"persistence: {existingClaim: hermes-data}", func(t *testing.T, v corev1.Volume) {
			assert.Assert(t, v.PersistentVolumeClaim != nil)
			assert.Check(t, is.Equal(v.PersistentVolumeClaim.ClaimName, "hermes-data"))
		}},
		"no persistence": {"persistence: {enabled: false}", func(t *testing.T, v corev1.Volume) {
			assert.Check(t, v.EmptyDir != nil)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			manifest, err := render(t, tc.values)
			assert.NilError(t, err)
			sts := decode(t, manifest).statefulSets[0]
			assert.Check(t, is.Len(sts.Spec.VolumeClaimTemplates, 0))
			var found bool
			for _, v := range sts.Spec.Template.Spec.Volumes {
				if v.Name == "data" {
					found = true
					tc.check(t, v)
				}
			}
			assert.Check(t, found, "a data volume")
			why := psaRefusals(t, &sts.Spec.Template.ObjectMeta, &sts.Spec.Template.Spec)
			assert.Check(t, is.Len(why, 0), "restricted refuses the pod:\n%s", strings.Join(why, "\n"))
		})
	}
}

// helm lint finds nothing to say, with the defaults and each override.
func TestLint(t *testing.T) {
	for name, values := range overrides {
		t.Run(name, func(t *testing.T) {
			vals, err := chartutil.ReadValues([]byte(values))
			assert.NilError(t, err)
			l := lint.All(chartDir, vals, "hermes", true)
			var msgs []string
			for _, m := range l.Messages {
				if m.Severity > support.InfoSev {
					msgs = append(msgs, m.Error())
				}
			}
			assert.Check(t, is.Len(msgs, 0), "helm lint:\n%s", strings.Join(msgs, "\n"))
		})
	}
}

// The check can fail: the default pod with one field made unsafe is refused.
func TestRestrictedRefusesAnUnsafePod(t *testing.T) {
	manifest, err := render(t, "")
	assert.NilError(t, err)
	for name, spoil := range map[string]func(*corev1.PodSpec){
		"allowPrivilegeEscalation true": func(p *corev1.PodSpec) {
			p.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
		},
		"runAsUser 0": func(p *corev1.PodSpec) {
			p.SecurityContext.RunAsUser = ptr.To(int64(0))
			p.Containers[0].SecurityContext.RunAsUser = ptr.To(int64(0))
		},
	} {
		t.Run(name, func(t *testing.T) {
			sts := decode(t, manifest).statefulSets[0]
			spoil(&sts.Spec.Template.Spec)
			why := psaRefusals(t, &sts.Spec.Template.ObjectMeta, &sts.Spec.Template.Spec)
			assert.Check(t, len(why) > 0, "restricted must refuse the pod with %s", name)
			t.Logf("refused: %s", strings.Join(why, "; "))
		})
	}
}

func TestBadValuesFailRendering(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"profile name with upper case", "profiles: [{name: Work, apiPort: 8643}]",
			`profiles[0].name "Work" is not a valid profile name: it must match ^[a-z0-9][a-z0-9_-]{0,62}$`},
		{"profile name with a slash", "profiles: [{name: ../etc, apiPort: 8643}]",
			`profiles[0].name "../etc" is not a valid profile name`},
		{"profile name too long", "profiles: [{name: " + strings.Repeat("a", 64) + ", apiPort: 8643}]",
			`is not a valid profile name`},
		{"profile default", "profiles: [{name: default, apiPort: 8643}]",
			`profiles[0].name: default is the built-in profile`},
		{"profile twice", "profiles: [{name: work, apiPort: 8643}, {name: work, apiPort: 8644}]",
			`profiles[1].name "work" is listed twice`},
		{"profile port clash", "profiles: [{name: work, apiPort: 8642}]",
			`profiles[0].apiPort 8642 is already used by apiServer.port`},
		{"negative api port", "apiServer: {port: -1}",
			`apiServer.port must be a port number between 1 and 65535, got -1`},
		{"api port too large", "apiServer: {port: 65536}",
			`apiServer.port must be a port number between 1 and 65535, got 65536`},
		{"negative dashboard port", "dashboard: {enabled: true, port: -9119, auth: {existingSecret: s}}",
			`dashboard.port must be a port number between 1 and 65535, got -9119`},
		{"negative profile port", "profiles: [{name: work, apiPort: -1}]",
			`profiles[0].apiPort must be a port number between 1 and 65535, got -1`},
		{"published dashboard without auth", "dashboard: {enabled: true}",
			`dashboard.host "0.0.0.0" is not loopback, and the agent refuses to serve the dashboard there without an auth provider`},
		{"fractional stop timeout", "stopTimeoutMs: 1.5",
			`stopTimeoutMs must be a whole number of milliseconds, got 1.5`},
		// Types are values.schema.json's (Helm validates it before rendering).
		{"profile as a bare string", "profiles: [work]",
			`at '/profiles/0': got string, want object`},
		{"port as a string", `apiServer: {port: "8642"}`,
			`at '/apiServer/port': got string, want integer`},
		{"dashboard enabled as a string", `dashboard: {enabled: "yes"}`,
			`at '/dashboard/enabled': got string, want boolean`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, tc.values)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// A dashboard auth provider given some other way than dashboard.auth is
// accepted.
func TestDashboardAuthFromExtraEnv(t *testing.T) {
	_, err := render(t, `
dashboard: {enabled: true}
extraEnv:
  - name: HERMES_DASHBOARD_OIDC_ISSUER
    value: https://id.example.com
  - name: HERMES_DASHBOARD_OIDC_CLIENT_ID
    value: hermes
`)
	assert.NilError(t, err)
}

// deploy/kubernetes/hermes-s6.yaml is the chart rendered with its defaults.
func TestPlainManifestsMatchTheChart(t *testing.T) {
	manifest, err := render(t, "")
	assert.NilError(t, err)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated from deploy/helm/hermes-s6 with its default values (release\n")
	fmt.Fprintf(&b, "# name hermes-s6): do not edit; regenerate with\n")
	fmt.Fprintf(&b, "#   go test ./deploy/helm -run TestPlainManifestsMatchTheChart -update\n")
	fmt.Fprintf(&b, "# Apply with `kubectl apply -n NAMESPACE -k deploy/kubernetes`; see docs/kubernetes.md.\n")
	b.WriteString(manifest)
	golden.Assert(t, b.String(), plainManifests)
	// And the file is what kustomization.yaml lists.
	kust := golden.Get(t, filepath.Join(filepath.Dir(plainManifests), "kustomization.yaml"))
	assert.Check(t, is.Contains(string(kust), "- hermes-s6.yaml"))
}
