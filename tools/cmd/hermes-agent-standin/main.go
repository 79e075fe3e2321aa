// Command hermes-agent-standin is a test double for the Hermes agent: it
// plays the agent's part in test container images so that process
// supervision can be tested without network. See package standin for the
// contract, or run it with --help.
package main

import (
	"os"

	"github.com/hermes-agent/hermes-s6/tools/standin"
)

func main() {
	os.Exit(standin.Main(os.Args[1:], os.Stdout, os.Stderr))
}
