package main

import (
	"context"
	"regexp"
	"sort"
	"strings"

	"github.com/anchore/syft/syft/artifact"
	"github.com/anchore/syft/syft/file"
	"github.com/anchore/syft/syft/pkg"
)

// slashpackage catalogues what s6-overlay's tarballs install. They carry no
// package database; each component (s6-overlay itself, its helpers, and the
// skarnet.org packages it bundles: s6, s6-rc, execline, s6-linux-init, …)
// is installed as the directory /package/admin/NAME-VERSION, with
// /package/admin/NAME a symlink to it (D. J. Bernstein's slashpackage layout,
// which skarnet.org and s6-overlay follow). The directory name is the
// version as shipped: that is what is listed. skalibs is linked statically
// into those binaries and has no directory: it is not listed.
//
// Debian's s6 and execline come with dpkg records instead, and syft's dpkg
// cataloger lists them.
type slashpackage struct{}

func (slashpackage) Name() string { return "s6-overlay-slashpackage-cataloger" }

// NAME-VERSION, VERSION being dotted numbers (s6-overlay-helpers-0.1.2.2).
var pkgDir = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*?)-([0-9]+(?:\.[0-9]+)+)$`)

// justContainers are the components that come from s6-overlay's own
// repository; the rest are skarnet.org's.
var justContainers = map[string]bool{"s6-overlay": true, "s6-overlay-helpers": true}

func (c slashpackage) Catalog(_ context.Context, r file.Resolver) ([]pkg.Package, []artifact.Relationship, error) {
	locs, err := r.FilesByGlob("/package/admin/*/**")
	if err != nil {
		return nil, nil, err
	}
	found := map[string]file.Location{} // directory name -> evidence
	for _, l := range locs {
		rest, ok := strings.CutPrefix(l.RealPath, "/package/admin/")
		if !ok {
			continue
		}
		dir, _, _ := strings.Cut(rest, "/")
		if _, seen := found[dir]; !seen && pkgDir.MatchString(dir) {
			found[dir] = l
		}
	}
	dirs := make([]string, 0, len(found))
	for d := range found {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	var pkgs []pkg.Package
	for _, d := range dirs {
		m := pkgDir.FindStringSubmatch(d)
		p := slashpackageFor(m[1], m[2], found[d])
		p.FoundBy = c.Name()
		pkgs = append(pkgs, p)
	}
	return pkgs, nil, nil
}

func slashpackageFor(name, version string, evidence file.Location) pkg.Package {
	purl := "pkg:generic/skarnet.org/" + name + "@" + version
	if justContainers[name] {
		purl = "pkg:github/just-containers/" + name + "@v" + version
	}
	p := pkg.Package{
		Name:      name,
		Version:   version,
		Type:      pkg.BinaryPkg,
		PURL:      purl,
		Locations: file.NewLocationSet(evidence.WithAnnotation(pkg.EvidenceAnnotationKey, pkg.PrimaryEvidenceAnnotation)),
	}
	p.SetID()
	return p
}
