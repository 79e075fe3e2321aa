package publish

// Signatures and signed attestations on the hermetic publish, made and
// checked with the cosign CLI (.ci/tools/sign, built by .ci/provision) the
// way a user checks a release, with a key generated for the run: the
// registry is on 127.0.0.1, so there is no Fulcio and no Rekor
// (--tlog-upload=false to sign, --insecure-ignore-tlog to verify; the
// release workflow signs keyless, see docs/publishing.md).

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
)

// cosignBin is the cosign .ci/provision builds, or one on PATH; "" if none.
func cosignBin() string {
	cache := os.Getenv("HERMES_S6_CACHE")
	if cache == "" {
		cache = "/var/cache/hermes-s6"
	}
	if p := filepath.Join(cache, "bin", "cosign"); isExecutable(p) {
		return p
	}
	p, _ := exec.LookPath("cosign")
	return p
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// cosignClient runs cosign as a clean client: its own empty HOME and
// DOCKER_CONFIG (no credentials, no sigstore cache), nothing from this
// process's environment but PATH.
type cosignClient struct {
	bin, home string
}

func newCosignClient(t *testing.T) cosignClient {
	t.Helper()
	bin := cosignBin()
	assert.Assert(t, bin != "", "no cosign: run sh .ci/provision (builds it into /var/cache/hermes-s6/bin)")
	home := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(home, ".docker"), 0o700))
	return cosignClient{bin: bin, home: home}
}

func (c cosignClient) run(dir string, args ...string) *icmd.Result {
	cmd := icmd.Command(c.bin, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.home,
		"DOCKER_CONFIG=" + filepath.Join(c.home, ".docker"),
		"COSIGN_PASSWORD=",
	}
	return icmd.RunCmd(cmd, icmd.Dir(dir), icmd.WithTimeout(2*time.Minute))
}

// keyPair generates a cosign key pair (empty password) in a new directory.
func (c cosignClient) keyPair(t *testing.T) (key, pub string) {
	t.Helper()
	dir := t.TempDir()
	c.run(dir, "generate-key-pair").Assert(t, icmd.Success)
	return filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
}

// The flags of a test against the 127.0.0.1 registry: plain HTTP, no
// transparency log.
var (
	signFlags   = []string{"--tlog-upload=false", "--allow-http-registry", "--yes"}
	verifyFlags = []string{"--insecure-ignore-tlog", "--allow-http-registry"}
)

func (c cosignClient) sign(t *testing.T, key, ref string) {
	t.Helper()
	c.run("", append(append([]string{"sign", "--key", key}, signFlags...), ref)...).Assert(t, icmd.Success)
}

func (c cosignClient) attest(t *testing.T, key, predicate, ref string) {
	t.Helper()
	args := append([]string{"attest", "--key", key, "--type", "spdxjson", "--predicate", predicate}, signFlags...)
	c.run("", append(args, ref)...).Assert(t, icmd.Success)
}

func (c cosignClient) verify(pub, ref string) *icmd.Result {
	return c.run("", append(append([]string{"verify", "--key", pub}, verifyFlags...), ref)...)
}

func (c cosignClient) verifyAttestation(pub, ref string) *icmd.Result {
	return c.run("", append(append([]string{"verify-attestation", "--key", pub, "--type", "spdxjson"}, verifyFlags...), ref)...)
}

// writePredicate writes the SPDX document BuildKit attached to the
// platform's image to a file, for cosign attest.
func writePredicate(t *testing.T, p *Published, platform string) string {
	t.Helper()
	st, err := sbomOf(p, platform)
	assert.NilError(t, err)
	f := filepath.Join(t.TempDir(), "sbom.spdx.json")
	assert.NilError(t, os.WriteFile(f, st.Predicate, 0o644))
	return f
}

