package harness

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
	"gotest.tools/v3/icmd"
)

var (
	releaseOnce   sync.Once
	releaseImage  string
	releaseReason string
)

// releaseTestImage is the test image built with the s6-overlay release
// tarballs: $HERMES_TEST_IMAGE_RELEASE, or built once with
// TEST_S6_SOURCE=release. Where the tarballs cannot be had (no network and no
// S6_TARBALLS_CONTEXT), the reason is returned instead.
func releaseTestImage(t testing.TB) (string, string) {
	requireEngine(t)
	releaseOnce.Do(func() {
		if img := os.Getenv("HERMES_TEST_IMAGE_RELEASE"); img != "" {
			releaseImage = img
			return
		}
		cmd := icmd.Command("docker", "buildx", "bake", "test")
		cmd.Env = append(os.Environ(), "TEST_S6_SOURCE=release")
		r := icmd.RunCmd(cmd, icmd.Dir(dockertest.RepoRoot()))
		if r.ExitCode != 0 {
			why := "build failed"
			for _, line := range strings.Split(r.Combined(), "\n") {
				if strings.Contains(line, "s6-overlay") && (strings.Contains(line, "ERROR") || strings.Contains(line, "failed")) {
					why = strings.TrimSpace(line)
					break
				}
			}
			releaseReason = "s6-overlay release tarballs cannot be had here (no network; set S6_TARBALLS_CONTEXT to a local mirror): " + why
			return
		}
		releaseImage = "hermes-s6:test-release"
	})
	return releaseImage, releaseReason
}

// forEachSource runs fn against the test image of each s6 source, as
// parallel subtests: "debian" (Debian's s6 + the stage layer) and "release"
// (s6-overlay tarballs; skipped with its reason where they cannot be had).
// With HERMES_TEST_IMAGE set, only that image is tested.
func forEachSource(t *testing.T, fn func(t *testing.T, image string)) {
	t.Helper()
	requireEngine(t)
	if os.Getenv("HERMES_TEST_IMAGE") != "" {
		fn(t, testImage(t))
		return
	}
	t.Run("debian", func(t *testing.T) {
		t.Parallel()
		fn(t, testImage(t))
	})
	t.Run("release", func(t *testing.T) {
		t.Parallel()
		img, reason := releaseTestImage(t)
		if img == "" {
			t.Skip(reason)
		}
		fn(t, img)
	})
}
