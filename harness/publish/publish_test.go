// Package publish proves the hermetic multi-arch publish end to end: `docker
// buildx bake publish-hermetic` pushes linux/amd64 and linux/arm64 to a real
// registry (go-containerregistry's, in process on 127.0.0.1), and the pushed
// index is read back and checked: platforms, image configs, the binaries'
// architectures, provenance attestations, a pulled image that boots, bad
// input that fails cleanly, and reproducible per-platform digests.
//
// It needs a Docker engine, the buildx builder of .ci/provision and the
// arm64 hermetic base (sh .ci/provision makes it on amd64 hosts). Otherwise
// (or with -short) the whole package skips with one line saying why.
package publish

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// version is the VERSION of every test publish: tag "<version>-hermetic".
// Fixed, so a warm run reuses the build cache.
const version = "0.0.0-test"

// dockertest.BreadcrumbMark is in the redirect's breadcrumb (see harness/redirect_test.go).

var (
	skip string
	reg  *Registry

	pubOnce  sync.Once
	pub      *Published
	pubErr   string
	epoch    string // SOURCE_DATE_EPOCH: the last commit's time
	revision string // the last commit
)

func TestMain(m *testing.M) {
	flag.Parse()
	if skip = skipReason(); skip != "" {
		// One line for the whole package (visible with -v), no test runs.
		fmt.Println("harness/publish: SKIP: " + skip)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "hermes-publish-")
	if err == nil {
		srcDir = filepath.Join(dir, "src")
		err = snapshot(srcDir)
	}
	if err == nil {
		reg, err = startRegistry(filepath.Join(dir, "blobs"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness/publish:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	reg.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireReady(t *testing.T) {
	t.Helper()
	if skip != "" {
		t.Skip(skip)
	}
}

// published pushes the hermetic image once per run, as a clean build (see
// cleanStages), and reads it back. Clean, so that it is what anyone gets
// from this commit (TestPublishIsReproducible compares it with one more
// clean build) and not whatever the builder's cache held.
func published(t *testing.T) *Published {
	t.Helper()
	requireReady(t)
	pubOnce.Do(func() {
		epoch = git(t, "log", "-1", "--format=%ct")
		revision = git(t, "rev-parse", "HEAD")
		if sbomGenerator, pubErr = pushScanner(t); pubErr != "" {
			return
		}
		r := cleanBake(t, reg.Repo("hermes-s6"))
		if r.ExitCode != 0 {
			pubErr = "docker buildx bake publish-hermetic failed:\n" + dockertest.Tail(r.Combined(), 60)
			return
		}
		p, err := readPublished(reg.Repo("hermes-s6") + ":" + version + "-hermetic")
		if err != nil {
			pubErr = err.Error()
			return
		}
		pub = p
		t.Logf("pushed %s: index %s (bake metadata: %s)", p.Ref, p.Digest, r.Digest)
		for _, pl := range platforms {
			t.Logf("  %s manifest %s", pl, p.Images[pl])
		}
	})
	if pubErr != "" {
		t.Fatal(pubErr)
	}
	return pub
}

func TestPublishIndexListsBothPlatforms(t *testing.T) {
	p := published(t)
	var got []string
	for pl := range p.Images {
		got = append(got, pl)
	}
	slices.Sort(got)
	assert.Check(t, is.DeepEqual(got, platforms), "the pushed index must list exactly linux/amd64 and linux/arm64")

	short := revision[:7]
	tags, err := reg.Tags()
	assert.NilError(t, err)
	assert.Check(t, is.Contains(tags, "hermes-s6:"+version+"-hermetic"))
	assert.Check(t, is.Contains(tags, "hermes-s6:sha-"+short+"-hermetic"))
	assert.Check(t, !slices.Contains(tags, "hermes-s6:latest"), "the hermetic publish must never tag latest: %v", tags)
}

func TestPublishImageConfig(t *testing.T) {
	p := published(t)
	sde, err := strconv.ParseInt(epoch, 10, 64)
	assert.NilError(t, err)
	created := time.Unix(sde, 0).UTC()
	for _, pl := range platforms {
		t.Run(pl, func(t *testing.T) {
			img, err := p.Image(pl)
			assert.NilError(t, err)
			cf, err := img.ConfigFile()
			assert.NilError(t, err)
			assert.Check(t, is.Equal(cf.OS+"/"+cf.Architecture, pl))
			c := cf.Config
			// hermes-init execs s6-overlay's /init as PID 1 (and falls back
			// to the foreground elsewhere).
			assert.Check(t, is.DeepEqual(c.Entrypoint, []string{"/usr/local/bin/hermes-init"}))
			// The Dockerfile sets no USER: /init starts as root and runs the
			// gateway as hermes (uid 10000).
			assert.Check(t, c.User == "" || c.User == "root" || c.User == "0", "User: %q", c.User)
			assert.Check(t, is.Contains(c.Env, "HERMES_HOME=/opt/data"))
			for _, port := range []string{"8642/tcp", "9119/tcp"} {
				_, ok := c.ExposedPorts[port]
				assert.Check(t, ok, "ExposedPorts must have %s: %v", port, c.ExposedPorts)
			}
			l := c.Labels
			assert.Check(t, is.Equal(l["org.opencontainers.image.source"], "https://github.com/hermes-agent/hermes-s6"))
			assert.Check(t, is.Equal(l["org.opencontainers.image.revision"], revision))
			assert.Check(t, is.Equal(l["org.opencontainers.image.version"], version))
			assert.Check(t, is.Equal(l["org.opencontainers.image.created"], created.Format(time.RFC3339)))
			assert.Check(t, is.Equal(l["org.opencontainers.image.title"], "hermes-s6"))
			assert.Check(t, l["org.opencontainers.image.licenses"] != "", "licenses label missing: %v", l)
			assert.Check(t, cf.Created.Time.Equal(created), "config created %s, want SOURCE_DATE_EPOCH %s", cf.Created.Time, created)
		})
	}
}

func TestPublishBinariesMatchPlatform(t *testing.T) {
	p := published(t)
	want := map[string]uint16{"linux/amd64": emX8664, "linux/arm64": emAArch64}
	files := []string{"/usr/local/bin/hermes-s6", "/usr/bin/s6-svscan", "/opt/hermes/bin/hermes-agent"}
	for _, pl := range platforms {
		t.Run(pl, func(t *testing.T) {
			img, err := p.Image(pl)
			assert.NilError(t, err)
			heads, err := readHeads(img, files...)
			assert.NilError(t, err)
			for _, f := range files {
				m, err := elfMachine(heads[f])
				if assert.Check(t, err, "%s", f) {
					assert.Check(t, is.Equal(m, want[pl]), "%s in the %s image: e_machine %d, want %d", f, pl, m, want[pl])
				}
			}
		})
	}
}

func TestPublishAttestations(t *testing.T) {
	p := published(t)
	m, err := p.Index.IndexManifest()
	assert.NilError(t, err)
	for _, pl := range platforms {
		t.Run(pl, func(t *testing.T) {
			var att *v1.Descriptor
			for i, d := range m.Manifests {
				if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" &&
					d.Annotations["vnd.docker.reference.digest"] == p.Images[pl].String() {
					att = &m.Manifests[i]
				}
			}
			assert.Assert(t, att != nil, "no attestation manifest for the %s image %s in the index", pl, p.Images[pl])
			img, err := p.Index.Image(att.Digest)
			assert.NilError(t, err)
			am, err := img.Manifest()
			assert.NilError(t, err)
			var preds []string
			for _, l := range am.Layers {
				preds = append(preds, l.Annotations["in-toto.io/predicate-type"])
			}
			assert.Check(t, slices.ContainsFunc(preds, func(s string) bool { return strings.Contains(s, "slsa.dev/provenance") }),
				"want a SLSA provenance attestation, have %v", preds)
			// The SBOM of this project's generator (supply_test.go reads it).
			assert.Check(t, slices.Contains(preds, predicateSPDX), "want an SPDX SBOM attestation, have %v", preds)
		})
	}
}

// TestPublishedImageBoots: the engine pulls the pushed image (127.0.0.0/8 is
// an insecure registry by default in dockerd) and it runs the redirect.
func TestPublishedImageBoots(t *testing.T) {
	p := published(t)
	t.Cleanup(func() { icmd.RunCommand("docker", "image", "rm", "-f", p.Ref) })
	icmd.RunCmd(icmd.Command("docker", "pull", "-q", p.Ref), icmd.WithTimeout(5*time.Minute)).Assert(t, icmd.Success)
	arch := icmd.RunCommand("docker", "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", p.Ref)
	arch.Assert(t, icmd.Success)
	assert.Check(t, is.Equal(strings.TrimSpace(arch.Stdout()), "linux/amd64"))

	cname := "hermes-publish-boot-" + dockertest.RandHex(4)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("docker logs %s:\n%s", cname, dockertest.Tail(icmd.RunCommand("docker", "logs", cname).Combined(), 60))
		}
		icmd.RunCommand("docker", "rm", "-f", "-v", cname)
	})
	icmd.RunCommand("docker", "run", "-d", "--name", cname, "--label", "hermes-s6-test=1", p.Ref, "gateway", "run").Assert(t, icmd.Success)

	opts := []poll.SettingOp{poll.WithTimeout(90 * time.Second), poll.WithDelay(100 * time.Millisecond)}
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if st := icmd.RunCommand("docker", "inspect", "-f", "{{.State.Running}}", cname); strings.TrimSpace(st.Stdout()) != "true" {
			return poll.Error(fmt.Errorf("container %s stopped while waiting for gateway-default", cname))
		}
		r := icmd.RunCommand("docker", "exec", "-u", "root", cname, "/command/s6-svstat", "-o", "up,wantedup", "/run/service/gateway-default")
		if strings.TrimSpace(r.Stdout()) == "true true" {
			return poll.Success()
		}
		return poll.Continue("gateway-default not up yet: %s", strings.TrimSpace(r.Combined()))
	}, opts...)
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if strings.Contains(icmd.RunCommand("docker", "logs", cname).Combined(), dockertest.BreadcrumbMark) {
			return poll.Success()
		}
		return poll.Continue("no redirect breadcrumb in docker logs yet")
	}, opts...)
}

