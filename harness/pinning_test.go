package harness

// What the image is built from must be pinned: every download has a
// checksum or a lock, so that a rebuild gets the same bytes or fails. The
// Dockerfile is read with BuildKit's own parser; the shell of each RUN is
// cut into simple commands and their words.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"

	"github.com/hermes-agent/hermes-s6/harness/internal/dockertest"
)

// unpinnedDownloads lists, one line each with its Dockerfile line, every
// download of the Dockerfile that is not pinned:
//   - ADD of a URL without --checksum, ADD of a git repository not at a
//     full commit (#<40 hex>);
//   - curl or wget in a RUN (a download belongs in ADD --checksum);
//   - pip install (pip, pip3, python -m pip, uv pip) without
//     --require-hashes; uv sync without --frozen or --locked;
//   - git clone (a branch head); go install/get of @latest.
func unpinnedDownloads(dockerfile []byte) ([]string, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, err
	}
	stages, meta, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, err
	}
	// ARG defaults, global then the stage's: a source such as
	// ${BASE_URL}/x.tar.xz is a download when its default is a URL.
	global := map[string]string{}
	for _, m := range meta {
		for _, a := range m.Args {
			if a.Value != nil {
				global[a.Key] = *a.Value
			}
		}
	}
	var out []string
	for _, st := range stages {
		args := maps.Clone(global)
		for _, cmd := range st.Commands {
			if a, ok := cmd.(*instructions.ArgCommand); ok {
				for _, kv := range a.Args {
					if kv.Value != nil {
						args[kv.Key] = *kv.Value
					}
				}
			}
			at := "Dockerfile"
			if loc := cmd.Location(); len(loc) > 0 {
				at = fmt.Sprintf("Dockerfile:%d", loc[0].Start.Line)
			}
			switch c := cmd.(type) {
			case *instructions.AddCommand:
				for _, src := range c.SourcePaths {
					if p := addProblem(os.Expand(src, func(k string) string { return args[k] }), c.Checksum); p != "" {
						out = append(out, fmt.Sprintf("%s (stage %s): ADD %s: %s", at, st.Name, src, p))
					}
				}
			case *instructions.RunCommand:
				for _, words := range simpleCommands(runText(c)) {
					if p := runProblem(words); p != "" {
						out = append(out, fmt.Sprintf("%s (stage %s): RUN %s: %s", at, st.Name, strings.Join(words, " "), p))
					}
				}
			}
		}
	}
	return out, nil
}

func isGitSource(src string) bool {
	return strings.HasPrefix(src, "git@") || strings.HasSuffix(strings.SplitN(src, "#", 2)[0], ".git")
}

func addProblem(src, checksum string) string {
	if isGitSource(src) {
		_, ref, _ := strings.Cut(src, "#")
		ref, _, _ = strings.Cut(ref, ":")
		if !isCommit(ref) {
			return "a git source not pinned to a commit (want #<40-hex commit>)"
		}
		return ""
	}
	if strings.Contains(src, "://") && checksum == "" {
		return "a download without --checksum=sha256:… (unpinned: pin its checksum)"
	}
	return ""
}

