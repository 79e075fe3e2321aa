package publish

// The SBOM of the hermetic publish: BuildKit runs this project's generator
// (.ci/scanner, built here and pushed to the test registry) on each
// platform's image and attaches an SPDX document per platform. The tests
// read it back and hold it against the image it is attached to.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
)

// predicateSPDX is the in-toto predicate type of an SPDX document.
const predicateSPDX = "https://spdx.dev/Document"

// sbomGenerator is the generator image pushed by pushScanner
// (REGISTRY/sbom-scanner@sha256:…), handed to bake as SBOM_GENERATOR.
var sbomGenerator string

// pushScanner builds the SBOM generator from .ci/scanner (its own module,
// from the source snapshot), as a static binary in an image of its own
// (FROM scratch), and pushes it to the test registry, where BuildKit pulls
// it (127.0.0.1 is plain HTTP to BuildKit's resolver). It returns the image
// by digest, or a message saying what failed.
//
// Cold (empty Go build cache) the build compiles syft and its dependencies;
// warm it only links.
func pushScanner(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "sbom-scanner")
	// The generator runs on the build platform (BuildKit runs it on
	// BuildPlatforms[0]), this host.
	cmd := icmd.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=-buildvcs=false")
	start := time.Now()
	r := icmd.RunCmd(cmd, icmd.Dir(filepath.Join(srcDir, ".ci", "scanner")), icmd.WithTimeout(20*time.Minute))
	if r.ExitCode != 0 {
		return "", "building the SBOM generator (.ci/scanner) failed:\n" + dockertest.Tail(r.Combined(), 30)
	}
	t.Logf("built the SBOM generator in %s", time.Since(start).Round(time.Second))

	layer, err := fileLayer(bin, "sbom-scanner")
	if err != nil {
		return "", "SBOM generator image: " + err.Error()
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err == nil {
		var cf *v1.ConfigFile
		if cf, err = img.ConfigFile(); err == nil {
			cf = cf.DeepCopy()
			cf.OS, cf.Architecture = "linux", runtime.GOARCH
			cf.Config.Entrypoint = []string{"/sbom-scanner"}
			img, err = mutate.ConfigFile(img, cf)
		}
	}
	if err != nil {
		return "", "SBOM generator image: " + err.Error()
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	ref, err := name.ParseReference(reg.Repo("sbom-scanner")+":test", name.Insecure)
	if err == nil {
		err = remote.Write(ref, img)
	}
	if err != nil {
		return "", "pushing the SBOM generator: " + err.Error()
	}
	d, err := img.Digest()
	if err != nil {
		return "", err.Error()
	}
	gen := reg.Repo("sbom-scanner") + "@" + d.String()
	t.Logf("SBOM generator %s", gen)
	return gen, ""
}

// fileLayer is a layer holding one executable file at /as.
func fileLayer(file, as string) (v1.Layer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: as, Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
}

// statement is an in-toto statement with an SPDX predicate.
type statement struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate json.RawMessage `json:"predicate"`
}

// spdxDoc is the part of an SPDX 2.3 JSON document the tests read.
type spdxDoc struct {
	SPDXVersion string `json:"spdxVersion"`
	Packages    []struct {
		ID           string `json:"SPDXID"`
		Name         string `json:"name"`
		Version      string `json:"versionInfo"`
		ExternalRefs []struct {
			Type    string `json:"referenceType"`
			Locator string `json:"referenceLocator"`
		} `json:"externalRefs"`
	} `json:"packages"`
	Files []struct {
		ID        string `json:"SPDXID"`
		Name      string `json:"fileName"`
		Checksums []struct {
			Algorithm string `json:"algorithm"`
			Value     string `json:"checksumValue"`
		} `json:"checksums"`
	} `json:"files"`
	Relationships []struct {
		From string `json:"spdxElementId"`
		To   string `json:"relatedSpdxElement"`
		Type string `json:"relationshipType"`
	} `json:"relationships"`
}

// pkgInfo is one package of an SBOM: its purl and the files that show it.
type pkgInfo struct {
	Name, Version, PURL string
	Files               []string
}