// TestPublishToUnreachableRegistryFails: a push to a registry that does not
// answer fails, says where, and leaves nothing in the good registry.
func TestPublishToUnreachableRegistryFails(t *testing.T) {
	published(t) // the build itself is warm: only the push fails
	before, err := reg.Tags()
	assert.NilError(t, err)
	r := bake(t, publishEnv("127.0.0.1:1/hermes-s6", "unreachable-"+dockertest.RandHex(3), revision, epoch), "publish-hermetic")
	assert.Check(t, r.ExitCode != 0, "pushing to 127.0.0.1:1 must fail")
	out := r.Combined()
	assert.Check(t, is.Contains(out, "127.0.0.1:1"), "the error must name the registry:\n%s", dockertest.Tail(out, 20))
	assert.Check(t, is.Contains(out, "connection refused"), "the error must say why:\n%s", dockertest.Tail(out, 20))
	after, err := reg.Tags()
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(after, before), "a failed push must leave no tag in the good registry")
}

// TestPublishRejectsBadPlatforms: PLATFORMS is validated before anything is
// built or pushed.
func TestPublishRejectsBadPlatforms(t *testing.T) {
	requireReady(t)
	before, err := reg.Tags()
	assert.NilError(t, err)
	env := append(publishEnv(reg.Repo("bad-platforms"), version, "unknown", "0"), "PLATFORMS=linux/amd64,linux/s390x")
	r := bake(t, env, "publish-hermetic")
	r.Assert(t, icmd.Expected{ExitCode: 1, Err: "PLATFORMS must be a comma-separated list of linux/amd64 and linux/arm64"})
	after, err := reg.Tags()
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(after, before), "a rejected build must push nothing")
}

