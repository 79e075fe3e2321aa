// Command debsec prints the Debian packages of an image's SBOM beside the
// Debian security tracker's data: for each package, the CVEs the tracker
// lists for its source package in the image's Debian release that are still
// open, or fixed in a version newer than the one installed.
//
//	go run ./debsec -sbom SBOM.json [-tracker TRACKER.json] [-release trixie]
//
// SBOM.json is an SPDX 2.3 JSON document (what sbom-scanner writes, or the
// predicate of the image's SBOM attestation), or the in-toto statement that
// carries one. TRACKER.json is the tracker's whole data set, one JSON file:
// https://security-tracker.debian.org/tracker/data/json (about 80 MB, from
// a machine with network). The tracker is not mirrored with the Debian
// archive, so there is no offline copy of it here: without -tracker the
// command lists the packages and says where to get the data.
//
// Exit status: 0 when nothing is affected (or no tracker data was given),
// 1 when some package is affected, 2 on bad input.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

// TrackerURL is where the Debian security tracker publishes its data.
const TrackerURL = "https://security-tracker.debian.org/tracker/data/json"

// Package is a Debian package of the SBOM.
type Package struct {
	Name, Version         string // binary package
	Source, SourceVersion string // source package (the tracker's key)
}

// Finding is a CVE of the tracker that affects an installed package.
type Finding struct {
	Package Package
	CVE     string
	Status  string // open (no fix in the release yet) or fixed
	Fixed   string // the release's fixed version, for fixed
	Urgency string
}

// tracker is the tracker's JSON: source package -> CVE -> per-release data.
type tracker map[string]map[string]struct {
	Releases map[string]struct {
		Status       string `json:"status"`
		FixedVersion string `json:"fixed_version"`
		Urgency      string `json:"urgency"`
	} `json:"releases"`
}

func main() {
	sbomFile := flag.String("sbom", "", "the SPDX JSON SBOM (or an in-toto statement carrying one)")
	trackerFile := flag.String("tracker", "", "the Debian security tracker's data ("+TrackerURL+")")
	release := flag.String("release", "trixie", "the Debian release of the image (the tracker's release name)")
	flag.Parse()
	code, err := run(os.Stdout, *sbomFile, *trackerFile, *release)
	if err != nil {
		fmt.Fprintln(os.Stderr, "debsec:", err)
	}
	os.Exit(code)
}

func run(w io.Writer, sbomFile, trackerFile, release string) (int, error) {
	if sbomFile == "" {
		return 2, errors.New("-sbom FILE is required (an SPDX JSON document)")
	}
	b, err := os.ReadFile(sbomFile)
	if err != nil {
		return 2, err
	}
	pkgs, err := DebianPackages(b)
	if err != nil {
		return 2, fmt.Errorf("%s: %w", sbomFile, err)
	}
	if len(pkgs) == 0 {
		return 2, fmt.Errorf("%s lists no Debian package (pkg:deb purl)", sbomFile)
	}
	if trackerFile == "" {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PACKAGE\tVERSION\tSOURCE\tSOURCE VERSION")
		for _, p := range pkgs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Version, p.Source, p.SourceVersion)
		}
		tw.Flush()
		fmt.Fprintf(w, "\n%d Debian packages. No security tracker data given (-tracker): it cannot be had offline here.\n"+
			"Download %s on a machine with network and run again with -tracker FILE.\n", len(pkgs), TrackerURL)
		return 0, nil
	}
	f, err := os.Open(trackerFile)
	if err != nil {
		return 2, err
	}
	defer f.Close()
	var tr tracker
	if err := json.NewDecoder(f).Decode(&tr); err != nil {
		return 2, fmt.Errorf("%s: not the tracker's JSON (%s): %w", trackerFile, TrackerURL, err)
	}
	findings := Check(pkgs, tr, release)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tVERSION\tSOURCE\tCVE\tSTATUS\tFIXED IN\tURGENCY")
	for _, fd := range findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", fd.Package.Name, fd.Package.Version, fd.Package.Source, fd.CVE, fd.Status, fd.Fixed, fd.Urgency)
	}
	tw.Flush()
	affected := map[string]bool{}
	for _, fd := range findings {
		affected[fd.Package.Name] = true
	}
	fmt.Fprintf(w, "\n%d Debian packages, %d affected, %d CVEs for %s (tracker data: %s)\n", len(pkgs), len(affected), len(findings), release, trackerFile)
	if len(findings) > 0 {
		return 1, nil
	}
	return 0, nil
}

// DebianPackages reads the pkg:deb packages of an SPDX JSON document, or of
// the in-toto statement that carries one as its predicate.
func DebianPackages(doc []byte) ([]Package, error) {
	var d struct {
		Predicate json.RawMessage `json:"predicate"`
		Packages  []struct {
			Refs []struct {
				Type    string `json:"referenceType"`
				Locator string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	if len(d.Predicate) > 0 {
		return DebianPackages(d.Predicate)
	}
	var out []Package
	for _, p := range d.Packages {
		for _, r := range p.Refs {
			if r.Type != "purl" || !strings.HasPrefix(r.Locator, "pkg:deb/") {
				continue
			}
			pk, err := parseDebPURL(r.Locator)
			if err != nil {
				return nil, err
			}
			out = append(out, pk)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// parseDebPURL reads pkg:deb/debian/NAME@VERSION?…&upstream=SRC%40SRCVERSION.
// Without upstream the source is the binary package; without its version,
// the binary version (binNMUs add +bN to it, which compares as newer).
func parseDebPURL(purl string) (Package, error) {
	rest := strings.TrimPrefix(purl, "pkg:deb/")
	path, query, _ := strings.Cut(rest, "?")
	_, nameVer, ok := strings.Cut(path, "/")
	if !ok {
		return Package{}, fmt.Errorf("purl %q: no namespace", purl)
	}
	name, ver, ok := strings.Cut(nameVer, "@")
	if !ok {
		return Package{}, fmt.Errorf("purl %q: no version", purl)
	}
	var err error
	p := Package{}
	if p.Name, err = url.PathUnescape(name); err != nil {
		return Package{}, err
	}
	if p.Version, err = url.PathUnescape(ver); err != nil {
		return Package{}, err
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return Package{}, fmt.Errorf("purl %q: %w", purl, err)
	}
	p.Source, p.SourceVersion, _ = strings.Cut(q.Get("upstream"), "@")
	if p.Source == "" {
		p.Source = p.Name
	}
	if p.SourceVersion == "" {
		p.SourceVersion = p.Version
	}
	return p, nil
}

// Check lists the tracker's CVEs that affect the packages in release:
// open ones (no fixed version in the release yet; "unimportant" ones left
// out), and resolved ones whose fixed version is newer than the installed
// source version.
func Check(pkgs []Package, tr tracker, release string) []Finding {
	var out []Finding
	for _, p := range pkgs {
		cves := tr[p.Source]
		ids := make([]string, 0, len(cves))
		for id := range cves {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			r, ok := cves[id].Releases[release]
			if !ok {
				continue
			}
			switch {
			case r.Status == "open" && r.Urgency != "unimportant":
				out = append(out, Finding{Package: p, CVE: id, Status: "open", Urgency: r.Urgency})
			case r.Status == "resolved" && r.FixedVersion != "" && r.FixedVersion != "0" &&
				CompareVersions(p.SourceVersion, r.FixedVersion) < 0:
				out = append(out, Finding{Package: p, CVE: id, Status: "fixed", Fixed: r.FixedVersion, Urgency: r.Urgency})
			}
		}
	}
	return out
}
