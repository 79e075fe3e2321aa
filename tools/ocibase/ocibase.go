// Package ocibase turns root filesystem tarballs (as written by mmdebstrap)
// into single-layer OCI images in an OCI image layout, so BuildKit can use
// them as the base image through a named context without any registry.
//
// One rootfs gives one image under the ref (Build); several rootfs, one per
// platform, give an image index under the ref (BuildIndex), from which
// BuildKit picks the image of each target platform.
package ocibase

import (
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RefAnnotation names an image or index in the layout's index.json.
const RefAnnotation = "org.opencontainers.image.ref.name"

// Options describe the image to build.
type Options struct {
	Rootfs   string // path of the rootfs tarball
	Layout   string // OCI layout directory, created if missing
	Ref      string // value of org.opencontainers.image.ref.name
	Platform v1.Platform
	Created  time.Time // image creation time (reproducible: from SOURCE_DATE_EPOCH)
}

// Rootfs is one platform's root filesystem tarball.
type Rootfs struct {
	Platform v1.Platform
	Path     string
}

// IndexOptions describe a multi-platform base: one image per rootfs, gathered
// in an image index.
type IndexOptions struct {
	Rootfs  []Rootfs
	Layout  string // OCI layout directory, replaced
	Ref     string // value of org.opencontainers.image.ref.name on the index
	Created time.Time
}

// Result is what BuildIndex wrote.
type Result struct {
	Index  v1.Hash            // digest of the image index
	Images map[string]v1.Hash // manifest digest per platform ("linux/arm64")
}

// Build writes the image into the layout and returns its manifest digest.
// The layout holds exactly one image afterwards.
func Build(o Options) (v1.Hash, error) {
	img, err := Image(o.Rootfs, o.Platform, o.Created)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := writeLayout(o.Layout, func(p layout.Path) error {
		return p.AppendImage(img, layout.WithPlatform(o.Platform), layout.WithAnnotations(map[string]string{
			RefAnnotation: o.Ref,
		}))
	}); err != nil {
		return v1.Hash{}, err
	}
	return img.Digest()
}

// BuildIndex writes one image per rootfs and an index of them, named Ref,
// into the layout. The layout holds exactly that index afterwards.
func BuildIndex(o IndexOptions) (Result, error) {
	if len(o.Rootfs) == 0 {
		return Result{}, fmt.Errorf("ocibase: no rootfs given")
	}
	res := Result{Images: map[string]v1.Hash{}}
	var adds []mutate.IndexAddendum
	for _, r := range o.Rootfs {
		key := r.Platform.String()
		if _, dup := res.Images[key]; dup {
			return Result{}, fmt.Errorf("ocibase: platform %s given twice", key)
		}
		img, err := Image(r.Path, r.Platform, o.Created)
		if err != nil {
			return Result{}, err
		}
		d, err := img.Digest()
		if err != nil {
			return Result{}, fmt.Errorf("ocibase: %s: %w", key, err)
		}
		res.Images[key] = d
		plat := r.Platform
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	d, err := idx.Digest()
	if err != nil {
		return Result{}, fmt.Errorf("ocibase: index: %w", err)
	}
	res.Index = d
	if err := writeLayout(o.Layout, func(p layout.Path) error {
		return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{RefAnnotation: o.Ref}))
	}); err != nil {
		return Result{}, err
	}
	return res, nil
}