// dsseStatement decodes the in-toto statements of cosign verify-attestation's
// output (one DSSE envelope per line on stdout).
func dsseStatements(t *testing.T, out string) []statement {
	t.Helper()
	var sts []statement
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var env struct {
			PayloadType string `json:"payloadType"`
			Payload     string `json:"payload"`
		}
		assert.NilError(t, json.Unmarshal([]byte(line), &env), "verify-attestation printed %q", line)
		assert.Check(t, is.Equal(env.PayloadType, "application/vnd.in-toto+json"))
		b, err := base64.StdEncoding.DecodeString(env.Payload)
		assert.NilError(t, err)
		var st statement
		assert.NilError(t, json.Unmarshal(b, &st))
		sts = append(sts, st)
	}
	return sts
}

// TestPublishSignedAndVerified signs the pushed index and each platform
// image with a key made for the run, attaches each platform's SBOM as a
// signed SPDX attestation, and verifies both from a clean client (fresh
// HOME and DOCKER_CONFIG): what a user does before running a release.
func TestPublishSignedAndVerified(t *testing.T) {
	p := published(t)
	signer := newCosignClient(t)
	key, pub := signer.keyPair(t)
	repo := strings.TrimSuffix(p.Ref, ":"+version+"-hermetic")
	index := repo + "@" + p.Digest.String()

	signer.sign(t, key, index)
	for _, pl := range platforms {
		ref := repo + "@" + p.Images[pl].String()
		signer.sign(t, key, ref)
		signer.attest(t, key, writePredicate(t, p, pl), ref)
	}

	user := newCosignClient(t)
	r := user.verify(pub, p.Ref) // by tag, as users pull it
	r.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(r.Stderr(), "The signatures were verified against the specified public key"))
	assert.Check(t, is.Contains(r.Stdout(), p.Digest.String()), "the verified signature names the index digest")
	for _, pl := range platforms {
		t.Run(pl, func(t *testing.T) {
			ref := repo + "@" + p.Images[pl].String()
			user.verify(pub, ref).Assert(t, icmd.Success)
			r := user.verifyAttestation(pub, ref)
			r.Assert(t, icmd.Success)
			sts := dsseStatements(t, r.Stdout())
			assert.Assert(t, is.Len(sts, 1))
			st := sts[0]
			assert.Check(t, is.Equal(st.PredicateType, predicateSPDX))
			assert.Assert(t, is.Len(st.Subject, 1))
			assert.Check(t, is.Equal("sha256:"+st.Subject[0].Digest["sha256"], p.Images[pl].String()), "the signed SBOM is about this image")
			var doc spdxDoc
			assert.NilError(t, json.Unmarshal(st.Predicate, &doc))
			assert.Check(t, len(doc.packages()) > 50, "the signed SBOM lists the image's packages: %d", len(doc.packages()))
		})
	}
}

