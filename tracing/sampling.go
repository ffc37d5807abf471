package tracing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/aws/aws-xray-sdk-go/v2/strategy/sampling"
)

// defaultSamplingRate is X-Ray's (and Envoy's built-in) default rate; an
// XRAY_SAMPLING_RATE equal to it changes nothing, as in the App Mesh image.
const defaultSamplingRate = 0.05

// rateManifest is the version-2 manifest App Mesh wrote for
// XRAY_SAMPLING_RATE, byte for byte.
func rateManifest(rate float64) string {
	type rule struct {
		ServiceName string  `json:"service_name"`
		Host        string  `json:"host"`
		HTTPMethod  string  `json:"http_method"`
		URLPath     string  `json:"url_path"`
		FixedTarget int     `json:"fixed_target"`
		Rate        float64 `json:"rate"`
	}
	b, _ := json.Marshal(struct {
		Version int   `json:"version"`
		Default rule  `json:"default"`
		Rules   []any `json:"rules"`
	}{2, rule{FixedTarget: 1, Rate: rate}, []any{}})
	return string(b)
}

// ruleKeys are the keys of a rule, exactly as Envoy's localized sampler
// reads them (source/extensions/tracers/xray/localized_sampling.cc); the
// matchers are checked in this order.
var (
	ruleKeys     = []string{"description", "service_name", "host", "http_method", "url_path", "fixed_target", "rate"}
	matcherKeys  = []string{"host", "http_method", "url_path"}
	manifestKeys = []string{"version", "default", "rules"}
)

// ValidateSamplingManifest checks an X-Ray sampling rule manifest the way
// Envoy reads it (where Envoy silently falls back to its default rule on any
// error, meshd refuses), then with aws-xray-sdk-go as the App Mesh image did,
// so a manifest App Mesh refused is refused too. Problems name the rule.
func ValidateSamplingManifest(b []byte) error {
	top, err := strictObject(b, manifestKeys)
	if err != nil {
		return fmt.Errorf("not a sampling rule manifest: %w", err)
	}
	var v float64
	if raw, ok := top["version"]; !ok || json.Unmarshal(raw, &v) != nil || v != 2 {
		ver := "missing"
		if ok {
			ver = string(raw)
		}
		return fmt.Errorf("version is %s: Envoy reads only version 2 manifests", ver)
	}
	raw, ok := top["default"]
	if !ok || string(raw) == "null" {
		return fmt.Errorf("default: missing; a manifest must have a default rule")
	}
	if err := checkRule(raw, true); err != nil {
		return fmt.Errorf("default: %w", err)
	}
	var rules []json.RawMessage
	if raw, ok := top["rules"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &rules); err != nil {
			return fmt.Errorf("rules: not a list of rules")
		}
	}
	for i, r := range rules {
		if err := checkRule(r, false); err != nil {
			return fmt.Errorf("rules[%d]: %w", i, err)
		}
	}
	// The SDK panics on an empty rule object; the checks above exclude that,
	// and recover guards against what they may not.
	return sdkCheck(b)
}

// strictObject decodes one JSON object whose keys, spelled exactly, must be
// among allowed (encoding/json alone would match keys case-insensitively,
// and Envoy does not).
func strictObject(b []byte, allowed []string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("null is not an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the top-level object")
	}
	for k := range m {
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("unknown field %q (fields are %s, spelled exactly)", k, strings.Join(allowed, ", "))
		}
	}
	return m, nil
}

func checkRule(raw json.RawMessage, isDefault bool) error {
	if string(raw) == "null" {
		return fmt.Errorf("null is not a rule")
	}
	r, err := strictObject(raw, ruleKeys)
	if err != nil {
		return err
	}
	strs := map[string]string{}
	for _, k := range []string{"description", "service_name", "host", "http_method", "url_path"} {
		if v, ok := r[k]; ok {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return fmt.Errorf("%s is %s: must be a string", k, v)
			}
			strs[k] = s
		}
	}
	ft, ok := r["fixed_target"]
	if !ok {
		return fmt.Errorf("fixed_target is missing")
	}
	var f float64
	if json.Unmarshal(ft, &f) != nil || f < 0 || f != math.Trunc(f) || f > math.MaxUint32 {
		return fmt.Errorf("fixed_target is %s: must be a whole number ≥ 0 (requests per second before rate applies)", ft)
	}
	rt, ok := r["rate"]
	if !ok {
		return fmt.Errorf("rate is missing")
	}
	var rate float64
	if json.Unmarshal(rt, &rate) != nil || rate < 0 || rate > 1 {
		return fmt.Errorf("rate is %s: must be a number from 0 to 1", rt)
	}
	if isDefault {
		for _, k := range append(append([]string{}, matcherKeys...), "service_name") {
			if strs[k] != "" {
				return fmt.Errorf("%s is %q: the default rule matches every request and takes no matchers", k, strs[k])
			}
		}
		return nil
	}
	// aws-xray-sdk-go, which App Mesh validated with, is stricter than
	// Envoy here; meshd keeps App Mesh's rule.
	for _, k := range matcherKeys {
		if strs[k] == "" {
			return fmt.Errorf("%s is missing or empty (aws-xray-sdk-go, which App Mesh validated with, requires host, http_method and url_path on every rule; use \"*\" to match all)", k)
		}
	}
	if strs["service_name"] != "" {
		return fmt.Errorf("service_name is %q: version 2 rules match on host, not service_name", strs["service_name"])
	}
	return nil
}

func sdkCheck(b []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("aws-xray-sdk-go cannot read it (panic: %v)", p)
		}
	}()
	if _, err := sampling.ManifestFromJSONBytes(b); err != nil {
		return fmt.Errorf("aws-xray-sdk-go: %v", err)
	}
	return nil
}