// Image is the one-layer image of a rootfs tarball, with its platform set in
// the config (os, architecture, variant) and a fixed creation time.
func Image(rootfs string, plat v1.Platform, created time.Time) (v1.Image, error) {
	if plat.OS == "" || plat.Architecture == "" {
		return nil, fmt.Errorf("ocibase: platform os and architecture are required (got %q/%q)", plat.OS, plat.Architecture)
	}
	if _, err := os.Stat(rootfs); err != nil {
		return nil, fmt.Errorf("ocibase: rootfs tarball: %w", err)
	}
	layer, err := tarball.LayerFromFile(rootfs, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("ocibase: reading %s: %w", rootfs, err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, fmt.Errorf("ocibase: %s: %w", rootfs, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("ocibase: %s: %w", rootfs, err)
	}
	cf = cf.DeepCopy()
	// An image appended to empty.Image has no platform: BuildKit then refuses
	// or mislabels it, so set it explicitly.
	cf.OS = plat.OS
	cf.Architecture = plat.Architecture
	cf.Variant = plat.Variant
	cf.Created = v1.Time{Time: created.UTC()}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("ocibase: %s: %w", rootfs, err)
	}
	return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
}

// Platforms lists the platforms the layout offers under ref: the platform of
// an image, or those of an index's images. A missing layout or ref is an
// error that names it.
func Platforms(dir, ref string) ([]v1.Platform, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("ocibase: layout %s: %w", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("ocibase: layout %s: %w", dir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("ocibase: layout %s: %w", dir, err)
	}
	for _, desc := range im.Manifests {
		if desc.Annotations[RefAnnotation] != ref {
			continue
		}
		if !desc.MediaType.IsIndex() {
			if desc.Platform != nil {
				return []v1.Platform{*desc.Platform}, nil
			}
			img, err := top.Image(desc.Digest)
			if err != nil {
				return nil, fmt.Errorf("ocibase: layout %s: %s: %w", dir, ref, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return nil, fmt.Errorf("ocibase: layout %s: %s: %w", dir, ref, err)
			}
			return []v1.Platform{{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}}, nil
		}
		idx, err := top.ImageIndex(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("ocibase: layout %s: %s: %w", dir, ref, err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("ocibase: layout %s: %s: %w", dir, ref, err)
		}
		var out []v1.Platform
		for _, d := range m.Manifests {
			if d.Platform != nil {
				out = append(out, *d.Platform)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("ocibase: layout %s has no image named %q", dir, ref)
}

// writeLayout replaces dir with a new layout filled by fill. It is written
// beside dir and renamed into place, so an interrupted run never leaves a
// half-written layout that looks complete.
func writeLayout(dir string, fill func(layout.Path) error) error {
	part := dir + ".part"
	if err := os.RemoveAll(part); err != nil {
		return fmt.Errorf("ocibase: %w", err)
	}
	p, err := layout.Write(part, empty.Index)
	if err != nil {
		return fmt.Errorf("ocibase: creating layout %s: %w", part, err)
	}
	if err := fill(p); err != nil {
		os.RemoveAll(part)
		return fmt.Errorf("ocibase: writing layout %s: %w", part, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("ocibase: %w", err)
	}
	if err := os.Rename(part, dir); err != nil {
		return fmt.Errorf("ocibase: %w", err)
	}
	return nil
}

// UpToDate reports whether the layout already holds exactly the platforms of
// rootfs under ref and was written after every tarball: then rebuilding it
// would change nothing. Any doubt (missing, unreadable) answers false.
func UpToDate(dir, ref string, rootfs []Rootfs) bool {
	st, err := os.Stat(dir + "/index.json")
	if err != nil {
		return false
	}
	have, err := Platforms(dir, ref)
	if err != nil || len(have) != len(rootfs) {
		return false
	}
	for _, r := range rootfs {
		found := false
		for _, h := range have {
			found = found || h.Equals(r.Platform)
		}
		rt, err := os.Stat(r.Path)
		if !found || err != nil || rt.ModTime().After(st.ModTime()) {
			return false
		}
	}
	return true
}

// ImageByDigest finds an image in the layout by manifest digest, at the top
// or inside an index.
func ImageByDigest(dir string, h v1.Hash) (v1.Image, error) {
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("ocibase: layout %s: %w", dir, err)
	}
	img, err := findImage(top, h)
	if err != nil {
		return nil, fmt.Errorf("ocibase: layout %s: %w", dir, err)
	}
	if img == nil {
		return nil, fmt.Errorf("ocibase: layout %s has no image %s", dir, h)
	}
	return img, nil
}

func findImage(ii v1.ImageIndex, h v1.Hash) (v1.Image, error) {
	m, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		switch {
		case d.MediaType.IsImage() && d.Digest == h:
			return ii.Image(h)
		case d.MediaType.IsIndex():
			child, err := ii.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			if img, err := findImage(child, h); img != nil || err != nil {
				return img, err
			}
		}
	}
	return nil, nil
}