// TestPublishTamperedFailsVerification: a signature by another key, an image
// re-pushed under a signed tag, and an attestation whose content was changed
// after signing all fail verification with cosign's message, while the
// genuine ones still verify. Played on a copy of the amd64 image in a
// repository of its own, so the publish the other tests read stays intact.
func TestPublishTamperedFailsVerification(t *testing.T) {
	p := published(t)
	c := newCosignClient(t)
	key, pub := c.keyPair(t)
	_, otherPub := c.keyPair(t)

	img, err := p.Image("linux/amd64")
	assert.NilError(t, err)
	tag, err := name.ParseReference(reg.Repo("hermes-s6-tamper")+":signed", name.Insecure)
	assert.NilError(t, err)
	assert.NilError(t, remote.Write(tag, img))
	d, err := img.Digest()
	assert.NilError(t, err)
	byDigest := tag.Context().Digest(d.String()).String()
	c.sign(t, key, byDigest)
	c.attest(t, key, writePredicate(t, p, "linux/amd64"), byDigest)
	c.verify(pub, tag.String()).Assert(t, icmd.Success)
	c.verifyAttestation(pub, byDigest).Assert(t, icmd.Success)

	t.Run("another key", func(t *testing.T) {
		refused(t, c.verify(otherPub, byDigest), "no matching signatures: invalid signature")
		refused(t, c.verifyAttestation(otherPub, byDigest), "no matching attestations")
	})

	t.Run("re-pushed tag", func(t *testing.T) {
		// Same tag, other content (one label changed): nothing signed it.
		cf, err := img.ConfigFile()
		assert.NilError(t, err)
		cf = cf.DeepCopy()
		cf.Config.Labels["org.opencontainers.image.revision"] = "tampered"
		other, err := mutate.ConfigFile(img, cf)
		assert.NilError(t, err)
		assert.NilError(t, remote.Write(tag, other))
		refused(t, c.verify(pub, tag.String()), "no signatures found")
		// The signed digest still verifies.
		c.verify(pub, byDigest).Assert(t, icmd.Success)
	})

	t.Run("attestation changed after signing", func(t *testing.T) {
		// cosign keeps attestations as DSSE envelopes in the layers of
		// the image tagged sha256-<digest>.att. Change the statement in
		// the envelope, keep the signature, push it back.
		attRef, err := name.ParseReference(reg.Repo("hermes-s6-tamper")+":"+strings.Replace(d.String(), ":", "-", 1)+".att", name.Insecure)
		assert.NilError(t, err)
		att, err := remote.Image(attRef)
		assert.NilError(t, err)
		forged, err := forgeAttestation(att)
		assert.NilError(t, err)
		assert.NilError(t, remote.Write(attRef, forged))
		refused(t, c.verifyAttestation(pub, byDigest), "no matching attestations")
	})
}

// refused: cosign exited non-zero and said why on stderr.
func refused(t *testing.T, r *icmd.Result, why string) {
	t.Helper()
	assert.Check(t, r.ExitCode != 0, "cosign %s must fail:\n%s", strings.Join(r.Cmd.Args[1:], " "), r.Combined())
	assert.Check(t, is.Contains(r.Stderr(), why))
	if _, e, ok := strings.Cut(r.Stderr(), "Error:"); ok {
		t.Logf("cosign refused: %s", strings.TrimSpace(dockertest.FirstLine(e)))
	}
}

// forgeAttestation rewrites every DSSE envelope layer of a cosign
// attestation image: the statement's predicate gets one more package (a
// forged SBOM), the signatures and annotations stay as they were.
func forgeAttestation(att v1.Image) (v1.Image, error) {
	m, err := att.Manifest()
	if err != nil {
		return nil, err
	}
	cf, err := att.ConfigFile()
	if err != nil {
		return nil, err
	}
	out, err := mutate.ConfigFile(mutate.MediaType(empty.Image, m.MediaType), &v1.ConfigFile{Architecture: cf.Architecture, OS: cf.OS, RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		return nil, err
	}
	for _, desc := range m.Layers {
		l, err := att.LayerByDigest(desc.Digest)
		if err != nil {
			return nil, err
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		var env map[string]any
		err = json.NewDecoder(rc).Decode(&env)
		rc.Close()
		if err != nil {
			return nil, err
		}
		payload, err := base64.StdEncoding.DecodeString(env["payload"].(string))
		if err != nil {
			return nil, err
		}
		forged := strings.Replace(string(payload), `"packages":[`, `"packages":[{"SPDXID":"SPDXRef-Package-forged","name":"forged","versionInfo":"1"},`, 1)
		if forged == string(payload) {
			return nil, fmt.Errorf("the attestation's statement has no SPDX packages list to forge: %.200s", payload)
		}
		env["payload"] = base64.StdEncoding.EncodeToString([]byte(forged))
		b, err := json.Marshal(env)
		if err != nil {
			return nil, err
		}
		out, err = mutate.Append(out, mutate.Addendum{
			Layer:       static.NewLayer(b, desc.MediaType),
			Annotations: desc.Annotations,
			MediaType:   desc.MediaType,
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
