package commands

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestProbe(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HERMES_HOME", home)
	assert.NilError(t, os.WriteFile(filepath.Join(home, "gateway.pid"), []byte(`{"pid":77}`), 0o644))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health/detailed" {
			http.NotFound(w, r)
		}
		w.Write([]byte(`{"status":"ok","pid":77}`))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	t.Setenv("API_SERVER_PORT", port)
	assert.Check(t, is.Equal(Run("probe", []string{"default"}), 0), "the profile's gateway answering /health/detailed is ready")

	// Nothing listens: the probe gives up after its window.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	free := l.Addr().(*net.TCPAddr).Port
	l.Close()
	t.Setenv("API_SERVER_PORT", strconv.Itoa(free))
	probeWindow = 50 * time.Millisecond
	t.Cleanup(func() { probeWindow = 10 * time.Second })
	assert.Check(t, is.Equal(Run("probe", []string{"default"}), 1))

	assert.Check(t, is.Equal(Run("probe", nil), 2))
}