func isCommit(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// runProblem says why one simple command is an unpinned download, or "".
func runProblem(words []string) string {
	if len(words) == 0 {
		return ""
	}
	has := func(flags ...string) bool {
		return slices.ContainsFunc(words, func(w string) bool { return slices.Contains(flags, w) })
	}
	cmd := path.Base(words[0])
	args := words[1:]
	switch {
	case cmd == "curl" || cmd == "wget":
		return cmd + " downloads without a checksum (use ADD --checksum=sha256:…)"
	case (strings.HasPrefix(cmd, "pip") && len(args) > 0 && args[0] == "install") ||
		(strings.HasPrefix(cmd, "python") && len(args) > 2 && args[0] == "-m" && args[1] == "pip" && args[2] == "install") ||
		(cmd == "uv" && len(args) > 1 && args[0] == "pip" && args[1] == "install"):
		if !has("--require-hashes") {
			return "pip install without --require-hashes (unpinned: install from a lock file with hashes)"
		}
	case cmd == "uv" && len(args) > 0 && args[0] == "sync":
		if !has("--frozen", "--locked") {
			return "uv sync without --frozen or --locked (may resolve new versions instead of the lock file)"
		}
	case cmd == "git" && len(args) > 0 && args[0] == "clone":
		return "git clone gets a branch head (fetch a pinned commit instead)"
	case cmd == "go" && len(args) > 0 && (args[0] == "install" || args[0] == "get"):
		for _, a := range args[1:] {
			if strings.HasSuffix(a, "@latest") || strings.HasSuffix(a, "@master") || strings.HasSuffix(a, "@main") {
				return "go " + args[0] + " of " + a + " (pin a version)"
			}
		}
	}
	return ""
}

// simpleCommands cuts shell text into simple commands (at newlines, ;, &,
// |, parentheses and backquotes; a backslash-newline continues the line)
// and each into words, leading variable assignments and command wrappers
// (env, exec, command, sudo, time, xargs) dropped. Quotes are removed, not
// interpreted: enough to see which program runs with which flags.
func simpleCommands(text string) [][]string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var out [][]string
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return strings.ContainsRune("\n;&|()`", r) }) {
		var words []string
		for _, w := range strings.Fields(line) {
			w = strings.Trim(w, `"'`)
			if strings.HasPrefix(w, "#") && len(words) == 0 {
				break // a comment line
			}
			if w == "$" || w == "" {
				continue
			}
			if len(words) == 0 && (strings.Contains(w, "=") && !strings.HasPrefix(w, "-") ||
				slices.Contains([]string{"env", "exec", "command", "sudo", "time", "xargs", "then", "do", "else", "!"}, w)) {
				continue
			}
			words = append(words, w)
		}
		if len(words) > 0 {
			out = append(out, words)
		}
	}
	return out
}

// TestDockerfileHasNoUnpinnedDownload: every stage of the Dockerfile, the
// production target's included (s6-overlay tarballs, the real agent), pins
// what it downloads.
func TestDockerfileHasNoUnpinnedDownload(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(dockertest.RepoRoot(), "Dockerfile"))
	assert.NilError(t, err)
	bad, err := unpinnedDownloads(b)
	assert.NilError(t, err)
	assert.Check(t, is.Len(bad, 0), "unpinned downloads in the Dockerfile:\n%s", strings.Join(bad, "\n"))
	// And the checker sees the Dockerfile's downloads: the s6-overlay
	// tarballs are ADDed with their checksums.
	st := stage(t, "s6-tarballs")
	adds := 0
	for _, cmd := range st.Commands {
		if a, ok := cmd.(*instructions.AddCommand); ok {
			adds++
			assert.Check(t, strings.HasPrefix(a.Checksum, "sha256:${S6_OVERLAY_"), "ADD %v: checksum %q", a.SourcePaths, a.Checksum)
		}
	}
	assert.Check(t, is.Equal(adds, 5), "one ADD --checksum per s6-overlay tarball")
}

