package harness

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// TestImageScriptsAreWellFormed: every file s6 runs has no CRLF, no BOM and
// the exec bit where s6 needs it.
func TestImageScriptsAreWellFormed(t *testing.T) {
	t.Parallel()
	forEachSource(t, func(t *testing.T, image string) {
		script := `find /etc/s6-overlay /etc/hermes-s6 /etc/cont-init.d /etc/cont-finish.d /command/with-contenv -type f 2>/dev/null | while read -r f; do
  printf '%s %s %s' "$f" "$(stat -c %a "$f")" "$(od -An -tx1 -N3 "$f" | tr -d ' \n')-"
  if grep -q "$(printf '\r')" "$f"; then printf ' CRLF'; fi
  echo
done`
		r := RunToExit(t, image, Flags("--entrypoint", "/bin/sh"), Cmd("-c", script))
		r.Assert(t, icmd.Success)
		lines := strings.Split(strings.TrimSpace(r.Stdout()), "\n")
		assert.Assert(t, len(lines) >= 8, "expected the image's s6 files, got:\n%s", r.Stdout())
		checked := 0
		for _, line := range lines {
			f := strings.Fields(line)
			assert.Assert(t, len(f) >= 3, "bad line %q", line)
			path, mode, head := f[0], f[1], f[2]
			assert.Check(t, len(f) == 3, "%s has CRLF line endings", path)
			assert.Check(t, head != "efbbbf-", "%s starts with a UTF-8 BOM", path)
			base := path[strings.LastIndex(path, "/")+1:]
			needsExec := base == "run" || base == "finish" ||
				strings.Contains(path, "/cont-init.d/") || strings.Contains(path, "/cont-finish.d/") || base == "with-contenv"
			if needsExec {
				assert.Check(t, (mode[0]-'0')&1 == 1, "%s must be executable (mode %s)", path, mode)
				checked++
			}
		}
		assert.Check(t, checked >= 6, "expected run/finish scripts and cont-init.d files, checked %d", checked)
	})
}
