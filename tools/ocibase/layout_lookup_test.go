package ocibase

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A layout written by another tool may name an image without a platform in
// its index.json entry: Platforms then reads the platform from the image's
// config.
func TestPlatformsReadsTheConfigWhenTheIndexEntryHasNoPlatform(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "layout")
	arm := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	img, err := Image(rootfsTar(t, "arm"), arm, time.Unix(0, 0))
	assert.NilError(t, err)
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(img, layout.WithAnnotations(map[string]string{RefAnnotation: "bare"})))

	plats, err := Platforms(dir, "bare")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(plats, []v1.Platform{arm}))
}

// Asking for a name or a digest the layout does not hold is an error naming
// the layout and what was asked for.
func TestLookupsOfWhatTheLayoutLacksNameIt(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "layout")
	res, err := BuildIndex(IndexOptions{Rootfs: []Rootfs{{Platform: amd64, Path: rootfsTar(t, "a")}}, Layout: dir, Ref: "trixie"})
	assert.NilError(t, err)

	_, err = Platforms(dir, "bookworm")
	assert.Check(t, is.ErrorContains(err, dir+` has no image named "bookworm"`))

	// The index's own digest is no image; an unknown digest is none either.
	_, err = ImageByDigest(dir, res.Index)
	assert.Check(t, is.ErrorContains(err, dir+" has no image "+res.Index.String()))
	unknown := v1.Hash{Algorithm: "sha256", Hex: "0000000000000000000000000000000000000000000000000000000000000000"}
	_, err = ImageByDigest(dir, unknown)
	assert.Check(t, is.ErrorContains(err, "has no image sha256:0000"))

	_, err = ImageByDigest(filepath.Join(t.TempDir(), "missing"), unknown)
	assert.Check(t, is.ErrorContains(err, "missing"))
}

// A layout whose index.json is not JSON is reported, never read as empty;
// UpToDate answers false so the caller rebuilds it.
func TestACorruptLayoutIsAnErrorAndNotUpToDate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "layout")
	specs := []Rootfs{{Platform: amd64, Path: rootfsTar(t, "a")}}
	_, err := BuildIndex(IndexOptions{Rootfs: specs, Layout: dir, Ref: "r"})
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte("{not json"), 0o644))

	_, err = Platforms(dir, "r")
	assert.Check(t, is.ErrorContains(err, "ocibase: layout "+dir))
	_, err = ImageByDigest(dir, v1.Hash{Algorithm: "sha256", Hex: "00"})
	assert.Check(t, is.ErrorContains(err, "ocibase: layout "+dir))
	assert.Check(t, !UpToDate(dir, "r", specs))
}

// Building again replaces the layout: it holds exactly the new image, and
// the image of the previous build is gone.
func TestBuildReplacesThePreviousLayout(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "layout")
	first, err := Build(Options{Rootfs: rootfsTar(t, "one"), Layout: dir, Ref: "r", Platform: amd64})
	assert.NilError(t, err)
	second, err := Build(Options{Rootfs: rootfsTar(t, "two"), Layout: dir, Ref: "r", Platform: arm64})
	assert.NilError(t, err)
	assert.Assert(t, first != second)

	plats, err := Platforms(dir, "r")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(plats, []v1.Platform{arm64}))
	_, err = ImageByDigest(dir, first)
	assert.Check(t, is.ErrorContains(err, "has no image"))
	_, err = ImageByDigest(dir, second)
	assert.Check(t, err)
}

// A layout that cannot be created (its parent is a file) is an error naming
// the path; nothing is left behind, and a failed BuildIndex leaves an
// existing layout as it was.
func TestALayoutThatCannotBeWrittenChangesNothing(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	assert.NilError(t, os.WriteFile(file, []byte("x"), 0o644))
	tarball := rootfsTar(t, "a")

	_, err := Build(Options{Rootfs: tarball, Layout: filepath.Join(file, "layout"), Ref: "r", Platform: amd64})
	assert.Check(t, is.ErrorContains(err, file+"/layout.part"))
	_, err = BuildIndex(IndexOptions{Rootfs: []Rootfs{{Platform: amd64, Path: tarball}}, Layout: filepath.Join(file, "layout"), Ref: "r"})
	assert.Check(t, is.ErrorContains(err, file+"/layout.part"))
	b, err := os.ReadFile(file)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "x"))

	dir := filepath.Join(tmp, "layout")
	_, err = Build(Options{Rootfs: tarball, Layout: dir, Ref: "r", Platform: amd64})
	assert.NilError(t, err)
	before, err := os.ReadFile(filepath.Join(dir, "index.json"))
	assert.NilError(t, err)
	_, err = BuildIndex(IndexOptions{Rootfs: []Rootfs{{Platform: amd64, Path: filepath.Join(tmp, "missing.tar")}}, Layout: dir, Ref: "r"})
	assert.Check(t, is.ErrorContains(err, "rootfs tarball"))
	after, err := os.ReadFile(filepath.Join(dir, "index.json"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(after), string(before)))
}