// packages lists the document's packages with their purls and evidence
// files (syft relates a package to the file it was found in).
func (d spdxDoc) packages() []pkgInfo {
	files := map[string]string{}
	for _, f := range d.Files {
		files[f.ID] = "/" + strings.TrimPrefix(f.Name, "/")
	}
	evidence := map[string][]string{}
	for _, r := range d.Relationships {
		if f, ok := files[r.To]; ok && r.Type == "OTHER" {
			evidence[r.From] = append(evidence[r.From], f)
		}
	}
	var out []pkgInfo
	for _, p := range d.Packages {
		pi := pkgInfo{Name: p.Name, Version: p.Version, Files: evidence[p.ID]}
		for _, r := range p.ExternalRefs {
			if r.Type == "purl" {
				pi.PURL = r.Locator
			}
		}
		out = append(out, pi)
	}
	return out
}

// fileSHA256 is the SHA-256 the document records for the file at path.
func (d spdxDoc) fileSHA256(path string) string {
	for _, f := range d.Files {
		if "/"+strings.TrimPrefix(f.Name, "/") != path {
			continue
		}
		for _, c := range f.Checksums {
			if c.Algorithm == "SHA256" {
				return c.Value
			}
		}
	}
	return ""
}

// sbomOf reads the SPDX attestation BuildKit attached to the platform's
// image in the index: the statement, and its raw predicate.
func sbomOf(p *Published, platform string) (*statement, error) {
	m, err := p.Index.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.Annotations["vnd.docker.reference.type"] != "attestation-manifest" ||
			d.Annotations["vnd.docker.reference.digest"] != p.Images[platform].String() {
			continue
		}
		img, err := p.Index.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		am, err := img.Manifest()
		if err != nil {
			return nil, err
		}
		for _, l := range am.Layers {
			if l.Annotations["in-toto.io/predicate-type"] != predicateSPDX {
				continue
			}
			layer, err := img.LayerByDigest(l.Digest)
			if err != nil {
				return nil, err
			}
			rc, err := layer.Uncompressed()
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			var st statement
			if err := json.NewDecoder(rc).Decode(&st); err != nil {
				return nil, fmt.Errorf("SPDX attestation of %s: %w", platform, err)
			}
			return &st, nil
		}
		return nil, fmt.Errorf("the attestation manifest %s of %s has no %s layer", d.Digest, platform, predicateSPDX)
	}
	return nil, fmt.Errorf("no attestation manifest for the %s image %s", platform, p.Images[platform])
}

// readFiles reads whole files from the image's flattened filesystem.
func readFiles(img v1.Image, paths ...string) (map[string][]byte, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		p := path.Clean("/" + h.Name)
		if h.Typeflag == tar.TypeReg && slices.Contains(paths, p) {
			if out[p], err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range paths {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("%s: not a file in the image", p)
		}
	}
	return out, nil
}

// dpkgInstalled parses a dpkg status file: installed package -> version and
// architecture ("1.2-3 amd64").
func dpkgInstalled(status []byte) map[string]string {
	out := map[string]string{}
	for _, para := range strings.Split(string(status), "\n\n") {
		f := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(para))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ": "); ok && !strings.HasPrefix(k, " ") {
				f[k] = v
			}
		}
		if f["Package"] != "" && strings.HasSuffix(f["Status"], " installed") {
			out[f["Package"]] = f["Version"] + " " + f["Architecture"]
		}
	}
	return out
}

// goModules is what `go list` says the command links: module -> version
// (the main module left out), for the platform.
func goModules(t *testing.T, platform, pkg string) map[string]string {
	t.Helper()
	goos, goarch, _ := strings.Cut(platform, "/")
	cmd := icmd.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}", pkg)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	r := icmd.RunCmd(cmd, icmd.Dir(srcDir))
	r.Assert(t, icmd.Success)
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout()), "\n") {
		if m, v, ok := strings.Cut(l, " "); ok {
			out[m] = v
		}
	}
	return out
}

