// Command hermes-s6 is the one multi-call binary of the image. It is
// installed once and linked under the names it answers to:
//
//	hermes             the in-container front (gateway/profile verbs, redirect)
//	hermes-entrypoint  the CMD wrapper (S6_CMD_ARG0)
//	render-run         renders service directories (image build time)
//	hermes-setup       cont-init: uid/gid remap, $HERMES_HOME tree, permissions
//	hermes-reconcile   cont-init: restores every slot's desired state
//	hermes-watch       the main-hermes service: logs every slot state change
//	hermes-slots-down  cont-finish: brings every slot down, bounded
//	init, rc.init      the debian stage layer (stage 1 and 2); `hermes-s6 stage3`
//
// Called as hermes-s6, the first argument names the command.
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
