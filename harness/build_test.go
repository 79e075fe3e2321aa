package harness

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

func bake(env []string, args ...string) *icmd.Result {
	cmd := icmd.Command("docker", append([]string{"buildx", "bake"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return icmd.RunCmd(cmd, icmd.Dir(dockertest.RepoRoot()))
}

// TestBakePrintsEveryTarget: every group and target parses.
func TestBakePrintsEveryTarget(t *testing.T) {
	t.Parallel()
	requireEngine(t)
	for _, target := range []string{"default", "image", "hermetic", "test", "release"} {
		bake(nil, "--print", target).Assert(t, icmd.Success)
	}
	// The Dockerfile passes BuildKit's checks (the hermetic target resolves
	// its base offline).
	bake(nil, "--call=check", "hermetic").Assert(t, icmd.Expected{Out: "no warnings found"})
}

// TestBuildRejectsBadInput: bad settings fail the build with a message that
// says what is wrong, and no image is tagged.
func TestBuildRejectsBadInput(t *testing.T) {
	t.Parallel()
	requireEngine(t)
	testImage(t) // warm the shared stages first

	assert.NilError(t, os.MkdirAll(filepath.Join(dockertest.RepoRoot(), ".cache"), 0o755))
	fake, err := os.MkdirTemp(filepath.Join(dockertest.RepoRoot(), ".cache"), "fake-s6-")
	assert.NilError(t, err)
	t.Cleanup(func() { os.RemoveAll(fake) })
	for _, n := range []string{"noarch", "x86_64", "aarch64", "symlinks-noarch", "symlinks-arch"} {
		assert.NilError(t, os.WriteFile(filepath.Join(fake, "s6-overlay-"+n+".tar.xz"), []byte("tampered "+n), 0o644))
	}
	rel, _ := filepath.Rel(dockertest.RepoRoot(), fake)
	// The unknown-arch case builds only the stage that maps TARGETARCH: the
	// hermetic base has no riscv64 image to resolve the final stage with.
	// A tag of its own, so a failed build can be shown to have tagged nothing.
	tag := "hermes-s6:rejected-" + filepath.Base(fake)[len("fake-s6-"):]

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"bogus S6_SOURCE", []string{"S6_SOURCE=bogus"}, []string{"image"}, `S6_SOURCE must be "release"`},
		{"bogus TEST_S6_SOURCE", []string{"TEST_S6_SOURCE=bogus"}, []string{"test"}, `TEST_S6_SOURCE must be "release" or "debian"`},
		{"bad PLATFORMS", []string{"PLATFORMS=linux/amd64,linux/s390x"}, []string{"release"}, "PLATFORMS must be a comma-separated list of linux/amd64 and linux/arm64"},
		{"bad HERMES_AGENT_EXTRAS", []string{"HERMES_AGENT_EXTRAS=all messaging"}, []string{"image"}, "HERMES_AGENT_EXTRAS must be a comma-separated list of extra names"},
		{"tampered tarballs", []string{"TEST_S6_SOURCE=release", "S6_TARBALLS_CONTEXT=" + rel}, []string{"test"}, "checksum verification FAILED (refusing to unpack)"},
		{"unknown arch", []string{"TEST_S6_SOURCE=release", "S6_TARBALLS_CONTEXT=" + rel}, []string{"test", "--set", "test.platform=linux/riscv64", "--set", "test.target=s6-release-files"}, "unsupported TARGETARCH 'riscv64'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bake(tc.env, append(tc.args, "--set", tc.args[0]+".tags="+tag)...)
			r.Assert(t, icmd.Expected{ExitCode: 1, Err: tc.want})
			assert.Check(t, icmd.RunCommand("docker", "image", "inspect", tag).ExitCode != 0, "no image may be tagged after a failed build")
		})
	}
}
