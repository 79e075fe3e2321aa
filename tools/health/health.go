// Package health asks a gateway for GET /health on 127.0.0.1.
//
// It speaks the one request it needs over net and net/textproto instead of
// importing net/http: net/http (and the crypto/tls it brings) adds about
// 7 ms of start-up to every process of the multi-call binary on a 2-core
// machine, and the readiness probe and the front run once per slot start.
package health

import (
	"bufio"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Check returns nil when 127.0.0.1:port answers GET /health with 200.
func Check(port int, timeout time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return fmt.Errorf("/health on port %d: %v", port, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "GET /health HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", addr); err != nil {
		return fmt.Errorf("/health on port %d: %v", port, err)
	}
	line, err := textproto.NewReader(bufio.NewReader(c)).ReadLine()
	if err != nil {
		return fmt.Errorf("/health on port %d: no answer: %v", port, err)
	}
	code, err := StatusCode(line)
	if err != nil {
		return fmt.Errorf("/health on port %d: %v", port, err)
	}
	if code != 200 {
		return fmt.Errorf("/health on port %d answered %s", port, strings.TrimSpace(line[strings.IndexByte(line, ' ')+1:]))
	}
	return nil
}

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
