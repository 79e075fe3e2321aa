// Command hermes-s6 is the one multi-call binary of the image: the front
// (`hermes`), the ENTRYPOINT and CMD wrapper, the cont-init, cont-finish and
// service programs, the debian stage layer, and what the run scripts exec.
// Its names and what each does are the table in tools/commands (Table); the
// image links the binary under the names marked there (`hermes-s6 links`).
//
// Called as hermes-s6, the first argument names the command; with none, it
// lists them.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hermes-agent/hermes-s6/tools/commands"
)

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if name == "hermes-s6" {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "usage: hermes-s6 COMMAND [ARGS...]; commands:", commands.Names())
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	os.Exit(commands.Run(name, args))
}
