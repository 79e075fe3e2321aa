package agentcfg

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Problem is something wrong with a profile's settings, found before its
// gateway is started. A Fatal one is a value the gateway cannot work with:
// the front then does not start it and exits 78 (fatal configuration, not
// restarted). The others are files the image reads around, with the
// default it uses instead.
type Problem struct {
	Fatal bool
	Msg   string
}

// Check looks at what the image reads of the profile whose home is dir
// before its gateway starts: the .env, config.yaml and the API server's
// port and host (.env over the environment over config.yaml). It never
// fails: every problem is returned as one line.
func Check(dir string, getenv func(string) string) []Problem {
	var out []Problem
	warn := func(format string, a ...any) { out = append(out, Problem{Msg: fmt.Sprintf(format, a...)}) }
	fatal := func(format string, a ...any) { out = append(out, Problem{Fatal: true, Msg: fmt.Sprintf(format, a...)}) }

	envPath := filepath.Join(dir, ".env")
	env, err := Load(dir, getenv)
	if err != nil {
		warn("%v: hermes-s6 ignores it (API server port and key from the environment, config.yaml or the defaults)", trim(err))
	} else if b, err := readSmall(envPath); err == nil && !isText(b) {
		warn("%s is not text (NUL bytes or invalid UTF-8): only its KEY=VALUE lines are read", envPath)
	}

	cfgPath := filepath.Join(dir, "config.yaml")
	var cfgPort any
	if b, err := readSmall(cfgPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		warn("%v: hermes-s6 ignores it (the API server port is %d unless the environment sets one)", trim(err), DefaultPort)
	} else if err == nil {
		var cfg apiServerConfig
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			warn("%s is not valid YAML (%v): the agent falls back to its defaults, and so does hermes-s6", cfgPath, trim(err))
		} else {
			cfgPort = cfg.Platforms.APIServer.Extra.Port
		}
	}

	if v := env.Get("API_SERVER_PORT"); v != "" {
		if _, err := parsePort(v); err != nil {
			fatal("API_SERVER_PORT=%s (%s) is not a port (1-65535)", quote(v), source(env, "API_SERVER_PORT", envPath))
		}
	} else if cfgPort != nil {
		if _, err := portOf(cfgPort); err != nil {
			fatal("%s platforms.api_server.extra.port: %s is not a port (1-65535)", cfgPath, quote(fmt.Sprint(cfgPort)))
		}
	}
	if v := env.Get("API_SERVER_HOST"); v != "" {
		if err := ValidHost(v); err != nil {
			fatal("API_SERVER_HOST=%s (%s): %v", quote(v), source(env, "API_SERVER_HOST", envPath), err)
		}
	}
	return out
}

type apiServerConfig struct {
	Platforms struct {
		APIServer struct {
			Extra struct {
				Port any `yaml:"port"`
			} `yaml:"extra"`
		} `yaml:"api_server"`
	} `yaml:"platforms"`
}

func portOf(v any) (int, error) {
	switch v := v.(type) {
	case int:
		return parsePort(strconv.Itoa(v))
	case string:
		return parsePort(v)
	}
	return 0, fmt.Errorf("%v is not a port", v)
}

func source(env Env, k, envPath string) string {
	if _, ok := env.DotEnv[k]; ok {
		return "from " + envPath
	}
	return "from the environment"
}

// ValidHost accepts what a server can be told to bind: an IP address, or a
// host name (letters, digits, '-' and '.', labels of 1-63, at most 253 in
// all). Anything else (spaces, a URL, a port) cannot work.
func ValidHost(h string) error {
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return nil
	}
	bad := fmt.Errorf("%s is neither an IP address nor a host name", quote(h))
	if len(h) > 253 {
		return bad
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return bad
			}
		}
	}
	return nil
}

// ValidPort accepts a TCP port a server can listen on, 1-65535.
func ValidPort(s string) error {
	_, err := parsePort(s)
	return err
}

func isText(b []byte) bool { return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 }

// quote prints a value from a file or the environment on one short line.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.QuoteToASCII(s)
}

func trim(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
