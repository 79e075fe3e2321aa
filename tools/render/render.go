// Package render writes s6 service directories for Hermes slots from a typed
// description. It is the one renderer behind the `render-run` command (used at
// image build time for gateway-default and dashboard) and behind every profile
// slot registered at boot or at runtime.
//
// Every rendered run script sets HERMES_S6_SUPERVISED_CHILD=1: the
// recursion guard that keeps a supervised `gateway run` from redirecting
// itself into supervision again. A run script is sh and one exec of
// `hermes-s6 slot-exec` (package slotexec), which sets the guard over the
// container environment and drops to the slot's user; a logger is sh and
// `hermes-s6 slot-log`. The front moves supervised children into
// $HERMES_HOME; the run script itself stays in the service directory, where
// s6-notifyoncheck must start.
package render

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/template"

	"github.com/hermes-agent/hermes-s6/tools/account"
	"github.com/hermes-agent/hermes-s6/tools/contenv"
)

// SupervisedChildEnv is the recursion guard exported by every run script.
const SupervisedChildEnv = "HERMES_S6_SUPERVISED_CHILD"

// ExitConfig is the agent's "fatal configuration" exit code (EX_CONFIG).
// The finish script turns it into 125, which tells s6-supervise not to restart.
const ExitConfig = 78

// Arg is one word of the service's command line: a literal, or the value of
// an environment variable (with a default) read when the service starts.
type Arg struct {
	Lit     string
	Env     string
	Default string
}

// Lit returns literal arguments.
func Lit(words ...string) []Arg {
	args := make([]Arg, len(words))
	for i, w := range words {
		args[i] = Arg{Lit: w}
	}
	return args
}

// Kind is what a slot supervises: a profile's gateway or the dashboard.
type Kind string

const (
	KindGateway   Kind = "gateway"
	KindDashboard Kind = "dashboard"
)

// Slot describes one supervised service.
type Slot struct {
	// Name is the service name, e.g. gateway-default, gateway-work, dashboard.
	Name string
	// Kind says what the slot supervises; it is written into the slot's
	// directory (IdentityFile), which is how every part of the project
	// tells Hermes slots from anything else in the scan directory (s6-rc
	// services, their loggers, s6-overlay's own services).
	Kind Kind
	// Command is run through the `hermes` front, after any `-p PROFILE`.
	Command []Arg
	// Profile, when set and not "default", adds `-p PROFILE` to the command.
	Profile string
	// User the service drops to when its run script starts as root.
	User string
	// Env is extra environment exported by the run script, any byte string.
	Env map[string]string
	// LogName is the directory under $HERMES_HOME/logs/gateways/ for s6-log.
	LogName string
	// Down marks the slot down: s6-supervise does not start it by itself.
	Down bool
	// Front is the path of the `hermes` front; Shell the run scripts'
	// interpreter; Tool the hermes-s6 binary (slot-exec, slot-log).
	Front string
	Shell string
	Tool  string
	// Final lists the exit codes after which s6 does not restart the
	// service (the finish script returns 125): always 78 (ExitConfig); for a
	// gateway also 0, a clean stop (hermes-agent's own finish script,
	// service_manager.py _render_finish_script). Anything else restarts.
	Final []int
	// Probe, when set, is a hermes-s6 command (run with Tool, e.g. `probe
	// NAME`) that exits 0 once the service serves: the slot then honours s6 readiness notification (s6-notifyoncheck), and
	// s6-supervise restarts a crashed service that had been ready for a
	// second at once instead of after its one-second pause.
	Probe []string
}

// NotificationFD is the descriptor readiness is reported on.
const NotificationFD = 3

// GatewaySlot is the slot that supervises the gateway of a profile.
func GatewaySlot(profile string) Slot {
	return Slot{
		Name:    "gateway-" + profile,
		Kind:    KindGateway,
		Profile: profile,
		Command: Lit("gateway", "run", "--replace"),
		LogName: profile,
		Down:    true,
		Final:   []int{0, ExitConfig},
		Probe:   []string{"probe", profile},
	}
}

// DashboardSlot is the slot that supervises the web dashboard.
func DashboardSlot() Slot {
	return Slot{
		Name: "dashboard",
		Kind: KindDashboard,
		Command: []Arg{
			{Lit: "dashboard"},
			{Lit: "--host"}, {Env: "HERMES_DASHBOARD_HOST", Default: "127.0.0.1"},
			{Lit: "--port"}, {Env: "HERMES_DASHBOARD_PORT", Default: "9119"},
			{Lit: "--no-open"},
		},
		LogName: "dashboard",
		Down:    true,
		Final:   []int{ExitConfig},
	}
}

// Defaults for the zero values of Slot.
const (
	DefaultUser  = account.Hermes
	DefaultFront = "/usr/local/bin/hermes"
	DefaultShell = "/bin/sh"
	DefaultTool  = "/usr/local/bin/hermes-s6"
)

