// Package ocibase turns a root filesystem tarball (as written by mmdebstrap)
// into a single-layer OCI image in an OCI image layout, so BuildKit can use it
// as the base image through a named context without any registry.
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

// Options describe the image to build.
type Options struct {
	Rootfs   string    // path of the rootfs tarball
	Layout   string    // OCI layout directory, created if missing
	Ref      string    // value of org.opencontainers.image.ref.name
	Platform v1.Platform
	Created  time.Time // image creation time (reproducible: from SOURCE_DATE_EPOCH)
}

// Build writes the image into the layout and returns its manifest digest.
// The layout holds exactly one image afterwards.
func Build(o Options) (v1.Hash, error) {
	if o.Platform.OS == "" || o.Platform.Architecture == "" {
		return v1.Hash{}, fmt.Errorf("ocibase: platform os and architecture are required (got %q/%q)", o.Platform.OS, o.Platform.Architecture)
	}
	if _, err := os.Stat(o.Rootfs); err != nil {
		return v1.Hash{}, fmt.Errorf("ocibase: rootfs tarball: %w", err)
	}
	layer, err := tarball.LayerFromFile(o.Rootfs, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("ocibase: reading %s: %w", o.Rootfs, err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("ocibase: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("ocibase: %w", err)
	}
	cf = cf.DeepCopy()
	// An image appended to empty.Image has no platform: BuildKit then refuses
	// or mislabels it, so set it explicitly.
	cf.OS = o.Platform.OS
	cf.Architecture = o.Platform.Architecture
	cf.Variant = o.Platform.Variant
	cf.Created = v1.Time{Time: o.Created.UTC()}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("ocibase: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)

	if err := os.RemoveAll(o.Layout); err != nil {
		return v1.Hash{}, fmt.Errorf("ocibase: %w", err)
	}
	p, err := layout.Write(o.Layout, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("ocibase: creating layout %s: %w", o.Layout, err)
	}
	plat := o.Platform
	if err := p.AppendImage(img, layout.WithPlatform(plat), layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": o.Ref,
	})); err != nil {
		return v1.Hash{}, fmt.Errorf("ocibase: writing layout %s: %w", o.Layout, err)
	}
	return img.Digest()
}
