package standin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// profileNamePattern is hermes_cli/profiles.py _PROFILE_ID_RE (and main.py
// _PROFILE_NAME_RE). The image's own front allows one character less
// ({0,62}).
var profileNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// reservedProfileNames is hermes_cli/profiles.py _RESERVED_NAMES ("default"
// is the built-in profile and handled apart).
var reservedProfileNames = []string{"hermes", "test", "tmp", "root", "sudo"}

// profileDirs is hermes_cli/profiles.py _PROFILE_DIRS.
var profileDirs = []string{"memories", "sessions", "skills", "skins", "logs", "plans", "workspace", "cron", "home"}

// invocation is the command line after the profile override, with the
// environment it runs in.
type invocation struct {
	profile string   // "default", a profile name, or "custom"
	home    string   // HERMES_HOME of this invocation
	root    string   // the hermes root; named profiles live in root/profiles
	args    []string // the command line with the profile flag stripped
	env     *environ // the effective environment
}

// scanProfileFlag mirrors hermes_cli/main.py _scan_profile_flag (pinned):
// -p NAME / --profile NAME / --profile=NAME anywhere in argv, stopping at
// "--". A -p/--profile value that is not a valid name is not consumed (and
// ends the scan); a --profile= value is taken as is and validated later.
func scanProfileFlag(argv []string) (name string, consumed, index int) {
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		if arg == "--" {
			break
		}
		if (arg == "-p" || arg == "--profile") && i+1 < len(argv) {
			if profileNamePattern.MatchString(argv[i+1]) {
				return argv[i+1], 2, i
			}
			break
		}
		if v, ok := strings.CutPrefix(arg, "--profile="); ok {
			return v, 1, i
		}
	}
	return "", 0, -1
}

// underGatewaySupervisor mirrors hermes_cli/main.py _under_gateway_supervisor:
// a supervised gateway never follows the sticky active_profile.
func underGatewaySupervisor(argv []string, env *environ) bool {
	if env.get("HERMES_SUPERVISED_CHILD") != "" || env.get("HERMES_S6_SUPERVISED_CHILD") != "" {
		return true
	}
	first := ""
	for _, a := range argv {
		if !strings.HasPrefix(a, "-") {
			first = a
			break
		}
	}
	if first == "gateway" && env.get("INVOCATION_ID") != "" {
		return true
	}
	return truthyEnv(env.get("HERMES_GATEWAY_EXTERNAL_SUPERVISOR"))
}

