package publish

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/icmd"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"github.com/hermes-agent/hermes-s6/tools/ocibase"
)

// The platforms the hermetic publish must carry.
var platforms = []string{"linux/amd64", "linux/arm64"}

// ELF e_machine values.
const (
	emX8664   = 62
	emAArch64 = 183
)

// skipReason says why the package cannot run here, or "".
func skipReason() string {
	if testing.Short() {
		return "skipped with -short (builds and pushes the multi-arch hermetic image)"
	}
	if p := dockertest.EngineProblem(); p != "" {
		return p
	}
	base := filepath.Join(dockertest.RepoRoot(), ".cache", "base-oci")
	have, err := ocibase.Platforms(base, "trixie")
	if err != nil {
		return fmt.Sprintf("no hermetic base image (%v); run sh .ci/provision", err)
	}
	for _, want := range platforms {
		found := false
		for _, p := range have {
			found = found || p.String() == want
		}
		if !found {
			return fmt.Sprintf("the hermetic base .cache/base-oci has no %s image; run sh .ci/provision on an amd64 host, without HERMES_PROVISION_ARM64=0 (about 7 min the first time: arm64 rootfs under qemu)", want)
		}
	}
	if cosignBin() == "" {
		return "no cosign binary (signs and verifies the publish); run sh .ci/provision"
	}
	r := icmd.RunCommand("docker", "buildx", "inspect")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout(), "linux/arm64") {
		return "the current buildx builder cannot build linux/arm64 (no qemu-aarch64 in binfmt_misc?); run sh .ci/provision"
	}
	return ""
}

// Registry is go-containerregistry's registry, in process on 127.0.0.1.
type Registry struct {
	srv  *httptest.Server
	Host string // 127.0.0.1:PORT
}

func startRegistry(blobDir string) (*Registry, error) {
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return nil, err
	}
	h := registry.New(
		registry.Logger(log.New(io.Discard, "", 0)),
		registry.WithBlobHandler(registry.NewDiskBlobHandler(blobDir)),
	)
	srv := httptest.NewServer(h) // listens on 127.0.0.1, random port
	return &Registry{srv: srv, Host: strings.TrimPrefix(srv.URL, "http://")}, nil
}

func (r *Registry) Close() { r.srv.Close() }

// Repo is a repository name in this registry.
func (r *Registry) Repo(repo string) string { return r.Host + "/" + repo }

// Tags lists every repository:tag the registry holds, sorted.
func (r *Registry) Tags() ([]string, error) {
	reg, err := name.NewRegistry(r.Host, name.Insecure)
	if err != nil {
		return nil, err
	}
	repos, err := remote.Catalog(context.Background(), reg)
	if err != nil {
		return nil, fmt.Errorf("catalog of %s: %w", r.Host, err)
	}
	var out []string
	for _, repo := range repos {
		rp, err := name.NewRepository(r.Host+"/"+repo, name.Insecure)
		if err != nil {
			return nil, err
		}
		tags, err := remote.List(rp)
		if err != nil {
			return nil, fmt.Errorf("tags of %s: %w", rp, err)
		}
		for _, t := range tags {
			out = append(out, repo+":"+t)
		}
	}
	sort.Strings(out)
	return out, nil
}

// bakeResult is a bake run: the command's result and, when it pushed, the
// pushed index digest from the metadata file.
type bakeResult struct {
	*icmd.Result
	Digest string
}

// srcDir is where bake runs: a snapshot of the working tree taken once per
// run (see snapshot), so every build of the run sees the same sources even
// while the repository is being edited.
var srcDir string

