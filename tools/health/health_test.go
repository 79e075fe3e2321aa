package health

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

func serve(t *testing.T, h http.HandlerFunc) int {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return p
}

func TestServingWhenNothingAnswers(t *testing.T) {
	// A port nobody listens on: take one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()
	assert.Check(t, is.ErrorContains(Serving(closed, 1, time.Second), "connection refused"))

	// A server that reads the request and never answers.
	l, err = net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	defer l.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 512)) // read the request, never answer
			<-done                    // hold the connection open until the test ends
		}
	}()
	err = Serving(l.Addr().(*net.TCPAddr).Port, 1, 200*time.Millisecond)
	assert.Check(t, is.ErrorContains(err, "no answer"))
}

func TestStatusCode(t *testing.T) {
	for line, want := range map[string]int{"HTTP/1.1 200 OK": 200, "HTTP/1.0 503 Service Unavailable": 503, "HTTP/1.1 204": 204} {
		got, err := StatusCode(line)
		assert.Check(t, err, line)
		assert.Check(t, is.Equal(got, want), line)
	}
	for _, bad := range []string{"", "SSH-2.0-OpenSSH", "HTTP/2 200", "HTTP/1.1 20 OK", "HTTP/1.1 abc OK"} {
		_, err := StatusCode(bad)
		assert.Check(t, err != nil, "%q must be refused", bad)
	}
}

func TestServingChecksThePid(t *testing.T) {
	var path string
	port := serve(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		w.Write([]byte(`{"status":"ok","platform":"hermes-agent","gateway_state":"running","pid":4242}`))
	})
	assert.Check(t, Serving(port, 4242, time.Second))
	assert.Check(t, is.Equal(path, "/health/detailed"))
	assert.Check(t, is.ErrorContains(Serving(port, 7, time.Second), "is served by pid 4242, not by this gateway (pid 7)"))

	garbage := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) })
	assert.Check(t, is.ErrorContains(Serving(garbage, 1, time.Second), "/health/detailed on port "))
	missing := serve(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	assert.Check(t, is.ErrorContains(Serving(missing, 1, time.Second), "answered 404"))
}