// TestPublishSBOM: every platform image carries an SPDX SBOM whose subject
// is that image, listing what the image holds with versions: every Debian
// package of its dpkg database (s6 and execline among them), for its
// architecture; the Go modules each Go binary links (hermes-s6 and the
// stand-in agent at /opt/hermes/bin/hermes-agent), as go list resolves them
// from go.mod, and the Go standard library of go.mod's toolchain.
func TestPublishSBOM(t *testing.T) {
	p := published(t)
	goVersion := buildToolchain(t)
	for _, pl := range platforms {
		t.Run(pl, func(t *testing.T) {
			st, err := sbomOf(p, pl)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(st.PredicateType, predicateSPDX))
			// It describes this image: every subject (one per tag) is its
			// manifest.
			assert.Check(t, len(st.Subject) > 0, "the SBOM statement has no subject")
			for _, s := range st.Subject {
				assert.Check(t, is.Equal("sha256:"+s.Digest["sha256"], p.Images[pl].String()), "subject %s", s.Name)
			}
			t.Cleanup(func() {
				if t.Failed() {
					f := filepath.Join(os.TempDir(), "hermes-publish-sbom-"+strings.ReplaceAll(pl, "/", "-")+".spdx.json")
					if os.WriteFile(f, st.Predicate, 0o644) == nil {
						t.Logf("the SBOM is in %s", f)
					}
				}
			})

			var doc spdxDoc
			assert.NilError(t, json.Unmarshal(st.Predicate, &doc))
			assert.Check(t, is.Equal(doc.SPDXVersion, "SPDX-2.3"))
			pkgs := doc.packages()
			t.Logf("%s: %d packages in the SBOM", pl, len(pkgs))

			// Debian: exactly the image's dpkg database, same versions, this
			// platform's architecture.
			img, err := p.Image(pl)
			assert.NilError(t, err)
			files, err := readFiles(img, "/var/lib/dpkg/status", "/usr/local/bin/hermes-s6", "/opt/hermes/bin/hermes-agent")
			assert.NilError(t, err)
			installed := dpkgInstalled(files["/var/lib/dpkg/status"])
			assert.Check(t, installed["s6"] != "" && installed["execline"] != "", "the hermetic image has Debian's s6 and execline: %v", installed)
			arch := strings.TrimPrefix(pl, "linux/")
			listed := map[string]string{}
			for _, pk := range pkgs {
				if !strings.HasPrefix(pk.PURL, "pkg:deb/debian/") {
					continue
				}
				a := purlQualifier(pk.PURL, "arch")
				assert.Check(t, a == arch || a == "all", "%s: arch %q in the %s SBOM", pk.PURL, a, pl)
				listed[pk.Name] = pk.Version + " " + a
			}
			assert.Check(t, is.DeepEqual(listed, installed), "the SBOM's Debian packages must be the image's dpkg database")

			// Go: per binary, the modules it links with go.mod's versions,
			// the standard library, and the main module.
			for bin, cmdPkg := range map[string]string{
				"/usr/local/bin/hermes-s6":     "./tools/cmd/hermes-s6",
				"/opt/hermes/bin/hermes-agent": "./tools/cmd/hermes-agent-standin",
			} {
				want := goModules(t, pl, cmdPkg)
				got := map[string]string{}
				var main, std bool
				for _, pk := range pkgs {
					if !slices.Contains(pk.Files, bin) || !strings.HasPrefix(pk.PURL, "pkg:golang/") {
						continue
					}
					switch pk.Name {
					case "stdlib":
						std = true
						assert.Check(t, is.Equal(pk.Version, goVersion), "%s: Go standard library", bin)
					case "github.com/hermes-agent/hermes-s6":
						main = true
					default:
						got[pk.Name] = pk.Version
					}
				}
				assert.Check(t, main, "%s: the main module github.com/hermes-agent/hermes-s6 is not in the SBOM", bin)
				assert.Check(t, std, "%s: the Go standard library is not in the SBOM", bin)
				assert.Check(t, len(want) > 0, "go list names no module for %s", cmdPkg)
				assert.Check(t, is.DeepEqual(got, want), "%s: the SBOM's Go modules must be what go.mod resolves for %s", bin, cmdPkg)
				// The binary it describes is the image's.
				assert.Check(t, is.Equal(doc.fileSHA256(bin), fmt.Sprintf("%x", sha256.Sum256(files[bin]))), "%s: SHA-256 in the SBOM vs in the image", bin)
			}
		})
	}
}

// buildToolchain is the Go toolchain the image's Go stage builds with: go.mod's
// toolchain line, else its go line (GOTOOLCHAIN=auto in the Dockerfile).
func buildToolchain(t *testing.T) string {
	t.Helper()
	r := icmd.RunCmd(icmd.Command("go", "mod", "edit", "-json"), icmd.Dir(srcDir))
	r.Assert(t, icmd.Success)
	var m struct {
		Go        string
		Toolchain string
	}
	assert.NilError(t, json.Unmarshal([]byte(r.Stdout()), &m))
	if m.Toolchain != "" {
		return m.Toolchain
	}
	return "go" + m.Go
}

// purlQualifier is a qualifier's value in a package URL.
func purlQualifier(purl, key string) string {
	_, q, _ := strings.Cut(purl, "?")
	for _, kv := range strings.Split(q, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
