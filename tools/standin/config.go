package standin

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// loadYAML reads a YAML document whose top level must be a mapping. ok is
// false when the file does not exist. An empty file is an empty mapping
// (yaml.safe_load(...) or {}).
func loadYAML(path string) (doc map[string]any, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, true, err
	}
	if v == nil {
		return map[string]any{}, true, nil
	}
	m, isMap := stringMap(v)
	if !isMap {
		return nil, true, fmt.Errorf("the top level is %T, not a mapping", v)
	}
	return m, true, nil
}

// stringMap returns v as a mapping with string keys (YAML keys that are not
// strings are spelled out).
func stringMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[fmt.Sprint(k)] = x
		}
		return out, true
	}
	return nil, false
}

func lookupMap(doc map[string]any, keys ...string) (map[string]any, bool) {
	cur := doc
	for _, k := range keys {
		next, ok := stringMap(cur[k])
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// modelBlock returns `model: ...` of a config.yaml as YAML, in its order and
// without comments, as yaml.safe_dump({"model": ...}, sort_keys=False) writes
// it (hermes_cli/profiles.py _seed_model_config copies only that block into
// a new profile).
func modelBlock(path string) ([]byte, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, false
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Value != "model" || nodeEmpty(v) {
			continue
		}
		stripComments(k)
		stripComments(v)
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if enc.Encode(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}}) != nil || enc.Close() != nil {
			return nil, false
		}
		return buf.Bytes(), true
	}
	return nil, false
}

func stripComments(n *yaml.Node) {
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	for _, c := range n.Content {
		stripComments(c)
	}
}

func nodeEmpty(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		return len(n.Content) == 0
	case yaml.ScalarNode:
		return n.Tag == "!!null" || n.Value == "" || n.Tag == "!!bool" && strings.EqualFold(n.Value, "false")
	}
	return false
}

// coerceBool mirrors gateway/config.py _coerce_bool for the values YAML and
// the environment produce.
func coerceBool(v any, def bool) bool {
	switch x := v.(type) {
	case nil:
		return def
	case bool:
		return x
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "1", "yes", "on":
			return true
		case "false", "0", "no", "off":
			return false
		}
		return def
	case int:
		return x != 0
	case float64:
		return x != 0
	}
	return def
}

// pyInt mirrors Python's int() on a YAML scalar or an environment string.
func pyInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case uint64:
		if x > math.MaxInt {
			return 0, false
		}
		return int(x), true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
		return int(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case string:
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(x), "_", ""))
		return n, err == nil
	}
	return 0, false
}

// API server defaults: gateway/platforms/api_server.py DEFAULT_HOST,
// DEFAULT_PORT.
const (
	apiDefaultHost = "127.0.0.1"
	apiDefaultPort = 8642
	// gateway/config.py _has_usable_api_server_key: has_usable_secret(key,
	// min_length=16).
	apiKeyMinLength = 16
)

// placeholderSecrets is hermes_cli/auth.py _PLACEHOLDER_SECRET_VALUES; all of
// them are shorter than 16 characters, so the length test already refuses
// them, but has_usable_secret checks both.
var placeholderSecrets = []string{"*", "**", "***", "changeme", "your_api_key", "your_api_key_here", "your-api-key", "placeholder", "example", "dummy", "null", "none"}

// usableAPIKey mirrors gateway/config.py _has_usable_api_server_key.
func usableAPIKey(key string) bool {
	k := strings.TrimSpace(key)
	if len([]rune(k)) < apiKeyMinLength {
		return false
	}
	for _, p := range placeholderSecrets {
		if strings.ToLower(k) == p {
			return false
		}
	}
	return true
}

// apiServer is what the gateway's API server platform will do.
type apiServer struct {
	enabled bool
	host    string
	port    int
	key     string
	model   string
}

// refused reports an enabled API server whose key the startup guard rejects.
func (a apiServer) refused() bool { return a.enabled && !usableAPIKey(a.key) }

