package envvar

import (
	"reflect"
	"testing"
)

func TestReaderCollectsEveryProblem(t *testing.T) {
	env := map[string]string{"B": "yes", "P": "0", "O": "UDS", "S": "  x  ", "E": "", "Q": "70000"}
	r := &Reader{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	if got := r.Bool("B", true); got != true {
		t.Errorf("bad bool: got %v, want the default", got)
	}
	if got := r.Port("P", 9901); got != 9901 {
		t.Errorf("port 0: got %d", got)
	}
	if got := r.Port("Q", 1); got != 1 {
		t.Errorf("port 70000: got %d", got)
	}
	if got := r.OneOf("O", "tcp", "tcp", "uds"); got != "uds" {
		t.Errorf("oneOf: %q", got)
	}
	if got := r.Str("S", "d"); got != "x" {
		t.Errorf("str trims: %q", got)
	}
	if got := r.Str("E", "d"); got != "d" {
		t.Errorf("empty counts as unset: %q", got)
	}
	var names []string
	for _, p := range r.Problems {
		names = append(names, p.(*VarError).Name)
	}
	if want := []string{"B", "P", "Q"}; !reflect.DeepEqual(names, want) {
		t.Errorf("problems for %v, want %v", names, want)
	}
	if got := r.Problems[0].Error(); got != `B="yes": must be a boolean: 1, true, 0 or false (also t, f, TRUE, FALSE, True, False)` {
		t.Errorf("message %q", got)
	}
}
