// Package imagesize reports what each layer of an image adds, uncompressed,
// grouped into the parts of the hermes-s6 image (base, agent, s6, tools,
// rootfs, other) from the layers' history.
package imagesize

import (
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Layer is one layer with the Dockerfile step that made it.
type Layer struct {
	Part      string
	CreatedBy string
	Size      int64 // uncompressed bytes
}

// Parts of the image, in report order.
var Parts = []string{"base", "agent", "s6", "tools", "rootfs", "other"}

// Classify names the part a layer belongs to from its history line.
func Classify(index int, createdBy string) string {
	c := createdBy
	switch {
	case index == 0:
		return "base"
	case strings.Contains(c, "hermes-agent") || strings.Contains(c, "/opt/hermes"):
		return "agent"
	case strings.Contains(c, "s6root") || strings.Contains(c, "s6 execline") || strings.Contains(c, "with-contenv"):
		return "s6"
	case strings.Contains(c, "hermes-s6") && !strings.Contains(c, "ln -s hermes-s6"):
		return "tools"
	case strings.Contains(c, "/out/ /") || strings.Contains(c, "ln -s hermes-s6") || strings.Contains(c, "groupadd"):
		return "rootfs"
	}
	return "other"
}

// Layers measures every layer of img.
func Layers(img v1.Image) ([]Layer, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var hist []v1.History
	for _, h := range cf.History {
		if !h.EmptyLayer {
			hist = append(hist, h)
		}
	}
	out := make([]Layer, 0, len(layers))
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		by := ""
		if i < len(hist) {
			by = hist[i].CreatedBy
		}
		out = append(out, Layer{Part: Classify(i, by), CreatedBy: by, Size: n})
	}
	return out, nil
}

// Totals sums layer sizes per part.
func Totals(layers []Layer) map[string]int64 {
	t := map[string]int64{}
	for _, l := range layers {
		t[l.Part] += l.Size
	}
	return t
}

// MiB formats bytes as MiB.
func MiB(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// Report writes a table of layers and per-part totals.
func Report(w io.Writer, layers []Layer) {
	fmt.Fprintf(w, "%-7s %12s  %s\n", "part", "size", "created by")
	for _, l := range layers {
		by := strings.Join(strings.Fields(l.CreatedBy), " ")
		if len(by) > 90 {
			by = by[:87] + "..."
		}
		fmt.Fprintf(w, "%-7s %12s  %s\n", l.Part, MiB(l.Size), by)
	}
	t := Totals(layers)
	fmt.Fprintln(w)
	var total, added int64
	for _, p := range Parts {
		fmt.Fprintf(w, "%-7s %12s\n", p, MiB(t[p]))
		total += t[p]
		if p == "s6" || p == "tools" || p == "rootfs" {
			added += t[p]
		}
	}
	fmt.Fprintf(w, "%-7s %12s\n%-7s %12s  (s6 + tools + rootfs, on top of base + agent)\n", "total", MiB(total), "added", MiB(added))
}