// defaultHermesRoot is hermes_constants' platform default, ~/.hermes, used
// when HERMES_HOME is not set (the image sets HERMES_HOME=/opt/data).
func defaultHermesRoot(env *environ) string {
	home := env.get("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".hermes")
}

// rootOf mirrors get_default_hermes_root / resolve_profile_env: a
// profile-shaped home (parent named "profiles") has the root two levels up.
func rootOf(home string) string {
	if filepath.Base(filepath.Dir(home)) == "profiles" {
		return filepath.Dir(filepath.Dir(home))
	}
	return home
}

// profileNameOf mirrors hermes_cli/profiles.py get_active_profile_name (and
// gateway.py _current_profile_name): the root is "default", root/profiles/X
// is X, anything else "custom".
func profileNameOf(home, root string) string {
	h, r := filepath.Clean(home), filepath.Clean(root)
	if h == r {
		return defaultProfile
	}
	if filepath.Dir(h) == filepath.Join(r, "profiles") && profileNamePattern.MatchString(filepath.Base(h)) {
		return filepath.Base(h)
	}
	return "custom"
}

// resolveProfile mirrors hermes_cli/main.py _apply_profile_override and
// hermes_cli/profiles.py resolve_profile_env. Errors print "Error: ..." on
// stderr and exit 1.
func (s *System) resolveProfile(args []string, env *environ) (invocation, int, bool) {
	name, consume, index := scanProfileFlag(args)
	flag := consume > 0 // --profile= gives an empty name, which is an error
	rest := args
	if flag {
		rest = slices.Concat(args[:index], args[index+consume:])
	}
	envHome := env.get("HERMES_HOME")
	inv := invocation{args: rest, env: env}

	// HERMES_HOME already names a profile directory and no flag: trust it.
	if !flag && envHome != "" && filepath.Base(filepath.Dir(envHome)) == "profiles" {
		inv.home, inv.root = envHome, rootOf(envHome)
		inv.profile = profileNameOf(inv.home, inv.root)
		return inv, 0, true
	}
	root := defaultHermesRoot(env)
	if h := strings.TrimSpace(envHome); h != "" {
		root = rootOf(h)
	}
	// The sticky default, <root>/active_profile, unless a supervisor started
	// this process.
	if !flag && !underGatewaySupervisor(rest, env) {
		if b, err := os.ReadFile(filepath.Join(root, "active_profile")); err == nil {
			if n := strings.TrimSpace(strings.TrimPrefix(string(b), "\ufeff")); n != "" && n != defaultProfile {
				name, flag = n, true
			}
		}
	}
	if !flag {
		inv.home = envHome
		if inv.home == "" {
			inv.home = root
		}
		inv.root = root
		inv.profile = profileNameOf(inv.home, inv.root)
		return inv, 0, true
	}
	canon, err := canonProfile(name)
	if err != nil {
		s.errf("Error: %v\n", err)
		return inv, exitFailure, false
	}
	inv.root, inv.profile, inv.home = root, canon, root
	if canon != defaultProfile {
		inv.home = filepath.Join(root, "profiles", canon)
		if !isDir(inv.home) {
			s.errf("Error: %v\n", missingProfileError(canon))
			return inv, exitFailure, false
		}
	}
	env.set("HERMES_HOME", inv.home)
	return inv, 0, true
}

func missingProfileError(canon string) error {
	return fmt.Errorf("Profile '%s' does not exist. Create it with: hermes profile create %s", canon, canon)
}

// normalizeProfileName mirrors hermes_cli/profiles.py normalize_profile_name.
func normalizeProfileName(name string) (string, error) {
	stripped := strings.TrimSpace(name)
	if stripped == "" {
		return "", errors.New("profile name cannot be empty")
	}
	if strings.EqualFold(stripped, defaultProfile) {
		return defaultProfile, nil
	}
	return strings.ToLower(stripped), nil
}

// canonProfile mirrors hermes_cli/profiles.py _canon_valid (normalize, then
// validate_profile_name).
func canonProfile(name string) (string, error) {
	canon, err := normalizeProfileName(name)
	if err != nil || canon == defaultProfile {
		return canon, err
	}
	if !profileNamePattern.MatchString(canon) {
		return "", fmt.Errorf("Invalid profile name %s. Must match [a-z0-9][a-z0-9_-]{0,63}", pyRepr(canon))
	}
	if slices.Contains(reservedProfileNames, canon) {
		return "", fmt.Errorf("Profile name %s is reserved — it collides with either the Hermes installation itself or a common system binary.  Pick a different name.", pyRepr(canon))
	}
	return canon, nil
}

// pyRepr is Python's repr() of a plain string, as the agent's messages use.
func pyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// profileCommand runs `profile create|delete|list`. Errors print "Error: ..."
// on stdout and exit 1, as hermes_cli/subcommands/profile.py _die does.
func (s *System) profileCommand(inv invocation, args []string) int {
	if len(args) == 0 {
		return s.usageError("profile: an action is required (create, delete, list)")
	}
	action, rest := args[0], args[1:]
	switch action {
	case "list":
		if len(rest) != 0 {
			return s.usageError("profile list: unrecognized arguments: %s", strings.Join(rest, " "))
		}
		return s.profileList(inv)
	case "create":
		var name string
		noSkills := false
		for _, a := range rest {
			switch {
			case a == "--no-alias": // the stand-in never writes a wrapper script
			case a == "--no-skills":
				noSkills = true
			case strings.HasPrefix(a, "-"):
				return s.usageError("profile create: unrecognized arguments: %s (the stand-in supports --no-alias and --no-skills only)", a)
			case name != "":
				return s.usageError("profile create: unrecognized arguments: %s", a)
			default:
				name = a
			}
		}
		if name == "" {
			return s.usageError("profile create: the following arguments are required: profile_name")
		}
		return s.profileCreate(inv, name, noSkills)
	case "delete":
		var name string
		yes := false
		for _, a := range rest {
			switch {
			case a == "-y" || a == "--yes":
				yes = true
			case strings.HasPrefix(a, "-"):
				return s.usageError("profile delete: unrecognized arguments: %s", a)
			case name != "":
				return s.usageError("profile delete: unrecognized arguments: %s", a)
			default:
				name = a
			}
		}
		if name == "" {
			return s.usageError("profile delete: the following arguments are required: profile_name")
		}
		return s.profileDelete(inv, name, yes)
	default:
		return s.usageError("profile: invalid choice: %q (the stand-in has create, delete, list)", action)
	}
}

func (s *System) die(err error) int {
	s.outf("Error: %v\n", err)
	return exitFailure
}

// Text the stand-in seeds into a new profile. The real agent writes its own
// texts (profiles.py _PLACEHOLDER_ENV, default_soul.py DEFAULT_SOUL_MD); the
// stand-in writes the same files with its own words.
const (
	placeholderEnv = "# Secrets of this Hermes profile (KEY=VALUE lines); they override the\n" +
		"# process environment. Written by " + Program + ", the test stand-in.\n"
	standinSoul = "You are the Hermes agent stand-in (" + Program + "), a test double that does no agent work.\n"
)

// profileCreate mirrors hermes_cli/profiles.py create_profile (pinned) and
// the CLI's _profile_create line "Profile 'NAME' created at DIR". Not
// mirrored: cloning, skill seeding, the ~/.local/bin wrapper, the
// multiplexer notification and the "Next steps" text.
func (s *System) profileCreate(inv invocation, name string, noSkills bool) int {
	canon, err := canonProfile(name)
	if err != nil {
		return s.die(err)
	}
	if canon == defaultProfile {
		return s.die(errors.New("Cannot create a profile named 'default' — it is the built-in profile (~/.hermes)."))
	}
	dir := filepath.Join(inv.root, "profiles", canon)
	if _, err := os.Lstat(dir); err == nil {
		return s.die(fmt.Errorf("Profile '%s' already exists at %s", canon, dir))
	}
	// _clone_staging_dir: profiles/.<name>.staging-<pid>, a leftover removed,
	// published with one rename.
	staging := filepath.Join(inv.root, "profiles", fmt.Sprintf(".%s.staging-%d", canon, os.Getpid()))
	if err := os.MkdirAll(filepath.Dir(staging), 0o777); err != nil {
		return s.die(err)
	}
	if err := os.RemoveAll(staging); err != nil {
		return s.die(err)
	}
	if err := s.buildProfile(inv, staging, noSkills); err != nil {
		os.RemoveAll(staging)
		return s.die(err)
	}
	if err := os.Rename(staging, dir); err != nil {
		os.RemoveAll(staging)
		return s.die(err)
	}
	s.maybeRegisterGatewayService(inv, canon)
	s.outf("\nProfile '%s' created at %s\n", name, dir)
	return exitOK
}

// buildProfile mirrors _bootstrap_profile_dir and _finish_profile_layout.
func (s *System) buildProfile(inv invocation, dir string, noSkills bool) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	for _, d := range profileDirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			return err
		}
	}
	// _seed_model_config: only the active profile's `model:` block is copied;
	// without one there is no config.yaml. Best-effort, as there.
	if b, ok := modelBlock(filepath.Join(inv.home, "config.yaml")); ok {
		_ = os.WriteFile(filepath.Join(dir, "config.yaml"), b, 0o666)
	}
	// _seed_file_if_missing(.env, _PLACEHOLDER_ENV, 0o600)
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(placeholderEnv), 0o666); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, ".env"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte(standinSoul), 0o666); err != nil {
		return err
	}
	if noSkills {
		return os.WriteFile(filepath.Join(dir, ".no-bundled-skills"), []byte("Written by "+Program+" for profile create --no-skills.\n"), 0o666)
	}
	return nil
}

