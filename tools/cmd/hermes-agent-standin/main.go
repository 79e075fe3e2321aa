// Command hermes-agent-standin is a STAND-IN for the Hermes agent, a test
// double that test and hermetic images install in place of the real Python
// agent so that process supervision can be tested without network. Where the
// image meets the agent it behaves like the real agent at a pinned ref; it
// does no agent work. See package standin for the contract, point by point,
// and its stand-in-only test hooks, or run it with --help.
package main

import (
	"os"

	"github.com/hermes-agent/hermes-s6/tools/standin"
)

func main() {
	os.Exit(standin.Main(os.Args[1:], os.Stdout, os.Stderr))
}
