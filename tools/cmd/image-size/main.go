// Command image-size prints what each layer of an image adds, uncompressed,
// grouped into base, agent, s6, tools and rootfs.
//
//	image-size hermes-s6:test          (reads the image with `docker save`)
//	image-size -tar image.tar          (a `docker save` tarball)
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hermes-agent/hermes-s6/tools/imagesize"
)

func main() {
	tarPath := flag.String("tar", "", "a `docker save` tarball instead of an image name")
	flag.Parse()
	if *tarPath == "" {
		if flag.NArg() != 1 {
			fmt.Fprintln(os.Stderr, "usage: image-size IMAGE | image-size -tar FILE")
			os.Exit(2)
		}
		dir, err := os.MkdirTemp("", "image-size-")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(dir)
		*tarPath = filepath.Join(dir, "image.tar")
		cmd := exec.Command("docker", "save", "-o", *tarPath, flag.Arg(0))
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fail(fmt.Errorf("docker save %s: %w", flag.Arg(0), err))
		}
	}
	img, err := tarball.ImageFromPath(*tarPath, nil)
	if err != nil {
		fail(err)
	}
	layers, err := imagesize.Layers(img)
	if err != nil {
		fail(err)
	}
	imagesize.Report(os.Stdout, layers)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "image-size:", err)
	os.Exit(1)
}
