// Command sbom-scanner is a BuildKit SBOM generator: BuildKit runs its image
// with the root filesystem of each platform's image mounted read-only
// (`attest=type=sbom,generator=IMAGE`) and attaches what it writes as an
// in-toto SPDX attestation, per platform (BuildKit's
// docs/attestations/sbom-protocol.md). It exists so that the hermetic
// publish, which cannot pull docker/scout-sbom-indexer, gets the same kind of
// SBOM as the release: it is built from Go modules (syft as a library) and
// served from a local registry.
//
// What it lists, each with its version:
//   - Debian packages (dpkg status), with their architecture;
//   - the Go modules of every Go binary (their build info), the standard
//     library included;
//   - Python packages installed in a venv (the real agent's, from its lock);
//   - the skarnet packages of s6-overlay's tarballs, which carry no package
//     database: s6-overlay installs each one as /package/admin/NAME-VERSION
//     (slashpackage), and those directory names are read (see slashpackage.go).
//
// Environment (BuildKit's protocol): BUILDKIT_SCAN_SOURCE is the image's root
// filesystem, BUILDKIT_SCAN_SOURCE_EXTRAS an optional directory of further
// root filesystems (build stages), BUILDKIT_SCAN_DESTINATION where the
// statements go, one NAME.spdx.json per filesystem.
//
// By hand: sbom-scanner -o out.spdx.json DIR writes the SPDX document of DIR
// (no in-toto envelope).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/cataloging"
	"github.com/anchore/syft/syft/cataloging/pkgcataloging"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/sbom"
	"github.com/anchore/syft/syft/source"
	"github.com/anchore/syft/syft/source/directorysource"
)

// The in-toto statement BuildKit expects in each file: it fills in the
// subject (the image manifest) itself.
const (
	statementType = "https://in-toto.io/Statement/v0.1"
	predicateSPDX = "https://spdx.dev/Document"
)

type statement struct {
	Type          string          `json:"_type"`
	PredicateType string          `json:"predicateType"`
	Subject       []any           `json:"subject"`
	Predicate     json.RawMessage `json:"predicate"`
}

func main() {
	out := flag.String("o", "", "write the SPDX document of the directory argument to this file (no BuildKit)")
	flag.Parse()
	ctx := context.Background()
	var err error
	if *out != "" {
		if flag.NArg() != 1 {
			fmt.Fprintln(os.Stderr, "usage: sbom-scanner -o FILE DIR")
			os.Exit(2)
		}
		var doc []byte
		if doc, err = scan(ctx, flag.Arg(0), filepath.Base(flag.Arg(0))); err == nil {
			err = os.WriteFile(*out, doc, 0o644)
		}
	} else {
		err = buildkit(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sbom-scanner:", err)
		os.Exit(1)
	}
}

// buildkit runs one scan per filesystem BuildKit hands over.
func buildkit(ctx context.Context) error {
	src, dst := os.Getenv("BUILDKIT_SCAN_SOURCE"), os.Getenv("BUILDKIT_SCAN_DESTINATION")
	if src == "" || dst == "" {
		return errors.New("BUILDKIT_SCAN_SOURCE and BUILDKIT_SCAN_DESTINATION must be set (run by BuildKit as attest=type=sbom,generator=IMAGE; by hand: -o FILE DIR)")
	}
	roots := []string{src}
	if extras := os.Getenv("BUILDKIT_SCAN_SOURCE_EXTRAS"); extras != "" {
		entries, err := os.ReadDir(extras)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for _, e := range entries {
			roots = append(roots, filepath.Join(extras, e.Name()))
		}
	}
	for _, root := range roots {
		name := filepath.Base(root)
		doc, err := scan(ctx, root, name)
		if err != nil {
			return fmt.Errorf("%s: %w", root, err)
		}
		st, err := json.Marshal(statement{Type: statementType, PredicateType: predicateSPDX, Subject: []any{}, Predicate: doc})
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, name+".spdx.json"), st, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// scan returns the SPDX 2.3 JSON document of the root filesystem at root,
// catalogued as an image (installed packages, not declared ones).
func scan(ctx context.Context, root, name string) ([]byte, error) {
	src, err := directorysource.New(directorysource.Config{Path: root, Base: root, Alias: source.Alias{Name: name}})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	cfg := syft.DefaultCreateSBOMConfig().
		WithTool("hermes-s6 sbom-scanner", "1").
		// RPM databases need an SQL driver linked in: the images here are
		// Debian's, so the RPM catalogers are left out.
		WithCatalogerSelection(cataloging.NewSelectionRequest().WithDefaults(pkgcataloging.ImageTag).WithRemovals("rpm")).
		WithCatalogers(pkgcataloging.NewAlwaysEnabledCatalogerReference(slashpackage{}))
	s, err := syft.CreateSBOM(ctx, src, cfg)
	if err != nil {
		return nil, err
	}
	return encode(s)
}

func encode(s *sbom.SBOM) ([]byte, error) {
	enc, err := spdxjson.NewFormatEncoderWithConfig(spdxjson.DefaultEncoderConfig())
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := enc.Encode(&b, *s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
