package commands

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestProbe(t *testing.T) {
	t.Setenv("HERMES_HOME", t.TempDir())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	t.Setenv("API_SERVER_PORT", port)
	assert.Check(t, is.Equal(Run("probe", []string{"default"}), 0), "a gateway answering /health is ready")

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
