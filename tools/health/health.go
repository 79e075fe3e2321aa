// Package health asks a gateway on 127.0.0.1 whether it serves
// (GET /health/detailed).
//
// It speaks the one request it needs over net and net/textproto instead of
// importing net/http: net/http (and the crypto/tls it brings) adds about
// 7 ms of start-up to every process of the multi-call binary on a 2-core
// machine, and the readiness probe and the front run once per slot start.
package health

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// StatusCode reads the code of an HTTP/1.x status line ("HTTP/1.1 200 OK").
func StatusCode(line string) (int, error) {
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") {
		return 0, fmt.Errorf("not an HTTP/1 status line: %q", line)
	}
	codeStr, _, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeStr)
	if err != nil || len(codeStr) != 3 {
		return 0, fmt.Errorf("bad status code in %q", line)
	}
	return code, nil
}

// Serving returns nil when the gateway whose process is pid answers on
// 127.0.0.1:port: GET /health/detailed answers 200 with that pid (the
// agent's gateway/platforms/api_server.py serves it without a key). The pid
// check keeps a profile's probe from taking another gateway's answer for its
// own (two profiles on one port: one of them does not listen).
func Serving(port, pid int, timeout time.Duration) error {
	code, body, err := get(port, "/health/detailed", timeout)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("/health/detailed on port %d answered %d", port, code)
	}
	var doc struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("/health/detailed on port %d: %v", port, err)
	}
	if doc.Pid != pid {
		return fmt.Errorf("port %d is served by pid %d, not by this gateway (pid %d): another profile on the same port?", port, doc.Pid, pid)
	}
	return nil
}

// get does one GET on 127.0.0.1:port and returns the status code and body.
func get(port int, path string, timeout time.Duration) (int, []byte, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, nil, fmt.Errorf("%s on port %d: %v", path, port, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr); err != nil {
		return 0, nil, fmt.Errorf("%s on port %d: %v", path, port, err)
	}
	r := textproto.NewReader(bufio.NewReader(c))
	line, err := r.ReadLine()
	if err != nil {
		return 0, nil, fmt.Errorf("%s on port %d: no answer: %v", path, port, err)
	}
	code, err := StatusCode(line)
	if err != nil {
		return 0, nil, fmt.Errorf("%s on port %d: %v", path, port, err)
	}
	if _, err := r.ReadMIMEHeader(); err != nil {
		return 0, nil, fmt.Errorf("%s on port %d: %v", path, port, err)
	}
	body, err := io.ReadAll(io.LimitReader(r.R, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("%s on port %d: %v", path, port, err)
	}
	return code, body, nil
}