// resolveAPIServer mirrors, for the api_server platform only,
// gateway/config.py load_gateway_config + _apply_env_overrides
// (stored at 0060041e, not at the pin) and APIServerAdapter.__init__
// (gateway/platforms/api_server.py@002b7c34):
//
//   - config.yaml platforms.api_server: `enabled`, `extra.{host,port,key}`;
//     host/port/key written directly in the block are bridged into extra.
//     (Not mirrored: the gateway.platforms.api_server, gateway.api_server and
//     top-level api_server: spellings.)
//   - A usable API_SERVER_KEY enables the platform unless config.yaml says
//     `enabled: false`, and copies API_SERVER_KEY, API_SERVER_PORT (when it
//     is an integer) and API_SERVER_HOST over extra.
//   - API_SERVER_ENABLED=true/1/yes also enables it, key or not: older
//     gateway/config.py versions and the pinned environment-variables.md do
//     so; 0060041e ignores the variable. Either way nothing listens without a
//     usable key (the adapter refuses to start).
//   - The adapter takes extra.host, else API_SERVER_HOST, else 127.0.0.1;
//     extra.port, else API_SERVER_PORT, else 8642, a value that is not an
//     integer falling back to 8642 (_coerce_port); extra.key, else
//     API_SERVER_KEY.
func resolveAPIServer(doc map[string]any, env *environ, profile string) apiServer {
	block, inConfig := lookupMap(doc, "platforms", "api_server")
	extra := map[string]any{}
	explicit, enabled := false, false
	if inConfig {
		if e, ok := stringMap(block["extra"]); ok {
			for k, v := range e {
				extra[k] = v
			}
		}
		for _, k := range []string{"port", "key", "host", "model_name"} {
			if v, has := block[k]; has {
				if _, set := extra[k]; !set {
					extra[k] = v
				}
			}
		}
		if v, has := block["enabled"]; has {
			explicit = true
			enabled = coerceBool(v, false)
		}
	}
	envKey := env.get("API_SERVER_KEY")
	switch {
	case usableAPIKey(envKey):
		if !explicit || enabled {
			enabled = true
		}
		extra["key"] = envKey
		if p := env.get("API_SERVER_PORT"); p != "" {
			if n, ok := pyInt(p); ok {
				extra["port"] = n
			}
		}
		if h := env.get("API_SERVER_HOST"); h != "" {
			extra["host"] = h
		}
		if m := env.get("API_SERVER_MODEL_NAME"); m != "" {
			extra["model_name"] = m
		}
	case truthyNoSupervise(env.get("API_SERVER_ENABLED")): // "true", "1", "yes", any case
		if !explicit || enabled {
			enabled = true
		}
	}

	a := apiServer{enabled: enabled, host: apiDefaultHost, port: apiDefaultPort}
	if v, ok := extra["host"]; ok {
		a.host = fmt.Sprint(v)
	} else if h, ok := env.lookup("API_SERVER_HOST"); ok {
		a.host = h
	}
	var rawPort any = apiDefaultPort
	if v, ok := extra["port"]; ok {
		rawPort = v
	} else if p, ok := env.lookup("API_SERVER_PORT"); ok {
		rawPort = p
	}
	if n, ok := pyInt(rawPort); ok {
		a.port = n
	}
	if v, ok := extra["key"]; ok && v != nil {
		a.key = fmt.Sprint(v)
	} else {
		a.key = env.get("API_SERVER_KEY")
	}
	// APIServerAdapter._resolve_model_name: explicit, else the profile name,
	// else "hermes-agent".
	switch {
	case extra["model_name"] != nil && strings.TrimSpace(fmt.Sprint(extra["model_name"])) != "":
		a.model = strings.TrimSpace(fmt.Sprint(extra["model_name"]))
	case profile != "" && profile != defaultProfile && profile != "custom":
		a.model = profile
	default:
		a.model = "hermes-agent"
	}
	return a
}

// hooks are the stand-in-only test hooks of config.yaml's `standin:` mapping.
// They are not agent behaviour.
type hooks struct {
	stopDelay time.Duration // standin.stop_delay_ms
	failStart bool          // standin.fail_start
}

// standinHooks reads the `standin:` mapping. Anything there that is not a
// known hook with a valid value is an error: a mistyped hook must not pass
// silently.
func standinHooks(doc map[string]any) (hooks, error) {
	var h hooks
	raw, has := doc["standin"]
	if !has || raw == nil {
		return h, nil
	}
	m, ok := stringMap(raw)
	if !ok {
		return h, fmt.Errorf("standin: must be a mapping, got %v", raw)
	}
	for k, v := range m {
		switch k {
		case "stop_delay_ms":
			ms, isInt := v.(int)
			if !isInt || ms < 0 || int64(ms) > math.MaxInt64/int64(time.Millisecond) {
				return h, fmt.Errorf("standin.stop_delay_ms: %v is not a whole number of milliseconds >= 0", v)
			}
			h.stopDelay = time.Duration(ms) * time.Millisecond
		case "fail_start":
			b, isBool := v.(bool)
			if !isBool {
				return h, fmt.Errorf("standin.fail_start: %v is neither true nor false", v)
			}
			h.failStart = b
		default:
			return h, fmt.Errorf("standin.%s: unknown stand-in test hook (known: stop_delay_ms, fail_start)", k)
		}
	}
	return h, nil
}
