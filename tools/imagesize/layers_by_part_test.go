package imagesize

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// History lines as BuildKit records them for the hermes-s6 image. byStandin,
// byDebianS6, byWithContenv, byAccount, byTools and byRootfs were read with
// `docker history --no-trunc` from a debian-source stand-in build (cut
// short); the others are written after the Dockerfile's release, real-agent
// and link steps, and a step of no part.
const (
	byBase        = "# debian.sh --arch 'amd64' out/ 'trixie' '@1764547200'"
	byStandin     = "COPY /out/hermes-agent-standin /opt/hermes/bin/hermes-agent # buildkit"
	byRealAgent   = "RUN |2 TARGETPLATFORM=linux/amd64 HERMES_AGENT_REF=v0.21.3 /bin/sh -c set -eu\nuv pip install hermes-agent[all] # buildkit"
	byDebianS6    = "RUN |1 TARGETPLATFORM=linux/amd64 /bin/sh -c set -eu\napt-get update -qq\nDEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends s6 execline >/dev/null # buildkit"
	byWithContenv = "COPY /out-debian/command/with-contenv /command/with-contenv # buildkit"
	byReleaseS6   = "COPY /s6root/ / # buildkit"
	byAccount     = "RUN |6 TARGETPLATFORM=linux/amd64 HERMES_AGENT=standin S6_SOURCE=debian /bin/sh -c set -eu\ngroupadd -g 10000 hermes\nuseradd -u 10000 -g 10000 -d /opt/data -M -s /usr/sbin/nologin hermes # buildkit"
	byTools       = "COPY /out/hermes-s6 /usr/local/bin/hermes-s6 # buildkit"
	byRootfs      = "COPY /out/ / # buildkit"
	byLinks       = "RUN /bin/sh -c for n in probe slot-exec; do ln -s hermes-s6 /usr/local/bin/$n; done # buildkit"
	byOther       = "RUN /bin/sh -c apt-get install -y curl # buildkit"
)

// Each step of the image lands in its part; the first layer is the base
// whatever made it.
func TestClassifyNamesThePartOfEachImageStep(t *testing.T) {
	t.Parallel()
	for by, want := range map[string]string{
		byStandin: "agent", byRealAgent: "agent",
		byDebianS6: "s6", byWithContenv: "s6", byReleaseS6: "s6",
		byTools:   "tools",
		byAccount: "rootfs", byRootfs: "rootfs", byLinks: "rootfs",
		byOther: "other", "": "other",
	} {
		assert.Check(t, is.Equal(Classify(3, by), want), "%q", by)
	}
	assert.Check(t, is.Equal(Classify(0, byTools), "base"), "layer 0 is the base")
}

// layer is an uncompressed tar layer holding one file of size bytes; it
// returns the layer and the tar's length (what Layers must measure).
func layer(t *testing.T, size int) (v1.Layer, int64) {
	t.Helper()
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	assert.NilError(t, w.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: int64(size)}))
	_, err := w.Write(bytes.Repeat([]byte{'x'}, size))
	assert.NilError(t, err)
	assert.NilError(t, w.Close())
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	assert.NilError(t, err)
	return l, int64(len(b))
}

// Layers pairs each layer with its history line, skipping the history's
// empty-layer entries (ENV, ARG, LABEL...), and measures it uncompressed.
func TestLayersMeasuresEachLayerWithItsStep(t *testing.T) {
	t.Parallel()
	steps := []string{byBase, byStandin, byDebianS6, byWithContenv, byAccount, byTools, byRootfs}
	img := empty.Image
	var sizes []int64
	var history []v1.History
	for i, by := range steps {
		l, n := layer(t, 1000*(i+1))
		sizes = append(sizes, n)
		var err error
		img, err = mutate.AppendLayers(img, l)
		assert.NilError(t, err)
		history = append(history, v1.History{CreatedBy: "ARG STEP=" + by[:3], EmptyLayer: true}, v1.History{CreatedBy: by})
	}
	history = append(history, v1.History{CreatedBy: `CMD ["gateway" "run"]`, EmptyLayer: true})
	cf, err := img.ConfigFile()
	assert.NilError(t, err)
	cf = cf.DeepCopy()
	cf.History = history
	img, err = mutate.ConfigFile(img, cf)
	assert.NilError(t, err)

	layers, err := Layers(img)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(layers, len(steps)))
	wantParts := []string{"base", "agent", "s6", "s6", "rootfs", "tools", "rootfs"}
	for i, l := range layers {
		assert.Check(t, is.Equal(l.Part, wantParts[i]), "layer %d", i)
		assert.Check(t, is.Equal(l.CreatedBy, steps[i]), "layer %d", i)
		assert.Check(t, is.Equal(l.Size, sizes[i]), "layer %d", i)
	}

	totals := Totals(layers)
	assert.Check(t, is.Equal(totals["s6"], sizes[2]+sizes[3]))
	assert.Check(t, is.Equal(totals["rootfs"], sizes[4]+sizes[6]))
	assert.Check(t, is.Equal(totals["other"], int64(0)))
}

// A layer without a history line (history shorter than the layers) is
// measured all the same, as other.
func TestLayersWithoutHistory(t *testing.T) {
	t.Parallel()
	l0, n0 := layer(t, 10)
	l1, n1 := layer(t, 20)
	img, err := mutate.AppendLayers(empty.Image, l0, l1)
	assert.NilError(t, err)
	layers, err := Layers(img)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(layers, []Layer{{Part: "base", Size: n0}, {Part: "other", Size: n1}}))
}

// The report lists each layer (its step on one line, cut at 90 characters),
// then every part in order, the total and what hermes-s6 adds on top of the
// base and the agent.
func TestReportTablesLayersAndParts(t *testing.T) {
	t.Parallel()
	long := "RUN /bin/sh -c " + strings.Repeat("x", 100)
	var out strings.Builder
	Report(&out, []Layer{
		{Part: "base", CreatedBy: byBase, Size: 3 << 20},
		{Part: "s6", CreatedBy: byDebianS6, Size: 1 << 20},
		{Part: "tools", CreatedBy: byTools, Size: 1 << 19},
		{Part: "other", CreatedBy: long, Size: 0},
	})
	lines := strings.Split(out.String(), "\n")
	assert.Check(t, is.Equal(lines[0], "part            size  created by"))
	assert.Check(t, is.Equal(lines[1], "base        3.00 MiB  "+byBase))
	assert.Check(t, strings.HasPrefix(lines[2], "s6          1.00 MiB  RUN |1 TARGETPLATFORM=linux/amd64 /bin/sh -c set -eu apt-get update -qq DEBIAN_FRONTEND"), lines[2])
	assert.Check(t, strings.HasSuffix(lines[2], "..."), "cut at 90 characters: %q", lines[2])
	assert.Check(t, is.Equal(len(strings.TrimPrefix(lines[4], "other       0.00 MiB  ")), 90))
	assert.Check(t, is.Contains(out.String(), "\nbase        3.00 MiB\nagent       0.00 MiB\ns6          1.00 MiB\ntools       0.50 MiB\nrootfs      0.00 MiB\nother       0.00 MiB\n"))
	assert.Check(t, is.Contains(out.String(), "total       4.50 MiB\nadded       1.50 MiB  (s6 + tools + rootfs, on top of base + agent)\n"))
}
