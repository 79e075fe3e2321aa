package contenv

import (
	"testing"

	"gotest.tools/v3/assert"
)

// ValidName decides which container-environment names a run script can
// export (render and slot-exec both refuse the others): a letter or _, then
// letters, digits and _.
func TestValidNameAcceptsShellNamesOnly(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"HOME":           true,
		"_":              true,
		"_private":       true,
		"API_SERVER_KEY": true,
		"a1":             true,
		"PATH9":          true,
		"":               false, // empty
		"1ABC":           false, // leading digit
		"9":              false,
		"A-B":            false, // dash: sh cannot export it
		"A.B":            false,
		"A B":            false,
		"A=B":            false,
		"ÄRGER":          false, // letters outside ASCII
		"KEY\n":          false,
	} {
		assert.Check(t, ValidName(name) == want, "ValidName(%q) = %v, want %v", name, !want, want)
	}
}
