package stage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The longruns s6-rc-compile adds to every database (s6-rc v0.6.1.0,
// src/include/s6-rc/s6rc-constants.h; s6-rc-compile.c, main:
// add_internal_longrun), and the one service s6-linux-init-maker puts in the
// scan directory of a container (s6-linux-init v1.2.0.1,
// src/include-local/initctl.h SHUTDOWND_SERVICEDIR; s6-linux-init-maker.c,
// make_image).
const (
	OneshotRunner = "s6rc-oneshot-runner"
	FDHolder      = "s6rc-fdholder"
	Shutdownd     = "s6-linux-init-shutdownd"
)

// overlayNames are the services s6-overlay 3.2.3.0 compiles from its own
// source directory (layout/rootfs-overlay/package/admin/s6-overlay-@VERSION@/
// etc/s6-rc/sources: base, fix-attrs, legacy-cont-init, legacy-services,
// top) and the two user bundles its tarball puts in /etc/s6-overlay/s6-rc.d
// (layout/rootfs-overlay/etc/s6-overlay/s6-rc.d: user, user2). Services may
// name them; none of them is a longrun. The oneshots among them are this
// layer's stage 2 (cont-init.d), run before any longrun is started.
var overlayNames = map[string]string{
	"base":             "bundle",
	"fix-attrs":        "oneshot",
	"legacy-cont-init": "oneshot",
	"legacy-services":  "oneshot",
	"top":              "bundle",
	"user":             "bundle",
	"user2":            "bundle",
}

// rcService is one service of an s6-rc source directory, as s6-rc-compile
// reads it (s6-rc-compile.c: add_source, add_common, add_longrun,
// add_oneshot, add_bundle).
type rcService struct {
	name        string
	typ         string   // longrun, oneshot or bundle
	deps        []string // dependencies.d (or the older dependencies file)
	contents    []string // a bundle's contents.d (or contents)
	producerFor string   // a longrun's producer-for (its logger)
	consumerFor []string // a longrun's consumer-for (what it logs)
	pipeline    string   // pipeline-name, on the last consumer of a pipeline
	timeoutUp   uint64   // timeout-up, in ms; 0 is none
}

// rcSource is an s6-rc source directory: what s6-rc-compile would compile
// together with s6-overlay's own sources.
type rcSource struct {
	dir       string
	services  map[string]*rcService
	pipelines map[string]string // pipeline name → its last consumer
}

func (s *rcSource) longrun(name string) bool {
	sv := s.services[name]
	return sv != nil && sv.typ == "longrun"
}

// pipelined reports whether longrun name is a producer or a consumer:
// s6-rc-compile wraps its run and finish (write_servicedirs: ispipelined).
func (s *rcSource) pipelined(name string) bool {
	sv := s.services[name]
	return sv != nil && (sv.producerFor != "" || len(sv.consumerFor) > 0)
}

// longruns lists the longruns of the source directory, sorted.
func (s *rcSource) longruns() []string {
	var out []string
	for name, sv := range s.services {
		if sv.typ == "longrun" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// consumers lists the longruns that have producers: the pipes that
// s6rc-fdholder holds (s6-rc-compile.c, write_fdholder: data/autofilled).
func (s *rcSource) consumers() []string {
	var out []string
	for _, name := range s.longruns() {
		if len(s.services[name].consumerFor) > 0 {
			out = append(out, name)
		}
	}
	return out
}

// readSource reads an s6-rc source directory and checks what s6-rc-compile
// checks, with its wording: a source it would refuse is refused here too, so
// that the debian source fails where the release source would. A missing
// directory is an empty source.
func readSource(rcd string) (*rcSource, error) {
	s := &rcSource{dir: rcd, services: map[string]*rcService{}, pipelines: map[string]string{}}
	entries, err := os.ReadDir(rcd)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if err := checkIdentifier(rcd, name); err != nil {
			return nil, err
		}
		dir := filepath.Join(rcd, name)
		st, err := os.Stat(dir)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			continue // s6-rc-compile.c, add_sources: not a directory, not a service
		}
		sv, err := readService(rcd, name)
		if err != nil {
			return nil, err
		}
		if t, ok := overlayNames[name]; ok && name != "user" && name != "user2" {
			return nil, fmt.Errorf("duplicate service definition: %s defined in %s is already defined and has type %s", name, rcd, t)
		}
		s.services[name] = sv
	}
	for _, u := range []string{"user", "user2"} {
		// s6-overlay 3.2.3.2 moved the user bundle to user-bundles.d/user.
		extra, err := nameListD(filepath.Join(filepath.Dir(rcd), "user-bundles.d", u, "contents.d"))
		if err != nil {
			return nil, err
		}
		if len(extra) == 0 {
			continue
		}
		if s.services[u] == nil {
			s.services[u] = &rcService{name: u, typ: "bundle"}
		}
		s.services[u].contents = append(s.services[u].contents, extra...)
	}
	return s, s.check()
}

// checkIdentifier refuses the names s6-rc-compile refuses (s6-rc-compile.c:
// check_identifier, add_sources: the reserved prefixes, newlines), the name
// of s6-linux-init's service, and quotes, backslashes and control
// characters, which s6-rc-compile would quote in a wrapper and no service
// here needs.
func checkIdentifier(dir, name string) error {
	if strings.HasPrefix(name, "s6rc-") || strings.HasPrefix(name, "s6-rc-") {
		return fmt.Errorf("in %s: identifier %s starts with reserved prefix", dir, name)
	}
	if name == Shutdownd {
		return fmt.Errorf("in %s: identifier %s is taken by s6-linux-init's own service", dir, name)
	}
	for _, c := range name {
		if c < ' ' || c == 0x7f || c == '"' || c == '\\' {
			return fmt.Errorf("in %s: identifier %q contains a control character, a quote or a backslash", dir, name)
		}
	}
	return nil
}

func readService(rcd, name string) (*rcService, error) {
	dir := filepath.Join(rcd, name)
	sv := &rcService{name: name}
	t, err := os.ReadFile(filepath.Join(dir, "type"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("unable to read %s/type: %w", dir, err)
	}
	sv.typ = strings.TrimSuffix(string(t), "\n")
	switch sv.typ {
	case "longrun", "oneshot":
		if sv.deps, err = nameListDOrFile(dir, "dependencies"); err != nil {
			return nil, err
		}
	case "bundle":
		if sv.contents, err = nameListDOrFile(dir, "contents"); err != nil {
			return nil, err
		}
		return sv, nil
	default:
		return nil, fmt.Errorf("invalid %s/type: must be oneshot, longrun, or bundle", dir)
	}
	if sv.typ == "oneshot" {
		return sv, nil
	}
	st, err := os.Stat(filepath.Join(dir, "run"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("unable to find a run script in %s/run", dir)
	case err != nil:
		return nil, err
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s/run is not a regular file", dir)
	}
	prod, err := nameList(filepath.Join(dir, "producer-for"))
	if err != nil {
		return nil, err
	}
	if prod != nil && len(prod) != 1 {
		return nil, fmt.Errorf("%s/producer-for should only contain one service name", dir)
	}
	if len(prod) == 1 {
		sv.producerFor = prod[0]
	}
	if sv.consumerFor, err = nameList(filepath.Join(dir, "consumer-for")); err != nil {
		return nil, err
	}
	if len(sv.consumerFor) > 0 && sv.producerFor == "" {
		pn, err := nameList(filepath.Join(dir, "pipeline-name"))
		if err != nil {
			return nil, err
		}
		if pn != nil && len(pn) != 1 {
			return nil, fmt.Errorf("%s/pipeline-name should only contain one name", dir)
		}
		if len(pn) == 1 {
			sv.pipeline = pn[0]
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "timeout-up")); err == nil {
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("invalid %s/timeout-up", dir)
		}
		sv.timeoutUp = n
	}
	return sv, nil
}

// check resolves every name and checks the pipelines
// (s6-rc-compile.c: resolve_bundles, flatlist_dependencies,
// s6rc_db_check_pipelines; s6rc_db_check_depcycles).
func (s *rcSource) check() error {
	defined := func(n string) bool {
		_, ok := overlayNames[n]
		return ok || s.services[n] != nil || s.pipelines[n] != ""
	}
	for _, name := range s.longruns() {
		sv := s.services[name]
		if sv.pipeline == "" {
			continue
		}
		if err := checkIdentifier(s.dir, sv.pipeline); err != nil {
			return err
		}
		if defined(sv.pipeline) {
			return fmt.Errorf("duplicate service definition: pipeline %s of %s is already defined", sv.pipeline, name)
		}
		s.pipelines[sv.pipeline] = name
	}
	names := make([]string, 0, len(s.services))
	for name := range s.services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sv := s.services[name]
		for _, d := range sv.deps {
			if !defined(d) {
				return fmt.Errorf("during dependency resolution for service %s: undefined service name %s", name, d)
			}
		}
		for _, c := range sv.contents {
			if !defined(c) {
				return fmt.Errorf("during resolution of bundle %s: undefined service name %s", name, c)
			}
		}
		if p := sv.producerFor; p != "" {
			c := s.services[p]
			switch {
			case c == nil || c.typ != "longrun":
				return fmt.Errorf("longrun service %s declares being a producer for a service named %s of type %s", name, p, s.typeOf(p))
			case !contains(c.consumerFor, name):
				return fmt.Errorf("longrun service %s declares being a producer for a service named %s that does not declare it back", name, p)
			}
		}
		for _, p := range sv.consumerFor {
			if pr := s.services[p]; pr == nil || pr.typ != "longrun" {
				return fmt.Errorf("longrun service %s declares being the consumer for a service named %s of type %s", name, p, s.typeOf(p))
			} else if pr.producerFor != name {
				return fmt.Errorf("longrun service %s declares a producer %s that does not declare it back", name, p)
			}
		}
	}
	_, err := s.order(s.longruns())
	return err
}

func (s *rcSource) typeOf(name string) string {
	if sv := s.services[name]; sv != nil {
		return sv.typ
	}
	if t, ok := overlayNames[name]; ok {
		return t
	}
	return "unknown"
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// atoms expands name into the oneshots and longruns it stands for: a
// bundle's contents, a pipeline's longruns, or itself.
func (s *rcSource) atoms(name string, seen map[string]bool, out *[]string) {
	if seen[name] {
		return
	}
	seen[name] = true
	if last, ok := s.pipelines[name]; ok {
		s.pipelineMembers(last, out)
		return
	}
	sv := s.services[name]
	switch {
	case sv == nil:
		// One of s6-overlay's own services: no longrun in it.
	case sv.typ == "bundle":
		for _, c := range sv.contents {
			s.atoms(c, seen, out)
		}
	default:
		*out = append(*out, name)
	}
}

func (s *rcSource) pipelineMembers(consumer string, out *[]string) {
	*out = append(*out, consumer)
	for _, p := range s.services[consumer].consumerFor {
		s.pipelineMembers(p, out)
	}
}

// needs lists the longruns that must be up before longrun or oneshot name
// is started: its dependencies (through bundles, and through oneshots to
// what they need), its logger, and s6rc-fdholder for a longrun in a
// pipeline (s6-rc-compile.c, add_longrun: specialdeps[1]).
func (s *rcSource) needs(name string) []string {
	set := map[string]bool{}
	var walk func(n string, seen map[string]bool)
	walk = func(n string, seen map[string]bool) {
		sv := s.services[n]
		if sv == nil {
			return
		}
		raw := append([]string(nil), sv.deps...)
		if sv.producerFor != "" {
			raw = append(raw, sv.producerFor)
		}
		var atoms []string
		for _, d := range raw {
			s.atoms(d, map[string]bool{}, &atoms)
		}
		for _, a := range atoms {
			if s.longrun(a) {
				set[a] = true
			} else if !seen[a] {
				seen[a] = true
				walk(a, seen) // a oneshot: what it needs comes first
			}
		}
		if sv.typ == "longrun" && s.pipelined(n) {
			set[FDHolder] = true
		}
	}
	walk(name, map[string]bool{name: true})
	delete(set, name)
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// order sorts longruns so that each comes after what it needs, ties in name
// order; a cycle is an error, as s6-rc-compile makes it.
func (s *rcSource) order(longruns []string) ([]string, error) {
	in := map[string]bool{}
	for _, n := range longruns {
		in[n] = true
	}
	pending := map[string]int{}
	after := map[string][]string{}
	for _, n := range longruns {
		for _, d := range s.needs(n) {
			if in[d] {
				pending[n]++
				after[d] = append(after[d], n)
			}
		}
	}
	var ready, out []string
	for _, n := range longruns {
		if pending[n] == 0 {
			ready = append(ready, n)
		}
	}
	for len(ready) > 0 {
		sort.Strings(ready)
		n := ready[0]
		ready = ready[1:]
		out = append(out, n)
		for _, m := range after[n] {
			if pending[m]--; pending[m] == 0 {
				ready = append(ready, m)
			}
		}
	}
	if len(out) != len(longruns) {
		var cyc []string
		for _, n := range longruns {
			if pending[n] > 0 {
				cyc = append(cyc, n)
			}
		}
		return nil, fmt.Errorf("in %s: dependency cycle involving %s", s.dir, strings.Join(cyc, ", "))
	}
	return out, nil
}

// BootPlan is what `s6-rc -u change top` brings up at boot under s6-overlay
// (rc.init), for the longruns: First before cont-init.d (the oneshots of
// s6-overlay's base bundle need it), Rest after, each after what it needs.
type BootPlan struct {
	First []string
	Rest  []string
	// TimeoutUp is each longrun's timeout-up in ms (0: none).
	TimeoutUp map[string]uint64
	// Needs lists, for each longrun, the longruns that must be up first.
	Needs map[string][]string
}

// Plan computes the boot plan of an s6-rc source directory: the closure of
// the user bundles (user, user2, both also read from ../user-bundles.d) under
// dependencies, loggers and s6rc-fdholder; s6rc-oneshot-runner is always in
// it, as s6-overlay's top bundle always holds oneshots.
func Plan(rcd string) (BootPlan, error) {
	s, err := readSource(rcd)
	if err != nil {
		return BootPlan{}, err
	}
	return s.plan()
}

func (s *rcSource) plan() (BootPlan, error) {
	up := map[string]bool{}
	var atoms []string
	seen := map[string]bool{}
	for _, u := range []string{"user", "user2"} {
		s.atoms(u, seen, &atoms)
	}
	visited := map[string]bool{}
	for len(atoms) > 0 {
		a := atoms[0]
		atoms = atoms[1:]
		if visited[a] {
			continue
		}
		visited[a] = true
		if s.longrun(a) || a == FDHolder {
			up[a] = true
		}
		atoms = append(atoms, s.needs(a)...)
	}
	var rest []string
	for n := range up {
		if n != OneshotRunner {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	order, err := s.order(rest)
	if err != nil {
		return BootPlan{}, err
	}
	p := BootPlan{First: []string{OneshotRunner}, Rest: order, TimeoutUp: map[string]uint64{}, Needs: map[string][]string{}}
	for _, n := range order {
		if sv := s.services[n]; sv != nil {
			p.TimeoutUp[n] = sv.timeoutUp
		}
		p.Needs[n] = s.needs(n)
	}
	return p, nil
}

// nameListDOrFile reads dir/NAME.d, or else the file dir/NAME, as
// s6-rc-compile reads dependencies and contents.
func nameListDOrFile(dir, name string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(dir, name+".d")); err == nil {
		return nameListD(filepath.Join(dir, name+".d"))
	}
	return nameList(filepath.Join(dir, name))
}

// nameListD lists the names in a .d directory, dot names excluded
// (s6-rc-compile.c, add_namelistd). A missing directory is no names.
func nameListD(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// nameList reads a file of names, one a line, leading blanks skipped,
// empty lines and # comments ignored (s6-rc-compile.c, add_namelist). A
// missing file is nil; an existing empty one is an empty, non-nil list.
func nameList(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' || contains(out, line) {
			continue
		}
		out = append(out, line)
	}
	return out, nil
}
