package standin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// config is what the gateway takes from PROFILEDIR/config.yaml.
type config struct {
	port      int           // api_server_port; 0 when not set
	stopDelay time.Duration // stop_delay_ms
	failStart bool          // fail_start
}

// configError reports an invalid config.yaml line.
type configError struct {
	path string
	line int
	msg  string
}

func (e *configError) Error() string {
	return fmt.Sprintf("invalid config %s:%d: %s", e.path, e.line, e.msg)
}

var configKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// loadConfig reads path; a missing file is an empty config.
func loadConfig(path string) (config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return config{}, nil
	}
	if err != nil {
		return config{}, fmt.Errorf("cannot read config: %w", err)
	}
	defer f.Close()
	return parseConfig(f, path)
}

// parseConfig parses the flat "key: value" subset of YAML described in
// [Usage]; path only names the source in errors.
func parseConfig(r io.Reader, path string) (config, error) {
	var cfg config
	firstSeen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		key, value, ok, err := parseConfigLine(sc.Text())
		if err == nil && ok {
			if first, dup := firstSeen[key]; dup {
				err = fmt.Errorf("duplicate key %q (first set on line %d)", key, first)
			} else {
				firstSeen[key] = n
				err = cfg.set(key, value)
			}
		}
		if err != nil {
			return config{}, &configError{path: path, line: n, msg: err.Error()}
		}
	}
	if err := sc.Err(); err != nil {
		return config{}, fmt.Errorf("cannot read config %s: %w", path, err)
	}
	return cfg, nil
}

// parseConfigLine returns ok=false for blank and comment lines.
func parseConfigLine(line string) (key, value string, ok bool, err error) {
	line = strings.TrimSuffix(line, "\r")
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || strings.HasPrefix(trimmed, "#") {
		return "", "", false, nil
	}
	if line[0] == ' ' || line[0] == '\t' {
		return "", "", false, fmt.Errorf("indented line %q: nesting is not supported", trimmed)
	}
	key, rest, found := strings.Cut(line, ":")
	if !found {
		return "", "", false, fmt.Errorf("expected \"key: value\", got %q", line)
	}
	if !configKeyPattern.MatchString(key) {
		return "", "", false, fmt.Errorf("invalid key %q in %q", key, line)
	}
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return "", "", false, fmt.Errorf("expected a space after \"%s:\" in %q", key, line)
	}
	value, err = parseConfigValue(rest)
	if err != nil {
		return "", "", false, fmt.Errorf("key %q: %w", key, err)
	}
	return key, value, true, nil
}

// parseConfigValue strips surrounding whitespace, quotes (no escapes) and a
// trailing comment, and rejects anything that would need a real YAML parser.
func parseConfigValue(raw string) (string, error) {
	v := strings.TrimSpace(raw)
	if v == "" {
		return "", nil
	}
	if q := v[0]; q == '"' || q == '\'' {
		end := strings.IndexByte(v[1:], q)
		if end < 0 {
			return "", fmt.Errorf("unterminated quoted value %s", v)
		}
		if after := strings.TrimSpace(v[end+2:]); after != "" && !strings.HasPrefix(after, "#") {
			return "", fmt.Errorf("unexpected %q after quoted value", after)
		}
		return v[1 : end+1], nil
	}
	v = stripTrailingComment(v)
	if strings.ContainsAny(v[:1], "[]{}|>&*!%@`") {
		return "", fmt.Errorf("unsupported YAML value %q: only plain scalars are allowed", v)
	}
	if strings.Contains(v, ": ") || strings.HasSuffix(v, ":") {
		return "", fmt.Errorf("unsupported YAML value %q: nested mappings are not allowed", v)
	}
	return v, nil
}

func stripTrailingComment(v string) string {
	for i := 1; i < len(v); i++ {
		if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
			return strings.TrimSpace(v[:i])
		}
	}
	return v
}

// set applies one key; unknown keys are ignored.
func (c *config) set(key, value string) error {
	switch key {
	case "api_server_port":
		port, err := parsePort(value)
		if err != nil {
			return fmt.Errorf("api_server_port: %w", err)
		}
		c.port = port
	case "stop_delay_ms":
		ms, err := strconv.ParseInt(value, 10, 64)
		if err != nil || ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
			return fmt.Errorf("stop_delay_ms: %q is not a whole number of milliseconds >= 0", value)
		}
		c.stopDelay = time.Duration(ms) * time.Millisecond
	case "fail_start":
		switch value {
		case "true":
			c.failStart = true
		case "false":
			c.failStart = false
		default:
			return fmt.Errorf("fail_start: %q is neither true nor false", value)
		}
	}
	return nil
}

func parsePort(s string) (int, error) {
	port, err := strconv.Atoi(s)
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("%q is not a port number in 1..65535", s)
	}
	return port, nil
}
