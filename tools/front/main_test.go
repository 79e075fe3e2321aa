package front

import (
	"testing"

	"github.com/hermes-agent/hermes-s6/tools/internal/s6test"
)

func TestMain(m *testing.M) { s6test.Main(m) }
