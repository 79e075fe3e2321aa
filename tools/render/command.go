package render

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/hermes-agent/hermes-s6/tools/profile"
)

// Command is `render-run -out DIR SLOT...`: it renders the named slots
// (gateway-PROFILE or dashboard) into DIR/SLOT, s6 scan-directory layout.
// The image build renders the build-time slots with it. It returns the
// exit code: 2 for a bad command line, 1 when a slot cannot be written.
func Command(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("render-run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write each slot's service directory into (DIR/SLOT, s6 scandir layout)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: render-run -out DIR SLOT...   (SLOT: gateway-PROFILE or dashboard)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	for _, name := range fs.Args() {
		var slot Slot
		if name == "dashboard" {
			slot = DashboardSlot()
		} else if p, ok := profile.FromSlot(name); ok {
			slot = GatewaySlot(p)
		} else {
			fmt.Fprintf(stderr, "render-run: unknown slot %q: use gateway-PROFILE or dashboard\n", name)
			return 2
		}
		if err := Write(filepath.Join(*out, name), slot); err != nil {
			fmt.Fprintln(stderr, "render-run:", err)
			return 1
		}
	}
	return 0
}