func (s Slot) withDefaults() Slot {
	if s.User == "" {
		s.User = DefaultUser
	}
	if s.Front == "" {
		s.Front = DefaultFront
	}
	if s.Shell == "" {
		s.Shell = DefaultShell
	}
	if s.Tool == "" {
		s.Tool = DefaultTool
	}
	if s.LogName == "" {
		s.LogName = s.Name
	}
	return s
}

// Validate reports what is wrong with a slot description.
func (s Slot) Validate() error {
	if s.Name == "" || strings.ContainsAny(s.Name, "/") || s.Name[0] == '.' || !printable(s.Name) {
		return fmt.Errorf("render: invalid slot name %q", s.Name)
	}
	if len(s.Command) == 0 {
		return fmt.Errorf("render: slot %s: empty command", s.Name)
	}
	if strings.ContainsAny(s.LogName, "/") || strings.HasPrefix(s.LogName, ".") || !printable(s.LogName) {
		return fmt.Errorf("render: slot %s: invalid log name %q", s.Name, s.LogName)
	}
	for k := range s.Env {
		if !contenv.ValidName(k) {
			return fmt.Errorf("render: slot %s: invalid environment variable name %q", s.Name, k)
		}
	}
	if len(s.Probe) > 0 && strings.ContainsAny(s.User+s.Tool, " \t\n'\"\\{}$;") {
		return fmt.Errorf("render: slot %s: user %q and tool %q must be plain words for the readiness probe", s.Name, s.User, s.Tool)
	}
	for _, w := range s.Probe {
		if w == "" || strings.ContainsAny(w, " \t\n'\"\\{}$;") {
			return fmt.Errorf("render: slot %s: probe word %q must be a plain word", s.Name, w)
		}
	}
	for _, a := range s.Command {
		if a.Env != "" && !contenv.ValidName(a.Env) {
			return fmt.Errorf("render: slot %s: invalid environment variable name %q", s.Name, a.Env)
		}
		if strings.Contains(a.Default, "}") {
			return fmt.Errorf("render: slot %s: default %q of %s must not contain '}'", s.Name, a.Default, a.Env)
		}
	}
	switch {
	case s.Kind == KindDashboard && s.Profile == "":
	case s.Kind == KindGateway && s.Profile != "" && !strings.ContainsAny(s.Profile, " \t\n/"):
	default:
		return fmt.Errorf("render: slot %s: kind %q with profile %q: want a gateway with a profile, or the dashboard", s.Name, s.Kind, s.Profile)
	}
	return nil
}

// printable: no whitespace other than the space, no control characters
// (names appear in comments of the rendered scripts).
func printable(s string) bool {
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Quote returns s as one POSIX sh word that expands to exactly s.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// File is one rendered file of a service directory.
type File struct {
	Path string // relative to the service directory
	Mode fs.FileMode
	Data []byte
}

// Files renders the service directory of s, in s6 scandir layout (the logger
// in log/). Deterministic: the same slot always gives the same bytes.
func Files(s Slot) ([]File, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s = s.withDefaults()
	run, err := execute(runTmpl, s)
	if err != nil {
		return nil, err
	}
	finish, err := execute(finishTmpl, s)
	if err != nil {
		return nil, err
	}
	logRun, err := execute(logRunTmpl, s)
	if err != nil {
		return nil, err
	}
	files := []File{
		{IdentityFile, 0o644, Identity{s.Kind, s.Profile}.bytes()},
		{"type", 0o644, []byte("longrun\n")},
		{"run", 0o755, run},
		{"finish", 0o755, finish},
		{"log/type", 0o644, []byte("longrun\n")},
		{"log/run", 0o755, logRun},
	}
	if len(s.Probe) > 0 {
		files = append(files, File{"notification-fd", 0o644, []byte(fmt.Sprintf("%d\n", NotificationFD))})
	}
	if s.Down {
		files = append(files, File{"down", 0o644, nil})
	}
	return files, nil
}

// Write renders s into dir (created if missing). Existing rendered files are
// replaced; anything else in dir (supervise/, event/) is left alone, and a
// stale down marker is removed when the slot is not down.
func Write(dir string, s Slot) error {
	files, err := Files(s)
	if err != nil {
		return err
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("render: %w", err)
		}
		if err := writeFile(p, f.Data, f.Mode); err != nil {
			return err
		}
	}
	if !s.Down {
		if err := os.Remove(filepath.Join(dir, "down")); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("render: %w", err)
		}
	}
	return nil
}

// writeFile replaces p atomically so a supervisor never runs half a script.
func writeFile(p string, data []byte, mode fs.FileMode) error {
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".render")
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("render: %w", err)
	}
	return nil
}

func execute(t func() *template.Template, s Slot) ([]byte, error) {
	var b bytes.Buffer
	if err := t().Execute(&b, s); err != nil {
		return nil, fmt.Errorf("render: slot %s: %w", s.Name, err)
	}
	return b.Bytes(), nil
}