// TestUnpinnedDownloadsAreCaught: Dockerfiles with unpinned downloads are
// refused, each with the line and what to do; pinned forms pass.
func TestUnpinnedDownloadsAreCaught(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, dockerfile, want string }{
		{"ADD from an ARG URL", "ARG BASE=https://example.com/dl\nFROM scratch\nARG BASE V=1\nADD ${BASE}/v${V}/x.tar.xz /\n",
			"Dockerfile:4 (stage ): ADD ${BASE}/v${V}/x.tar.xz: a download without --checksum=sha256:…"},
		{"ADD URL", "FROM scratch\nADD https://example.com/x.tar.gz /\n",
			"Dockerfile:2 (stage ): ADD https://example.com/x.tar.gz: a download without --checksum=sha256:… (unpinned: pin its checksum)"},
		{"ADD git branch", "FROM scratch\nADD https://github.com/o/r.git#main /src\n",
			"Dockerfile:2 (stage ): ADD https://github.com/o/r.git#main: a git source not pinned to a commit"},
		{"curl", "FROM debian AS fetch\nRUN set -eu; curl -fsSL https://example.com/install.sh | sh\n",
			"Dockerfile:2 (stage fetch): RUN curl -fsSL https://example.com/install.sh: curl downloads without a checksum"},
		{"wget in a heredoc", "FROM debian\nRUN <<EOT\nset -eu\ncd /tmp && wget -q https://example.com/a\nEOT\n",
			"RUN wget -q https://example.com/a: wget downloads without a checksum"},
		{"pip install", "FROM python\nRUN pip install requests==2.32.0\n",
			"RUN pip install requests==2.32.0: pip install without --require-hashes"},
		{"python -m pip", "FROM python\nRUN python3 -m pip install -r requirements.txt\n",
			"RUN python3 -m pip install -r requirements.txt: pip install without --require-hashes"},
		{"uv pip install", "FROM python\nRUN FOO=1 uv pip install --system aiohttp\n",
			"RUN uv pip install --system aiohttp: pip install without --require-hashes"},
		{"uv sync without lock", "FROM python\nRUN uv sync --no-dev \\\n  --extra all\n",
			"RUN uv sync --no-dev --extra all: uv sync without --frozen or --locked"},
		{"git clone", "FROM debian\nRUN git clone https://github.com/o/r /src\n",
			"RUN git clone https://github.com/o/r /src: git clone gets a branch head"},
		{"go install latest", "FROM golang\nRUN go install example.com/cmd@latest\n",
			"RUN go install example.com/cmd@latest: go install of example.com/cmd@latest (pin a version)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, err := unpinnedDownloads([]byte(tc.dockerfile))
			assert.NilError(t, err)
			assert.Assert(t, is.Len(bad, 1), "%v", bad)
			assert.Check(t, is.Contains(bad[0], tc.want))
		})
	}
	pinned := `FROM scratch
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/x.tar.gz /
ADD https://github.com/o/r.git#0123456789abcdef0123456789abcdef01234567 /src
FROM python
# curl is not run here: a comment
RUN pip install --require-hashes -r requirements.lock && uv sync --frozen --no-dev && uv sync --locked
RUN go install example.com/cmd@v1.2.3 && echo wget-free
`
	bad, err := unpinnedDownloads([]byte(pinned))
	assert.NilError(t, err)
	assert.Check(t, is.Len(bad, 0), "pinned downloads flagged: %v", bad)
}

// TestS6DownloadIsCheckedOnArrival: the production target's s6-overlay
// download (ADD --checksum) takes the tarballs from S6_OVERLAY_BASE_URL (a
// mirror on 127.0.0.1 here) only when each one's SHA-256 is the pinned one;
// one changed tarball fails the build, naming the digest it got.
func TestS6DownloadIsCheckedOnArrival(t *testing.T) {
	t.Parallel()
	requireEngine(t)
	var mu sync.Mutex
	files := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b, ok := files[r.URL.Path]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	// mirror serves a fresh release (new contents: BuildKit keys a checked
	// download by its checksum, so nothing comes from its cache) and returns
	// the build's settings pinning the untampered contents.
	mirror := func(tamper string) []string {
		version := "0.0.0." + dockertest.RandHex(3)
		env := []string{"S6_OVERLAY_VERSION=" + version, "TEST_S6_SOURCE=release", "S6_OVERLAY_BASE_URL=" + srv.URL}
		mu.Lock()
		defer mu.Unlock()
		for _, n := range []struct{ file, arg string }{
			{"noarch", "NOARCH"}, {"x86_64", "X86_64"}, {"aarch64", "AARCH64"},
			{"symlinks-noarch", "SYMLINKS_NOARCH"}, {"symlinks-arch", "SYMLINKS_ARCH"},
		} {
			body := []byte("s6-overlay-" + n.file + " " + version)
			env = append(env, fmt.Sprintf("S6_OVERLAY_%s_SHA256=%x", n.arg, sha256.Sum256(body)))
			if n.file == tamper {
				body = []byte("not the pinned " + n.file + " tarball " + version)
			}
			files["/v"+version+"/s6-overlay-"+n.file+".tar.xz"] = body
		}
		return env
	}
	args := []string{"test", "--set", "test.target=s6-tarballs", "--set", "test.output=type=cacheonly", "--set", "test.tags="}

	bake(mirror(""), args...).Assert(t, icmd.Success)

	env := mirror("x86_64")
	var got string
	for p, b := range files {
		if strings.HasSuffix(p, "x86_64.tar.xz") && bytes.HasPrefix(b, []byte("not the pinned")) {
			got = fmt.Sprintf("%x", sha256.Sum256(b))
		}
	}
	bake(env, args...).Assert(t, icmd.Expected{ExitCode: 1, Err: "digest mismatch sha256:" + got})
}

