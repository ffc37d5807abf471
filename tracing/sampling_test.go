package tracing

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

// samplingValid is a version-2 manifest with a default rule and one custom
// rule, as Envoy's localized sampler reads it.
const samplingValid = `{
  "version": 2,
  "rules": [
    {
      "description": "skip health checks",
      "host": "*",
      "http_method": "GET",
      "url_path": "/ping",
      "fixed_target": 0,
      "rate": 0.0
    }
  ],
  "default": {"fixed_target": 1, "rate": 0.05}
}`

// samplingRule is a valid custom rule, to build manifests whose rule i is
// the broken one.
const samplingRule = `{"host": "*", "http_method": "*", "url_path": "/api/*", "fixed_target": 2, "rate": 0.5}`

var samplingManifests = []struct {
	name     string
	manifest string
	want     string // "" means valid; otherwise a substring of the error
}{
	{"valid v2 manifest", samplingValid, ""},
	{"rate manifest", rateManifest(0.1), ""},
	{"default only", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}}`, ""},
	{"default with empty matchers", `{"version": 2, "default": {"service_name": "", "host": "", "http_method": "", "url_path": "", "fixed_target": 0, "rate": 1}, "rules": []}`, ""},
	{"rate 0 and 1", `{"version": 2, "default": {"fixed_target": 0, "rate": 1}, "rules": [` + `{"host": "a", "http_method": "b", "url_path": "c", "fixed_target": 4294967295, "rate": 0}` + `]}`, ""},
	{"two custom rules", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [` + samplingRule + `, ` + samplingRule + `]}`, ""},

	{"version 1", `{"version": 1, "default": {"fixed_target": 1, "rate": 0.05}, "rules": []}`, "version is 1: Envoy reads only version 2 manifests"},
	{"version 3", `{"version": 3, "default": {"fixed_target": 1, "rate": 0.05}}`, "version is 3: Envoy reads only version 2"},
	{"version as a string", `{"version": "2", "default": {"fixed_target": 1, "rate": 0.05}}`, `version is "2"`},
	{"missing version", `{"default": {"fixed_target": 1, "rate": 0.05}, "rules": []}`, "version is missing"},
	{"no default", `{"version": 2, "rules": [` + samplingRule + `]}`, "default: missing; a manifest must have a default rule"},
	{"null default", `{"version": 2, "default": null}`, "default: missing"},
	{"empty default", `{"version": 2, "default": {}}`, "default: fixed_target is missing"},
	{"default without rate", `{"version": 2, "default": {"fixed_target": 1}}`, "default: rate is missing"},
	{"empty rule", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [{}]}`, "rules[0]: fixed_target is missing"},
	{"empty second rule", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [` + samplingRule + `, {}]}`, "rules[1]: fixed_target is missing"},
	{"null rule", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [` + samplingRule + `, null]}`, "rules[1]: null is not a rule"},
	{"rate 1.5", `{"version": 2, "default": {"fixed_target": 1, "rate": 1.5}}`, "default: rate is 1.5: must be a number from 0 to 1"},
	{"rate -0.1", `{"version": 2, "default": {"fixed_target": 1, "rate": -0.1}}`, "default: rate is -0.1: must be a number from 0 to 1"},
	{"rate as a string", `{"version": 2, "default": {"fixed_target": 1, "rate": "0.5"}}`, `default: rate is "0.5": must be a number`},
	{"rate 5 in a rule", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [` + samplingRule + `, {"host": "*", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 5}]}`, "rules[1]: rate is 5: must be a number from 0 to 1"},
	{"fixed_target -1", `{"version": 2, "default": {"fixed_target": -1, "rate": 0.05}}`, "default: fixed_target is -1: must be a whole number"},
	{"fixed_target 1.5", `{"version": 2, "default": {"fixed_target": 1.5, "rate": 0.05}}`, "default: fixed_target is 1.5: must be a whole number"},
	{"fixed_target too large", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [{"host": "*", "http_method": "*", "url_path": "*", "fixed_target": 4294967296, "rate": 0.1}]}`, "rules[0]: fixed_target is 4294967296"},
	{"fixed_target as a string", `{"version": 2, "default": {"fixed_target": "1", "rate": 0.05}}`, `default: fixed_target is "1"`},
	{"default with a url_path", `{"version": 2, "default": {"url_path": "/api", "fixed_target": 1, "rate": 0.05}}`, `default: url_path is "/api": the default rule matches every request and takes no matchers`},
	{"default with a host", `{"version": 2, "default": {"host": "example.com", "fixed_target": 1, "rate": 0.05}}`, `default: host is "example.com"`},
	{"unknown field", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "bogus": 1}`, `unknown field "bogus"`},
	{"unknown field in a rule", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [{"host": "*", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 0.1, "priority": 1}]}`, `unknown field "priority"`},
	{"trailing data", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}} x`, "data after the top-level object"},
	{"second object", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}}{}`, "data after the top-level object"},
	{"not JSON", `version: 2`, "not a sampling rule manifest"},
	{"empty input", ``, "not a sampling rule manifest"},
	{"top-level array", `[{"version": 2}]`, "not a sampling rule manifest"},
	{"rules not an array", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": {}}`, "rules: not a list of rules"},
	{"rule missing host", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [{"http_method": "GET", "url_path": "/ping", "fixed_target": 0, "rate": 0}]}`, "rules[0]: host is missing"},
	{"second rule missing url_path", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [` + samplingRule + `, {"host": "*", "http_method": "GET", "fixed_target": 0, "rate": 0}]}`, "rules[1]: url_path is missing"},
	{"host not a string", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [{"host": 1, "http_method": "GET", "url_path": "/", "fixed_target": 0, "rate": 0}]}`, "rules[0]: host is 1: must be a string"},

	// What aws-xray-sdk-go refuses beyond Envoy's rules is refused too, and
	// still names the rule.
	{"rule with an empty host", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [` + samplingRule + `, {"host": "", "http_method": "GET", "url_path": "/ping", "fixed_target": 0, "rate": 0}]}`, "rules[1]"},
	{"rule with a service_name", `{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [{"service_name": "svc", "host": "*", "http_method": "GET", "url_path": "/ping", "fixed_target": 0, "rate": 0}]}`, "rules[0]"},

	// Envoy's JSON reader matches keys exactly; encoding/json would match
	// "Rate" to rate and accept what Envoy then ignores.
	{"key in the wrong case", `{"version": 2, "default": {"fixed_target": 1, "Rate": 0.5}}`, "Rate"},
	{"version key in the wrong case", `{"Version": 2, "default": {"fixed_target": 1, "rate": 0.05}}`, "Version"},
}

