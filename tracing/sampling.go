package tracing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"

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

// manifestRule is one rule as Envoy's localized sampler reads it
// (source/extensions/tracers/xray/localized_sampling.cc).
type manifestRule struct {
	Description *string          `json:"description"`
	ServiceName *string          `json:"service_name"`
	Host        *string          `json:"host"`
	HTTPMethod  *string          `json:"http_method"`
	URLPath     *string          `json:"url_path"`
	FixedTarget *json.RawMessage `json:"fixed_target"`
	Rate        *json.RawMessage `json:"rate"`
}

type manifest struct {
	Version *json.RawMessage `json:"version"`
	Default *manifestRule    `json:"default"`
	Rules   []*manifestRule  `json:"rules"`
}

// ValidateSamplingManifest checks an X-Ray sampling rule manifest the way
// Envoy reads it (where Envoy silently falls back to its default rule on any
// error, meshd refuses), then with aws-xray-sdk-go as the App Mesh image did,
// so a manifest App Mesh refused is refused too. Problems name the rule.
func ValidateSamplingManifest(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m manifest
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("not a sampling rule manifest: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("not a sampling rule manifest: data after the top-level object")
	}
	var v float64
	if m.Version == nil || json.Unmarshal(*m.Version, &v) != nil || v != 2 {
		ver := "missing"
		if m.Version != nil {
			ver = string(*m.Version)
		}
		return fmt.Errorf("version is %s: Envoy reads only version 2 manifests", ver)
	}
	if m.Default == nil {
		return fmt.Errorf("default: missing; a manifest must have a default rule")
	}
	if err := checkRule(m.Default, true); err != nil {
		return fmt.Errorf("default: %w", err)
	}
	for i, r := range m.Rules {
		if r == nil {
			return fmt.Errorf("rules[%d]: null is not a rule", i)
		}
		if err := checkRule(r, false); err != nil {
			return fmt.Errorf("rules[%d]: %w", i, err)
		}
	}
	// The SDK panics on an empty rule object; the checks above exclude that,
	// and recover guards against what they may not.
	return sdkCheck(b)
}

func checkRule(r *manifestRule, isDefault bool) error {
	if r.FixedTarget == nil {
		return fmt.Errorf("fixed_target is missing")
	}
	var ft float64
	if json.Unmarshal(*r.FixedTarget, &ft) != nil || ft < 0 || ft != math.Trunc(ft) || ft > math.MaxUint32 {
		return fmt.Errorf("fixed_target is %s: must be a whole number ≥ 0 (requests per second before rate applies)", *r.FixedTarget)
	}
	if r.Rate == nil {
		return fmt.Errorf("rate is missing")
	}
	var rate float64
	if json.Unmarshal(*r.Rate, &rate) != nil || rate < 0 || rate > 1 {
		return fmt.Errorf("rate is %s: must be a number from 0 to 1", *r.Rate)
	}
	if isDefault {
		for name, p := range map[string]*string{"host": r.Host, "http_method": r.HTTPMethod, "url_path": r.URLPath, "service_name": r.ServiceName} {
			if p != nil && *p != "" {
				return fmt.Errorf("%s is %q: the default rule matches every request and takes no matchers", name, *p)
			}
		}
		return nil
	}
	for name, p := range map[string]*string{"host": r.Host, "http_method": r.HTTPMethod, "url_path": r.URLPath} {
		if p == nil {
			return fmt.Errorf("%s is missing (aws-xray-sdk-go, which App Mesh validated with, requires host, http_method and url_path on every rule; use \"*\" to match all)", name)
		}
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
