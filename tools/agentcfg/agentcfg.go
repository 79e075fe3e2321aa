// Package agentcfg reads a profile's settings the way the Hermes agent reads
// them (hermes-agent 00067189), for what the image needs of them: the API
// server's port (readiness probe, HEALTHCHECK) and its key (generated once,
// so that /health is served at all).
//
// Precedence, as the agent's hermes_cli/env_loader.py and gateway/config.py
// apply it: the profile's own $HERMES_HOME/.env (loaded with override=True)
// over the process environment, over config.yaml's
// platforms.api_server.extra, over the defaults.
package agentcfg

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// DefaultPort is the API server's port when nothing sets one
// (gateway/platforms/api_server.py DEFAULT_PORT).
const DefaultPort = 8642

// MinKeyLength is the shortest API_SERVER_KEY the agent accepts
// (gateway/config.py _has_usable_api_server_key, min_length=16).
const MinKeyLength = 16

// maxFile bounds what is read of .env and config.yaml.
const maxFile = 1 << 20

// DotEnv reads a .env file as python-dotenv does for the lines the agent
// writes: KEY=VALUE, an optional `export `, single or double quotes, blank
// lines and # comments. A missing file is empty.
func DotEnv(path string) (map[string]string, error) {
	b, err := readSmall(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 64<<10), maxFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0]:
			v = v[1 : len(v)-1]
		default:
			if i := strings.Index(v, " #"); i >= 0 {
				v = strings.TrimSpace(v[:i])
			}
		}
		env[k] = v
	}
	return env, sc.Err()
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFile)
	}
	return b, nil
}

// Env is what the agent of one profile sees: the profile's .env over the
// process environment.
type Env struct {
	DotEnv map[string]string
	Getenv func(string) string
}

// Load reads the profile's .env (dir is the profile's home).
func Load(dir string, getenv func(string) string) (Env, error) {
	d, err := DotEnv(filepath.Join(dir, ".env"))
	if err != nil {
		return Env{DotEnv: map[string]string{}, Getenv: getenv}, err
	}
	return Env{DotEnv: d, Getenv: getenv}, nil
}

// Get is the value of k: the .env's if the file sets it (even empty), else
// the environment's.
func (e Env) Get(k string) string {
	if v, ok := e.DotEnv[k]; ok {
		return v
	}
	return e.Getenv(k)
}

// Port is the API server's port for the profile whose home is dir:
// API_SERVER_PORT (.env, then environment), else config.yaml's
// platforms.api_server.extra.port, else 8642. A value that is not a port is
// an error that says where it came from. A .env or config.yaml that cannot
// be read (too large, say) is left out, as one that does not parse is
// (Check says so before the gateway starts).
func Port(dir string, getenv func(string) string) (int, error) {
	env, _ := Load(dir, getenv)
	if v := env.Get("API_SERVER_PORT"); v != "" {
		p, err := parsePort(v)
		if err != nil {
			return 0, fmt.Errorf("API_SERVER_PORT=%q: %v", v, err)
		}
		return p, nil
	}
	b, err := readSmall(filepath.Join(dir, "config.yaml"))
	if err != nil {
		return DefaultPort, nil
	}
	var cfg apiServerConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		// The agent then runs on its defaults; so does the probe.
		return DefaultPort, nil
	}
	switch v := cfg.Platforms.APIServer.Extra.Port.(type) {
	case nil:
		return DefaultPort, nil
	case int:
		return parsePort(strconv.Itoa(v))
	case string:
		return parsePort(v)
	default:
		return 0, fmt.Errorf("config.yaml platforms.api_server.extra.port: %v is not a port", v)
	}
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return p, nil
}

// EnsureAPIKey makes sure the profile's gateway serves its API server (and
// so /health): when neither the environment nor the profile's .env sets a
// usable API_SERVER_KEY, it appends a new random one (64 hex digits) to the
// .env, creating it 0600. The key is never printed. It is the image's
// counterpart of upstream's first-boot key (docker/stage2-hook.sh), per
// profile, and runs as the user the gateway runs as: it refuses to write as
// root, and never through a symlink.
func EnsureAPIKey(dir string, getenv func(string) string, euid int) (generated bool, err error) {
	env, err := Load(dir, getenv)
	if err != nil {
		return false, err
	}
	if len(env.Get("API_SERVER_KEY")) >= MinKeyLength {
		return false, nil
	}
	if euid == 0 {
		return false, errors.New("not writing an API key as root")
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return false, err
	}
	p := filepath.Join(dir, ".env")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	prefix := ""
	if st.Size() > 0 {
		last := make([]byte, 1)
		if r, err := os.Open(p); err == nil {
			if _, err := r.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
				prefix = "\n"
			}
			r.Close()
		}
	}
	line := prefix + "# Generated by hermes-s6: turns on the gateway's API server (/health). Replace it freely.\nAPI_SERVER_KEY=" + hex.EncodeToString(buf) + "\n"
	if _, err := f.WriteString(line); err != nil {
		return false, err
	}
	return true, f.Sync()
}

// GatewayPid is the pid the profile's gateway recorded in its pid file
// (gateway/status.py write_pid_file: JSON with "pid"; a bare number is read
// too).
func GatewayPid(dir string) (int, error) {
	b, err := readSmall(filepath.Join(dir, "gateway.pid"))
	if err != nil {
		return 0, err
	}
	pid, ok := ParsePid(b)
	if !ok {
		return 0, fmt.Errorf("%s: no pid in %q", filepath.Join(dir, "gateway.pid"), strings.TrimSpace(string(b)))
	}
	return pid, nil
}

// ParsePid reads the contents of a gateway.pid: the agent's JSON record
// ({"pid": N, …}) or a bare number. ok is false when it names no pid.
func ParsePid(b []byte) (pid int, ok bool) {
	s := strings.TrimSpace(string(b))
	if pid, err := strconv.Atoi(s); err == nil && pid > 0 {
		return pid, true
	}
	var doc struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil || doc.Pid <= 0 {
		return 0, false
	}
	return doc.Pid, true
}