func TestValidateSamplingManifest(t *testing.T) {
	for _, tt := range samplingManifests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSamplingManifest([]byte(tt.manifest))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("ValidateSamplingManifest(%s) = %v, want nil", tt.manifest, err)
			case tt.want != "" && err == nil:
				t.Fatalf("ValidateSamplingManifest(%s) = nil, want an error containing %q", tt.manifest, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("ValidateSamplingManifest(%s) = %q, want it to contain %q", tt.manifest, err, tt.want)
			}
		})
	}
}

func TestRateManifest(t *testing.T) {
	tests := []struct {
		rate float64
		want string
	}{
		{0.1, `{"version":2,"default":{"service_name":"","host":"","http_method":"","url_path":"","fixed_target":1,"rate":0.1},"rules":[]}`},
		{0, `{"version":2,"default":{"service_name":"","host":"","http_method":"","url_path":"","fixed_target":1,"rate":0},"rules":[]}`},
		{1, `{"version":2,"default":{"service_name":"","host":"","http_method":"","url_path":"","fixed_target":1,"rate":1},"rules":[]}`},
		{0.37, `{"version":2,"default":{"service_name":"","host":"","http_method":"","url_path":"","fixed_target":1,"rate":0.37},"rules":[]}`},
	}
	for _, tt := range tests {
		got := rateManifest(tt.rate)
		if got != tt.want {
			t.Errorf("rateManifest(%v) =\n%s\nwant\n%s", tt.rate, got, tt.want)
		}
		if err := ValidateSamplingManifest([]byte(got)); err != nil {
			t.Errorf("rateManifest(%v) is not valid: %v", tt.rate, err)
		}
	}
}

// TestValidateSamplingManifestDeterministic: the same manifest gets the
// same error every time (a rule missing several matchers, a default with
// several).
func TestValidateSamplingManifestDeterministic(t *testing.T) {
	for _, m := range []string{
		`{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [{"fixed_target": 0, "rate": 0}]}`,
		`{"version": 2, "default": {"host": "h", "http_method": "GET", "url_path": "/", "service_name": "s", "fixed_target": 1, "rate": 0.05}}`,
	} {
		first := ValidateSamplingManifest([]byte(m))
		if first == nil {
			t.Fatalf("ValidateSamplingManifest(%s) = nil, want an error", m)
		}
		for range 100 {
			if err := ValidateSamplingManifest([]byte(m)); err == nil || err.Error() != first.Error() {
				t.Fatalf("ValidateSamplingManifest(%s) said %q, then %v", m, first, err)
			}
		}
	}
}

func FuzzValidateSamplingManifest(f *testing.F) {
	for _, tt := range samplingManifests {
		f.Add([]byte(tt.manifest))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Must not panic (aws-xray-sdk-go does on some inputs).
		if err := ValidateSamplingManifest(b); err != nil {
			return
		}
		// What passes must satisfy Envoy's reading, restated here with
		// exact (case-sensitive) keys.
		if msg := samplingEnvoyProblem(b); msg != "" {
			t.Fatalf("ValidateSamplingManifest(%q) = nil, but Envoy would not read it: %s", b, msg)
		}
	})
}

// samplingEnvoyProblem restates the rules of Envoy's localized sampler
// (source/extensions/tracers/xray/localized_sampling.cc), which reads keys
// exactly as spelled: "" if b satisfies them.
func samplingEnvoyProblem(b []byte) string {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err.Error()
	}
	if v, ok := m["version"].(float64); !ok || v != 2 {
		return fmt.Sprintf("version is %v", m["version"])
	}
	rule := func(where string, r any, isDefault bool) string {
		o, ok := r.(map[string]any)
		if !ok {
			return where + " is not an object"
		}
		if ft, ok := o["fixed_target"].(float64); !ok || ft < 0 || ft != math.Trunc(ft) {
			return fmt.Sprintf("%s.fixed_target is %v", where, o["fixed_target"])
		}
		if rate, ok := o["rate"].(float64); !ok || rate < 0 || rate > 1 {
			return fmt.Sprintf("%s.rate is %v", where, o["rate"])
		}
		for _, k := range []string{"host", "http_method", "url_path"} {
			v, present := o[k]
			if _, isString := v.(string); present && !isString {
				return fmt.Sprintf("%s.%s is %v", where, k, v)
			}
			if !present && !isDefault {
				return fmt.Sprintf("%s.%s is missing", where, k)
			}
		}
		return ""
	}
	if msg := rule("default", m["default"], true); msg != "" {
		return msg
	}
	if rules, present := m["rules"]; present && rules != nil {
		list, ok := rules.([]any)
		if !ok {
			return "rules is not an array"
		}
		for i, r := range list {
			if msg := rule(fmt.Sprintf("rules[%d]", i), r, false); msg != "" {
				return msg
			}
		}
	}
	return ""
}
