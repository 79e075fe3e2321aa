// Command oci-base turns a rootfs tarball into a one-layer OCI image layout
// (the hermetic base image), and optionally a `docker load` tarball.
//
//	oci-base -rootfs trixie.tar -layout .cache/base -ref trixie -platform linux/amd64 [-docker-tar base.tar -tag NAME]
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hermes-agent/hermes-s6/tools/ocibase"
)

func main() {
	rootfs := flag.String("rootfs", "", "rootfs tarball (mmdebstrap output)")
	dir := flag.String("layout", "", "OCI layout directory to write")
	ref := flag.String("ref", "base", "ref name annotation in the layout")
	platform := flag.String("platform", "linux/amd64", "os/arch[/variant] of the rootfs")
	dockerTar := flag.String("docker-tar", "", "also write a `docker load` tarball here")
	tag := flag.String("tag", "hermes-s6/base:local", "image name for -docker-tar")
	flag.Parse()
	if *rootfs == "" || *dir == "" {
		fmt.Fprintln(os.Stderr, "oci-base: -rootfs and -layout are required")
		os.Exit(2)
	}
	plat, err := v1.ParsePlatform(*platform)
	if err != nil {
		fmt.Fprintf(os.Stderr, "oci-base: bad -platform %q: %v\n", *platform, err)
		os.Exit(2)
	}
	created := time.Unix(0, 0)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "oci-base: bad SOURCE_DATE_EPOCH %q\n", s)
			os.Exit(2)
		}
		created = time.Unix(n, 0)
	}
	digest, err := ocibase.Build(ocibase.Options{Rootfs: *rootfs, Layout: *dir, Ref: *ref, Platform: *plat, Created: created})
	if err != nil {
		fmt.Fprintln(os.Stderr, "oci-base:", err)
		os.Exit(1)
	}
	if *dockerTar != "" {
		if err := writeDockerTar(*dir, digest, *tag, *dockerTar); err != nil {
			fmt.Fprintln(os.Stderr, "oci-base:", err)
			os.Exit(1)
		}
	}
	fmt.Println(digest)
}

func writeDockerTar(dir string, digest v1.Hash, tag, out string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	img, err := p.Image(digest)
	if err != nil {
		return err
	}
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("bad -tag %q: %w", tag, err)
	}
	return tarball.WriteToFile(out, t, img)
}