// cleanStages are the stages whose output is in the image. A clean build
// re-runs all of them (--no-cache-filter); only the Go toolchain stage
// (`go`, a builder that is not in the image) may come from the cache.
// In this BuildKit a no-cache step also gets empty cache mounts, so a clean
// build compiles from an empty Go build cache and fetches apt lists again:
// it is really clean, and slow (~4.5 min on 2 cores, arm64 apt under qemu).
var cleanStages = []string{"tools", "rootfs", "agent-standin", "s6-debian", "image"}

// cleanBake builds and pushes the hermetic image to repo with no
// image-content step from the cache.
func cleanBake(t *testing.T, repo string) bakeResult {
	t.Helper()
	return bake(t, publishEnv(repo, version, revision, epoch), "publish-hermetic",
		"--set", "publish-hermetic.no-cache-filter="+strings.Join(cleanStages, ","))
}

// TestPublishIsReproducible: two clean builds of one source with the same
// SOURCE_DATE_EPOCH give the same per-platform manifests: the publish the
// other tests read, and one more clean build. (The index differs: the
// provenance records each build's own times.)
//
// Both builds must be clean. Files a step creates carry the time it ran, and
// rewrite-timestamp only clamps times *newer* than SOURCE_DATE_EPOCH to it.
// BuildKit's cache keys ignore mtimes (a COPY is keyed by the content of its
// source), so a layer reused from a build that ran before this commit keeps
// that build's older times, even a COPY of files a re-run step had touched
// to this SOURCE_DATE_EPOCH. A build after the commit with none of the image
// steps from the cache (a verifier with --no-cache, a fresh machine) has
// every build-time mtime clamped, hence the same digests. Measured: a cached
// publish differed from the clean builds in exactly those mtimes, in every
// layer it reused (docs/publishing.md).
//
// About 4.5 min on 2 cores on top of the clean publish.
func TestPublishIsReproducible(t *testing.T) {
	p := published(t) // a clean build; epoch, revision
	repo := reg.Repo("hermes-s6-rebuild")
	r := cleanBake(t, repo)
	assert.Assert(t, r.ExitCode == 0, "clean rebuild to %s failed:\n%s", repo, dockertest.Tail(r.Combined(), 60))
	b, err := readPublished(repo + ":" + version + "-hermetic")
	assert.NilError(t, err)
	t.Logf("SOURCE_DATE_EPOCH=%s revision=%s", epoch, revision)
	for _, pl := range platforms {
		t.Logf("%s: clean build 1 %s, clean build 2 %s", pl, p.Images[pl], b.Images[pl])
		if !assert.Check(t, is.Equal(b.Images[pl], p.Images[pl]), "%s: two clean builds differ", pl) {
			ia, errA := p.Image(pl)
			ib, errB := b.Image(pl)
			if errA == nil && errB == nil {
				t.Logf("%s: what differs:\n%s", pl, layerDiff(ia, ib))
			}
		}
	}
	t.Logf("index: %s vs %s (differs by design: provenance)", p.Digest, b.Digest)
}
