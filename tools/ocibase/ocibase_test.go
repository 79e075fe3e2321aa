package ocibase

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func rootfsTar(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(path)
	assert.NilError(t, err)
	w := tar.NewWriter(f)
	assert.NilError(t, w.WriteHeader(&tar.Header{Name: "etc/os-release", Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}))
	_, err = w.Write([]byte(content))
	assert.NilError(t, err)
	assert.NilError(t, w.Close())
	assert.NilError(t, f.Close())
	return path
}

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

func TestBuildSinglePlatform(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	d, err := Build(Options{Rootfs: rootfsTar(t, "amd64"), Layout: dir, Ref: "trixie", Platform: amd64, Created: time.Unix(0, 0)})
	assert.NilError(t, err)

	plats, err := Platforms(dir, "trixie")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(plats, []v1.Platform{amd64}))

	img, err := ImageByDigest(dir, d)
	assert.NilError(t, err)
	cf, err := img.ConfigFile()
	assert.NilError(t, err)
	assert.Check(t, is.Equal(cf.OS, "linux"))
	assert.Check(t, is.Equal(cf.Architecture, "amd64"))
}

func TestBuildIndexSetsEachPlatform(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	specs := []Rootfs{
		{Platform: amd64, Path: rootfsTar(t, "amd64")},
		{Platform: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, Path: rootfsTar(t, "arm64")},
	}
	res, err := BuildIndex(IndexOptions{Rootfs: specs, Layout: dir, Ref: "trixie", Created: time.Unix(0, 0)})
	assert.NilError(t, err)
	assert.Check(t, is.Len(res.Images, 2))

	plats, err := Platforms(dir, "trixie")
	assert.NilError(t, err)
	assert.Check(t, is.Len(plats, 2))

	for _, s := range specs {
		img, err := ImageByDigest(dir, res.Images[s.Platform.String()])
		assert.NilError(t, err)
		cf, err := img.ConfigFile()
		assert.NilError(t, err)
		assert.Check(t, is.Equal(cf.OS, s.Platform.OS))
		assert.Check(t, is.Equal(cf.Architecture, s.Platform.Architecture))
		assert.Check(t, is.Equal(cf.Variant, s.Platform.Variant))
		assert.Check(t, cf.Created.Time.Equal(time.Unix(0, 0)))
	}

	assert.Check(t, UpToDate(dir, "trixie", specs))
	assert.Check(t, !UpToDate(dir, "trixie", specs[:1]), "one platform fewer is not up to date")
	assert.Check(t, !UpToDate(dir, "other", specs), "another ref is not up to date")
	later := time.Now().Add(time.Hour)
	assert.NilError(t, os.Chtimes(specs[1].Path, later, later))
	assert.Check(t, !UpToDate(dir, "trixie", specs), "a newer tarball is not up to date")
	_, err = os.Stat(dir + ".part")
	assert.Check(t, os.IsNotExist(err), "no .part directory may be left behind")
}

func TestBuildIndexIsReproducible(t *testing.T) {
	specs := []Rootfs{{Platform: amd64, Path: rootfsTar(t, "a")}, {Platform: arm64, Path: rootfsTar(t, "b")}}
	a, err := BuildIndex(IndexOptions{Rootfs: specs, Layout: filepath.Join(t.TempDir(), "a"), Ref: "r"})
	assert.NilError(t, err)
	b, err := BuildIndex(IndexOptions{Rootfs: specs, Layout: filepath.Join(t.TempDir(), "b"), Ref: "r"})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(a.Index, b.Index))
}

func TestBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	_, err := BuildIndex(IndexOptions{Layout: dir, Ref: "r"})
	assert.Check(t, is.ErrorContains(err, "no rootfs given"))
	tarball := rootfsTar(t, "x")
	_, err = BuildIndex(IndexOptions{Rootfs: []Rootfs{{Platform: amd64, Path: tarball}, {Platform: amd64, Path: tarball}}, Layout: dir, Ref: "r"})
	assert.Check(t, is.ErrorContains(err, "platform linux/amd64 given twice"))
	_, err = BuildIndex(IndexOptions{Rootfs: []Rootfs{{Platform: v1.Platform{OS: "linux"}, Path: tarball}}, Layout: dir, Ref: "r"})
	assert.Check(t, is.ErrorContains(err, "platform os and architecture are required"))
	_, err = Build(Options{Rootfs: filepath.Join(t.TempDir(), "missing.tar"), Layout: dir, Ref: "r", Platform: amd64})
	assert.Check(t, is.ErrorContains(err, "rootfs tarball"))
	_, err = Platforms(filepath.Join(t.TempDir(), "none"), "r")
	assert.Check(t, is.ErrorContains(err, "none"))
}