// word is one word after slot-exec's `--`: slot-exec expands ${NAME} and
// ${NAME:-default} from the container environment, so a literal $ is $$.
func word(a Arg) string {
	if a.Env != "" {
		return Quote("${" + a.Env + ":-" + a.Default + "}")
	}
	return Quote(strings.ReplaceAll(a.Lit, "$", "$$"))
}

var funcs = template.FuncMap{
	"q":    Quote,
	"word": word,
	"lit":  func(w string) string { return word(Arg{Lit: w}) },
	"env": func(m map[string]string) []string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		words := make([]string, len(keys))
		for i, k := range keys {
			words[i] = Quote(k + "=" + m[k])
		}
		return words
	},
	"profileArgs": func(p string) string {
		if p == "" || p == "default" {
			return ""
		}
		return " -p " + word(Arg{Lit: p})
	},
	"finalWhy": func(code int) string {
		switch code {
		case ExitConfig:
			return fmt.Sprintf("fatal configuration error (exit %d)", code)
		case 0:
			return "stopped cleanly (exit 0)"
		}
		return fmt.Sprintf("exit %d", code)
	},
	// notify is the readiness wrapper of a slot with a probe: s6-notifyoncheck
	// runs the probe through slot-exec (the container environment, the slot's
	// user) until it succeeds, and execs the rest of the line.
	"notify": func(s Slot) string {
		if len(s.Probe) == 0 {
			return ""
		}
		return "s6-notifyoncheck -d -s 0 -w 100 -n 0 -c " +
			Quote(s.Tool+" slot-exec -user "+s.User+" -- "+s.Tool+" "+strings.Join(s.Probe, " ")) + " "
	},
}

// The templates are parsed when first used: every process of the
// multi-call binary imports this package, few of them render.
func parse(name, text string) func() *template.Template {
	return sync.OnceValue(func() *template.Template {
		return template.Must(template.New(name).Funcs(funcs).Parse(text))
	})
}

var runTmpl = parse("run", `#!{{.Shell}}
# {{.Name}}: rendered by render-run; do not edit.
# slot-exec: the container environment with the recursion guard set over it,
# as the slot's user when started as root; then the service (the hermes front
# and the readiness probe run inside slot-exec's process: same binary).
exec 2>&1
exec {{notify .}}{{q .Tool}} slot-exec -user {{q .User}} -env {{"HERMES_S6_SUPERVISED_CHILD"}}=1{{range env .Env}} -env {{.}}{{end}} -- {{lit .Front}}{{profileArgs .Profile}}{{range .Command}} {{word .}}{{end}}
`)

var finishTmpl = parse("finish", `#!/bin/sh
# {{.Name}}: rendered by render-run; do not edit.
# s6-supervise passes the exit code ($1, 256 when killed) and the signal ($2).
# Exit 125 tells s6 not to restart the service; anything else restarts it.
case "$1" in
{{- range .Final}}
{{.}}) echo "{{$.Name}}: {{finalWhy .}}; not restarting until started again" >&2; exit 125 ;;
{{- end}}
esac
exit 0
`)

var logRunTmpl = parse("log/run", `#!{{.Shell}}
# {{.Name}} logger: rendered by render-run; do not edit.
# One copy to docker logs, one timestamped and rotated under
# $HERMES_HOME/logs/gateways/LOGNAME, made by the slot's user.
exec {{q .Tool}} slot-log -user {{q .User}} {{q .LogName}}
`)

// IdentityFile names what a slot supervises, inside its service directory:
// "gateway PROFILE" or "dashboard". The directory and the file are root's,
// so what it says can be trusted; a directory without it is not a Hermes
// slot, whatever its name.
const IdentityFile = "hermes-slot"

// Identity is what a slot directory says it supervises.
type Identity struct {
	Kind    Kind
	Profile string // the gateway's profile; "" for the dashboard
}

func (id Identity) bytes() []byte {
	if id.Kind == KindGateway {
		return []byte(string(id.Kind) + " " + id.Profile + "\n")
	}
	return []byte(string(id.Kind) + "\n")
}

// ParseIdentity reads the contents of an IdentityFile.
func ParseIdentity(b []byte) (Identity, error) {
	f := strings.Fields(string(b))
	switch {
	case len(f) == 2 && f[0] == string(KindGateway):
		return Identity{KindGateway, f[1]}, nil
	case len(f) == 1 && f[0] == string(KindDashboard):
		return Identity{Kind: KindDashboard}, nil
	}
	return Identity{}, fmt.Errorf("render: %s: unexpected contents %q", IdentityFile, strings.TrimSpace(string(b)))
}

// ReadIdentity reads the identity of the service directory dir. It does not
// follow a symlinked directory: the scan directory's symlinks are s6-rc's
// live directories, never Hermes slots.
func ReadIdentity(dir string) (Identity, error) {
	st, err := os.Lstat(dir)
	if err != nil {
		return Identity{}, err
	}
	if !st.IsDir() {
		return Identity{}, fmt.Errorf("render: %s is not a directory", dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, IdentityFile))
	if err != nil {
		return Identity{}, err
	}
	return ParseIdentity(b)
}
