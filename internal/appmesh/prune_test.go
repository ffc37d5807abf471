package appmesh

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestPrune(t *testing.T) {
	var spec map[string]any
	in := `{"listeners":[{"portMapping":{"port":80,"protocol":"http","extra":1}}],
	        "backendDefaults":{"clientPolicy":{"tls":{"enforce":true,"mode":"STRICT"}}},
	        "podSelector":{"matchLabels":{"app":"a"}}}`
	if err := json.Unmarshal([]byte(in), &spec); err != nil {
		t.Fatal(err)
	}
	removed := Prune(KindVirtualNode, spec)
	want := []string{"backendDefaults.clientPolicy.tls.mode", "listeners[0].portMapping.extra", "podSelector"}
	if !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	raw, _ := json.Marshal(spec)
	if _, err := DecodeSpec(KindVirtualNode, raw); err != nil {
		t.Errorf("pruned spec does not decode: %v (%s)", err, raw)
	}
	if got := Prune("Nonsense", spec); got != nil {
		t.Errorf("unknown kind pruned %v", got)
	}
}