// snapshot copies the working tree's files (tracked and untracked, not
// ignored) into dir, plus the hermetic base layout and CA bundle of .cache
// (hard links where possible).
func snapshot(dir string) error {
	root := dockertest.RepoRoot()
	r := icmd.RunCmd(icmd.Command("git", "ls-files", "-z", "-c", "-o", "--exclude-standard"), icmd.Dir(root))
	if r.ExitCode != 0 {
		return fmt.Errorf("git ls-files: %s", r.Combined())
	}
	files := strings.Split(strings.TrimRight(r.Stdout(), "\x00"), "\x00")
	for _, f := range files {
		if err := copyPath(filepath.Join(root, f), filepath.Join(dir, f), false); err != nil {
			return err
		}
	}
	for _, f := range []string{".cache/base-oci", ".cache/ca-bundle.crt", "docker-bake.override.hcl"} {
		err := filepath.WalkDir(filepath.Join(root, f), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			return copyPath(p, filepath.Join(dir, rel), true)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// copyPath copies one file or symlink (a tracked file deleted in the working
// tree is skipped); link: try a hard link first.
func copyPath(from, to string, link bool) error {
	st, err := os.Lstat(from)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if st.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(from)
		if err != nil {
			return err
		}
		return os.Symlink(target, to)
	}
	if link && os.Link(from, to) == nil {
		return nil
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, st.Mode().Perm())
}

// bake runs `docker buildx bake` in the source snapshot with env on top of
// this process's environment (later values win), and the given arguments.
func bake(t testing.TB, env []string, args ...string) bakeResult {
	t.Helper()
	meta := filepath.Join(t.TempDir(), "metadata.json")
	full := append([]string{"buildx", "bake", "--progress=plain", "--metadata-file", meta}, args...)
	cmd := icmd.Command("docker", full...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	r := icmd.RunCmd(cmd, icmd.Dir(srcDir), icmd.WithTimeout(40*time.Minute))
	t.Logf("docker buildx bake %s: exit %d in %s", strings.Join(args, " "), r.ExitCode, time.Since(start).Round(time.Second))
	res := bakeResult{Result: r}
	if b, err := os.ReadFile(meta); err == nil {
		var m map[string]map[string]any
		if json.Unmarshal(b, &m) == nil {
			for _, v := range m {
				if d, ok := v["containerimage.digest"].(string); ok {
					res.Digest = d
				}
			}
		}
	}
	return res
}

// publishEnv is the environment of a hermetic publish to image.
func publishEnv(image, version, revision, epoch string) []string {
	return []string{
		"IMAGE=" + image,
		"VERSION=" + version,
		"REVISION=" + revision,
		"SOURCE_DATE_EPOCH=" + epoch,
		"PLATFORMS=" + strings.Join(platforms, ","),
		"REGISTRY_INSECURE=true",
		"CACHE_FROM=",
		"CACHE_TO=",
		// The SBOM generator pushed by published(); empty before: no SBOM.
		"SBOM_GENERATOR=" + sbomGenerator,
	}
}

func git(t testing.TB, args ...string) string {
	t.Helper()
	r := icmd.RunCmd(icmd.Command("git", args...), icmd.Dir(dockertest.RepoRoot()))
	r.Assert(t, icmd.Success)
	return strings.TrimSpace(r.Stdout())
}

// Published is what one push left in the registry.
type Published struct {
	Ref    string // repo:tag
	Index  v1.ImageIndex
	Digest v1.Hash
	Images map[string]v1.Hash // manifest digest per platform
}

func readPublished(ref string) (*Published, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	idx, err := remote.Index(r)
	if err != nil {
		return nil, fmt.Errorf("reading index %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	p := &Published{Ref: ref, Index: idx, Digest: d, Images: map[string]v1.Hash{}}
	for _, desc := range m.Manifests {
		if desc.Platform != nil && desc.Platform.OS != "unknown" {
			p.Images[desc.Platform.String()] = desc.Digest
		}
	}
	return p, nil
}

// Image is one platform's image of the index.
func (p *Published) Image(platform string) (v1.Image, error) {
	d, ok := p.Images[platform]
	if !ok {
		return nil, fmt.Errorf("%s has no %s image (has %v)", p.Ref, platform, p.Images)
	}
	return p.Index.Image(d)
}

// fileHead is the start of a file in an image's flattened filesystem.
type fileHead struct {
	typ  byte
	link string
	head []byte
}

// readHeads reads the first bytes of the named files from the image's
// flattened filesystem (all layers applied), following symlinks.
func readHeads(img v1.Image, paths ...string) (map[string][]byte, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]fileHead{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		p := "/" + strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		fh := fileHead{typ: h.Typeflag, link: h.Linkname}
		if h.Typeflag == tar.TypeReg {
			buf := make([]byte, 64)
			n, _ := io.ReadFull(tr, buf)
			fh.head = buf[:n]
		}
		files[p] = fh
	}
	out := map[string][]byte{}
	for _, want := range paths {
		p := want
		for hops := 0; ; hops++ {
			f, ok := files[p]
			if !ok {
				return nil, fmt.Errorf("%s: not in the image", p)
			}
			if hops > 10 {
				return nil, fmt.Errorf("%s: too many symlinks", want)
			}
			switch f.typ {
			case tar.TypeSymlink:
				if strings.HasPrefix(f.link, "/") {
					p = path.Clean(f.link)
				} else {
					p = path.Clean(path.Join(path.Dir(p), f.link))
				}
				continue
			case tar.TypeLink:
				p = "/" + strings.TrimPrefix(path.Clean("/"+f.link), "/")
				continue
			}
			out[want] = f.head
			break
		}
	}
	return out, nil
}

// elfMachine is an ELF file's e_machine, or an error saying why it is not ELF.
func elfMachine(head []byte) (uint16, error) {
	if len(head) < 20 || string(head[:4]) != "\x7fELF" {
		return 0, fmt.Errorf("not an ELF file (starts with %q)", head[:min(len(head), 8)])
	}
	if head[5] != 1 {
		return 0, fmt.Errorf("not a little-endian ELF file (EI_DATA=%d)", head[5])
	}
	return binary.LittleEndian.Uint16(head[18:20]), nil
}

// layerDiff names the layers that differ between two images, with the
// history line that made each and the files whose content or metadata
// differ, to show what broke reproducibility.
func layerDiff(a, b v1.Image) string {
	la, errA := a.Layers()
	lb, errB := b.Layers()
	if errA != nil || errB != nil {
		return fmt.Sprintf("(cannot read layers: %v %v)", errA, errB)
	}
	cf, _ := a.ConfigFile()
	var hist []string
	if cf != nil {
		for _, h := range cf.History {
			if !h.EmptyLayer {
				hist = append(hist, h.CreatedBy)
			}
		}
	}
	var out []string
	for i := 0; i < max(len(la), len(lb)); i++ {
		if i >= len(la) || i >= len(lb) {
			out = append(out, fmt.Sprintf("  layer %d: only in one image", i))
			continue
		}
		da, _ := la[i].Digest()
		db, _ := lb[i].Digest()
		if da == db {
			continue
		}
		what := ""
		if i < len(hist) {
			what = strings.Join(strings.Fields(hist[i]), " ")
			if len(what) > 100 {
				what = what[:100] + "…"
			}
		}
		out = append(out, fmt.Sprintf("  layer %d (%s): %s vs %s", i, what, da, db))
		fa, errA := layerFiles(la[i])
		fb, errB := layerFiles(lb[i])
		if errA != nil || errB != nil {
			out = append(out, fmt.Sprintf("    (cannot read: %v %v)", errA, errB))
			continue
		}
		var diff []string
		for p, ea := range fa {
			eb, ok := fb[p]
			switch {
			case !ok:
				diff = append(diff, p+" (only in the first)")
			case ea != eb:
				diff = append(diff, p+" ("+ea.diff(eb)+")")
			}
		}
		for p := range fb {
			if _, ok := fa[p]; !ok {
				diff = append(diff, p+" (only in the rebuild)")
			}
		}
		sort.Strings(diff)
		if len(diff) > 12 {
			diff = append(diff[:12], fmt.Sprintf("… %d more", len(diff)-12))
		}
		out = append(out, "    differing files: "+strings.Join(diff, ", "))
	}
	ca, _ := a.ConfigName()
	cb, _ := b.ConfigName()
	if ca != cb {
		out = append(out, fmt.Sprintf("  config: %s vs %s", ca, cb))
	}
	return strings.Join(out, "\n")
}

// entry is what a layer says about one path.
type entry struct {
	typ        byte
	mode       int64
	uid, gid   int
	link       string
	mtime      int64
	contentSHA string
}

func (a entry) diff(b entry) string {
	var d []string
	if a.contentSHA != b.contentSHA {
		d = append(d, "content")
	}
	if a.mtime != b.mtime {
		d = append(d, fmt.Sprintf("mtime %d vs %d", a.mtime, b.mtime))
	}
	if a.mode != b.mode || a.typ != b.typ {
		d = append(d, fmt.Sprintf("mode %c%o vs %c%o", a.typ, a.mode, b.typ, b.mode))
	}
	if a.uid != b.uid || a.gid != b.gid {
		d = append(d, fmt.Sprintf("owner %d:%d vs %d:%d", a.uid, a.gid, b.uid, b.gid))
	}
	if a.link != b.link {
		d = append(d, fmt.Sprintf("link %q vs %q", a.link, b.link))
	}
	return strings.Join(d, "; ")
}

// layerFiles reads a layer's entries by path.
func layerFiles(l v1.Layer) (map[string]entry, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	out := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return nil, err
		}
		out["/"+strings.TrimPrefix(h.Name, "./")] = entry{
			typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, link: h.Linkname,
			mtime: h.ModTime.Unix(), contentSHA: hex.EncodeToString(sum.Sum(nil)),
		}
	}
}
