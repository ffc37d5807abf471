package cli

import "testing"

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestIdentityFromEnv(t *testing.T) {
	tests := []struct {
		env              map[string]string
		mesh, kind, name string
	}{
		{map[string]string{"APPMESH_RESOURCE_ARN": "arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceA"}, "apps", "VirtualNode", "serviceA"},
		{map[string]string{"APPMESH_RESOURCE_ARN": "mesh/apps/virtualGateway/gw"}, "apps", "VirtualGateway", "gw"},
		{map[string]string{"APPMESH_VIRTUAL_NODE_NAME": "mesh/apps/virtualNode/b"}, "apps", "VirtualNode", "b"},
		{map[string]string{"APPMESH_RESOURCE_ARN": "mesh/apps/virtualRouter/r"}, "", "", ""},
		{map[string]string{}, "", "", ""},
	}
	for _, tt := range tests {
		m, k, n := identityFromEnv(lookupMap(tt.env))
		if m != tt.mesh || k != tt.kind || n != tt.name {
			t.Errorf("%v: got %s %s %s", tt.env, m, k, n)
		}
	}
}

// An App Mesh task definition with Envoy's DogStatsD and the extension on
// got envoy.appmesh.* at Envoy's statsd address: the agent pushes there.
func TestAppMeshDogStatsDDefault(t *testing.T) {
	base := map[string]string{"APPMESH_RESOURCE_ARN": "mesh/apps/virtualNode/a", "MESHD_XDS_ADDRESS": "127.0.0.1:15010"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		env  map[string]string
		want string
	}{
		{with("ENABLE_ENVOY_DOG_STATSD", "1", "APPMESH_METRIC_EXTENSION_VERSION", "1"), "127.0.0.1:8125"},
		{with("ENABLE_ENVOY_DOG_STATSD", "1", "APPMESH_METRIC_EXTENSION_VERSION", "1", "STATSD_ADDRESS", "10.0.0.7", "STATSD_PORT", "9125"), "10.0.0.7:9125"},
		{with("ENABLE_ENVOY_DOG_STATSD", "1", "APPMESH_METRIC_EXTENSION_VERSION", "1", "STATSD_SOCKET_PATH", "/var/run/dsd.sock"), "unixgram:///var/run/dsd.sock"},
		{with("ENABLE_ENVOY_DOG_STATSD", "1"), ""},
		{with("APPMESH_METRIC_EXTENSION_VERSION", "1"), ""},
	}
	for _, tt := range tests {
		if got := appMeshDogStatsD(lookupMap(tt.env)); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.env, got, tt.want)
		}
	}
}
