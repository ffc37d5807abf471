package tracing

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// FuzzFromEnv feeds arbitrary values to the variables with the most parsing
// (and a custom file's content) through FromEnv and Render: no panic; every
// problem is one line; what renders validates and encodes.
func FuzzFromEnv(f *testing.F) {
	f.Add("arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/a", "unix:///run/x.sock", "1", "127.0.0.1:2000", "0.1", "9901", "10s", "1", "tracing: {}")
	f.Add("mesh/apps/virtualGateway/gw", "cp:15010", "true", "tcp:1.2.3.4:5 udp:1.2.3.4:6", "1", "65535", "5000ms", "0", "stats_sinks: []")
	f.Add("mesh/a@111122223333/virtualNode/b", "[::1]:1", "0", "[fd00::1]:2000", "0.05", "0", "1ms", "2", "{\"staticResources\":{}}")
	f.Add("", "", "", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, arn, xds, xray, xrayAddr, rate, adminPort, flush, ext, file string) {
		env := map[string]string{
			"APPMESH_RESOURCE_ARN": arn, "MESHD_XDS_ADDRESS": xds, "ENABLE_ENVOY_XRAY_TRACING": xray,
			"AWS_XRAY_DAEMON_ADDRESS": xrayAddr, "XRAY_SAMPLING_RATE": rate, "ENVOY_ADMIN_ACCESS_PORT": adminPort,
			"ENVOY_STATS_FLUSH_INTERVAL": flush, "APPMESH_METRIC_EXTENSION_VERSION": ext,
			"ENVOY_RESOURCES_CONFIG_FILE": "/fuzz/resources.yaml",
		}
		c, err := FromEnv(MapLookup(env))
		if err != nil {
			checkInputError(t, err)
			return
		}
		readFile := func(p string) ([]byte, error) {
			if p == "/fuzz/resources.yaml" {
				return []byte(file), nil
			}
			return nil, fs.ErrNotExist
		}
		b, _, err := Render(c, readFile)
		if err != nil {
			checkInputError(t, err)
			return
		}
		if err := Validate(b); err != nil {
			t.Fatalf("Render returned an invalid bootstrap: %v", err)
		}
		if _, err := Encode(b, YAML); err != nil {
			t.Fatalf("Encode: %v", err)
		}
	})
}

func checkInputError(t *testing.T, err error) {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("not an input error: %T %v", err, err)
	}
	for _, p := range ie.Problems {
		if p == nil || p.Error() == "" {
			t.Fatalf("empty problem in %v", ie.Problems)
		}
		var ve *VarError
		if errors.As(p, &ve) && strings.ContainsAny(ve.Allowed, "\n") {
			t.Fatalf("problem spans lines: %q", ve.Error())
		}
	}
}