// TestProductionTimestampsComeFromSourceDateEpoch: the production targets
// pass SOURCE_DATE_EPOCH to the build (BuildKit takes it for every stage:
// the config's created time, and with rewrite-timestamp every layer's file
// times are clamped to it) and the pushed ones rewrite the timestamps; the
// CREATED label is the same instant. And no layer of the production image
// keeps a record of when the build ran: every RUN of its stages that runs
// apt-get install removes dpkg's and apt's logs and ldconfig's cache.
func TestProductionTimestampsComeFromSourceDateEpoch(t *testing.T) {
	t.Parallel()
	requireEngine(t)
	r := bake([]string{"SOURCE_DATE_EPOCH=1700000000"}, "--print", "image", "release", "release-by-digest")
	r.Assert(t, icmd.Success)
	var printed struct {
		Target map[string]struct {
			Args   map[string]string   `json:"args"`
			Output []map[string]string `json:"output"`
		} `json:"target"`
	}
	assert.NilError(t, json.Unmarshal([]byte(r.Stdout()), &printed))
	for _, name := range []string{"image", "release", "release-by-digest"} {
		tg, ok := printed.Target[name]
		if !assert.Check(t, ok, "bake printed no target %s", name) {
			continue
		}
		assert.Check(t, is.Equal(tg.Args["SOURCE_DATE_EPOCH"], "1700000000"), name)
		assert.Check(t, is.Equal(tg.Args["CREATED"], "2023-11-14T22:13:20Z"), name)
		if name != "image" {
			assert.Assert(t, is.Len(tg.Output, 1), name)
			assert.Check(t, is.Equal(tg.Output[0]["rewrite-timestamp"], "true"), "%s: the pushed image's layers get SOURCE_DATE_EPOCH times", name)
		}
	}

	// The production image's stages, from the final one down its FROMs
	// (S6_SOURCE=release, HERMES_AGENT=real).
	for _, name := range []string{"base", "agent-real", "s6-release", "image"} {
		for _, cmd := range stage(t, name).Commands {
			run, ok := cmd.(*instructions.RunCommand)
			if !ok {
				continue
			}
			var installs, removed bool
			var rmWords []string
			for _, words := range simpleCommands(runText(run)) {
				installs = installs || (path.Base(words[0]) == "apt-get" && slices.Contains(words, "install"))
				if words[0] == "rm" {
					rmWords = append(rmWords, words...)
				}
			}
			if installs {
				removed = slices.Contains(rmWords, "/var/log/dpkg.log") && slices.Contains(rmWords, "/var/log/apt") &&
					slices.Contains(rmWords, "/var/log/alternatives.log") && slices.Contains(rmWords, "/var/cache/ldconfig/aux-cache")
				assert.Check(t, removed, "stage %s line %d: apt-get install leaves dated logs in the layer (rm -rf /var/log/dpkg.log /var/log/apt /var/log/alternatives.log /var/cache/ldconfig/aux-cache)", name, run.Location()[0].Start.Line)
			}
		}
	}
}