func isEmptyYAML(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case bool:
		return !x
	}
	return false
}

// profileDelete mirrors hermes_cli/profiles.py delete_profile (pinned). Not
// mirrored: systemd/launchd cleanup, stopping other backends, the
// profiles/.deleted tombstone, the wrapper script.
func (s *System) profileDelete(inv invocation, name string, yes bool) int {
	canon, err := normalizeProfileName(name)
	if err != nil {
		return s.die(err)
	}
	if canon == defaultProfile {
		return s.die(errors.New("Cannot delete the default profile (~/.hermes).\nTo remove everything, use: hermes uninstall"))
	}
	if canon, err = canonProfile(canon); err != nil {
		return s.die(err)
	}
	dir := filepath.Join(inv.root, "profiles", canon)
	if !isDir(dir) {
		return s.die(fmt.Errorf("Profile '%s' does not exist.", canon))
	}
	gwPID := runningPID(dir)
	s.printDeleteSummary(canon, dir, gwPID != 0)
	if !yes {
		s.outf("\n")
		confirm, ok := s.input(fmt.Sprintf("Type '%s' to confirm: ", canon))
		if !ok {
			s.outf("\n")
		}
		if !ok || strings.TrimSpace(confirm) != canon {
			s.outf("Cancelled.\n")
			return exitOK
		}
	}
	// 1. Drop the s6 slot (_maybe_unregister_gateway_service).
	s.maybeUnregisterGatewayService(canon)
	// 2. Stop the gateway (_stop_gateway_process).
	if gwPID != 0 {
		s.stopGatewayProcess(gwPID)
	}
	// 4. Remove the profile directory.
	var removeErr error
	if err := os.RemoveAll(dir); err != nil {
		s.outf("⚠ Could not remove %s: %v\n", dir, err)
		removeErr = err
	} else {
		s.outf("✓ Removed %s\n", dir)
	}
	// 5. Reset active_profile if it named this profile.
	active := filepath.Join(inv.root, "active_profile")
	if b, err := os.ReadFile(active); err == nil && strings.TrimSpace(string(b)) == canon {
		if os.Remove(active) == nil {
			s.outf("✓ Active profile reset to default\n")
		}
	}
	if removeErr != nil {
		return s.die(fmt.Errorf("Could not remove profile directory %s: %v", dir, removeErr))
	}
	s.outf("\nProfile '%s' deleted.\n", canon)
	return exitOK
}

