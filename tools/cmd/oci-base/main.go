// Command oci-base turns rootfs tarballs into the hermetic base image, an OCI
// image layout BuildKit reads as a named context, and optionally a
// `docker load` tarball.
//
// One platform (an image under -ref):
//
//	oci-base -rootfs trixie.tar -layout .cache/base -ref trixie -platform linux/amd64 [-docker-tar base.tar -tag NAME]
//
// Several platforms (an image index under -ref; BuildKit picks each target
// platform's image from it):
//
//	oci-base -rootfs linux/amd64=trixie-amd64.tar -rootfs linux/arm64=trixie-arm64.tar -layout .cache/base -ref trixie
//
// With -keep, a layout that already holds exactly those platforms under -ref,
// written after every tarball, is left alone. SOURCE_DATE_EPOCH sets the
// images' creation time (default: the Unix epoch).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hermes-agent/hermes-s6/tools/ocibase"
)

type rootfsFlag []string

func (r *rootfsFlag) String() string     { return strings.Join(*r, " ") }
func (r *rootfsFlag) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	var rootfs rootfsFlag
	flag.Var(&rootfs, "rootfs", "rootfs tarball (mmdebstrap output), or `os/arch[/variant]=path`; repeat the second form for a multi-platform index")
	dir := flag.String("layout", "", "OCI layout directory to write")
	ref := flag.String("ref", "base", "ref name annotation in the layout")
	platform := flag.String("platform", "", "os/arch[/variant] of a single -rootfs given as a plain path (default: this machine's linux/GOARCH)")
	keep := flag.Bool("keep", false, "leave an up-to-date layout alone (same platforms, newer than the tarballs)")
	dockerTar := flag.String("docker-tar", "", "also write a docker-load tarball here (multi-platform: the image of -platform, default this machine's)")
	tag := flag.String("tag", "hermes-s6/base:local", "image name for -docker-tar")
	flag.Parse()
	if len(rootfs) == 0 || *dir == "" {
		fail(2, "-rootfs and -layout are required")
	}
	created := time.Unix(0, 0)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fail(2, fmt.Sprintf("bad SOURCE_DATE_EPOCH %q", s))
		}
		created = time.Unix(n, 0)
	}

	specs, multi, err := parseRootfs(rootfs, *platform)
	if err != nil {
		fail(2, err.Error())
	}
	if *keep && ocibase.UpToDate(*dir, *ref, specs) {
		fmt.Fprintf(os.Stderr, "oci-base: %s already holds %s under %q\n", *dir, platformList(specs), *ref)
		return
	}

	var digest v1.Hash
	if !multi {
		digest, err = ocibase.Build(ocibase.Options{Rootfs: specs[0].Path, Layout: *dir, Ref: *ref, Platform: specs[0].Platform, Created: created})
		if err != nil {
			fail(1, err.Error())
		}
		fmt.Println(digest)
	} else {
		res, err := ocibase.BuildIndex(ocibase.IndexOptions{Rootfs: specs, Layout: *dir, Ref: *ref, Created: created})
		if err != nil {
			fail(1, err.Error())
		}
		fmt.Println(res.Index)
		keys := make([]string, 0, len(res.Images))
		for k := range res.Images {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("%s %s\n", k, res.Images[k])
		}
		want := defaultPlatform()
		if *platform != "" {
			p, err := v1.ParsePlatform(*platform)
			if err != nil {
				fail(2, fmt.Sprintf("bad -platform %q: %v", *platform, err))
			}
			want = *p
		}
		d, ok := res.Images[want.String()]
		if !ok && *dockerTar != "" {
			fail(2, fmt.Sprintf("-docker-tar: no rootfs for platform %s", want))
		}
		digest = d
	}
	if *dockerTar != "" {
		if err := writeDockerTar(*dir, digest, *tag, *dockerTar); err != nil {
			fail(1, err.Error())
		}
	}
}

// parseRootfs reads the -rootfs values: one plain path (platform from
// -platform), or any number of platform=path pairs (an index).
func parseRootfs(values []string, platform string) ([]ocibase.Rootfs, bool, error) {
	if len(values) == 1 && !strings.Contains(values[0], "=") {
		p := defaultPlatform()
		if platform != "" {
			pp, err := v1.ParsePlatform(platform)
			if err != nil {
				return nil, false, fmt.Errorf("bad -platform %q: %v", platform, err)
			}
			p = *pp
		}
		return []ocibase.Rootfs{{Platform: p, Path: values[0]}}, false, nil
	}
	var out []ocibase.Rootfs
	for _, v := range values {
		ps, path, ok := strings.Cut(v, "=")
		if !ok || ps == "" || path == "" {
			return nil, false, fmt.Errorf("-rootfs %q: with several -rootfs, each must be os/arch[/variant]=path", v)
		}
		p, err := v1.ParsePlatform(ps)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return nil, false, fmt.Errorf("-rootfs %q: bad platform %q (want os/arch[/variant], e.g. linux/arm64)", v, ps)
		}
		for _, o := range out {
			if o.Platform.Equals(*p) {
				return nil, false, fmt.Errorf("-rootfs: platform %s given twice", p)
			}
		}
		out = append(out, ocibase.Rootfs{Platform: *p, Path: path})
	}
	return out, true, nil
}

func defaultPlatform() v1.Platform { return v1.Platform{OS: "linux", Architecture: runtime.GOARCH} }

func platformList(specs []ocibase.Rootfs) string {
	var s []string
	for _, r := range specs {
		s = append(s, r.Platform.String())
	}
	return strings.Join(s, ",")
}

func fail(code int, msg string) {
	fmt.Fprintln(os.Stderr, "oci-base:", msg)
	os.Exit(code)
}

func writeDockerTar(dir string, digest v1.Hash, tag, out string) error {
	img, err := ocibase.ImageByDigest(dir, digest)
	if err != nil {
		return err
	}
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("bad -tag %q: %w", tag, err)
	}
	return tarball.WriteToFile(out, t, img)
}