// input mirrors Python's input(prompt): false on EOF with nothing read.
func (s *System) input(prompt string) (string, bool) {
	s.outf("%s", prompt)
	if s.Stdin == nil {
		return "", false
	}
	line, err := bufio.NewReader(s.Stdin).ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		return "", false
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), true
}

// printDeleteSummary mirrors hermes_cli/profiles.py _print_delete_summary.
func (s *System) printDeleteSummary(canon, dir string, gwRunning bool) {
	s.outf("\nProfile: %s\n", canon)
	s.outf("Path:    %s\n", dir)
	if model, provider := configModel(dir); model != "" {
		if provider != "" {
			model += " (" + provider + ")"
		}
		s.outf("Model:   %s\n", model)
	}
	s.outf("\nThis will permanently delete:\n")
	s.outf("  • All config, API keys, memories, sessions, skills, cron jobs\n")
	if gwRunning {
		s.outf("  ⚠ Gateway is running — it will be stopped.\n")
	}
}

// configModel mirrors hermes_cli/profiles.py _read_config_model.
func configModel(dir string) (model, provider string) {
	doc, ok, err := loadYAML(filepath.Join(dir, "config.yaml"))
	if err != nil || !ok {
		return "", ""
	}
	switch m := doc["model"].(type) {
	case string:
		return m, ""
	case map[string]any:
		model = fmt.Sprint(firstNonEmpty(m["default"], m["model"]))
		if p, ok := m["provider"].(string); ok {
			provider = p
		}
		if model == "<nil>" {
			model = ""
		}
	}
	return model, provider
}

func firstNonEmpty(vs ...any) any {
	for _, v := range vs {
		if !isEmptyYAML(v) {
			return v
		}
	}
	return nil
}

// stopGatewayProcess mirrors hermes_cli/profiles.py _stop_gateway_process:
// SIGTERM, up to 10 s, then SIGKILL.
func (s *System) stopGatewayProcess(pid int) {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.EPERM) {
			s.outf("✓ Gateway already stopped\n")
			return
		}
		s.outf("⚠ Could not stop gateway: %v\n", err)
		return
	}
	if waitGone(pid, 10*time.Second) {
		s.outf("✓ Gateway stopped (PID %d)\n", pid)
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	s.outf("✓ Gateway force-stopped (PID %d)\n", pid)
}

// profileList prints "default", then the profile directories (valid names),
// sorted: a stand-in format, not the agent's table.
func (s *System) profileList(inv invocation) int {
	entries, err := os.ReadDir(filepath.Join(inv.root, "profiles"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.die(err)
	}
	names := []string{defaultProfile}
	for _, e := range entries {
		if e.IsDir() && e.Name() != defaultProfile && profileNamePattern.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names[1:])
	for _, n := range names {
		s.outf("%s\n", n)
	}
	return exitOK
}
