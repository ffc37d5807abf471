package deploytest

import (
	"reflect"
	"testing"
)

func TestShellCommands(t *testing.T) {
	md := "text\n```sh\n" +
		"A=1 B='x y' meshd bootstrap --output envoy.yaml  # comment\n" +
		"aws ecs execute-command --cluster C --interactive \\\n" +
		"  --command \"/usr/bin/meshd ca show --pem\" | tee bundle.pem\n" +
		"sudo -u meshd meshd ca show --state-dir /var/lib/meshd --pem > bundle.pem && echo \"done; really\"\n" +
		"for x in $(ls a b); do meshd validate \"$x\"; done\n" +
		"MESHD_X=1 go run ./cmd/meshd demo --shift 0/100\n" +
		"kubectl -n ns exec deploy/ca -- meshd ca show --pem > b.pem\n" +
		"```\n```yaml\nmeshd: not a command\n```\n"
	got, err := ShellCommands(md)
	if err != nil {
		t.Fatal(err)
	}
	var argvs [][]string
	for _, c := range got {
		argvs = append(argvs, c.Argv)
	}
	want := [][]string{
		{"meshd", "bootstrap", "--output", "envoy.yaml"},
		{"aws", "ecs", "execute-command", "--cluster", "C", "--interactive", "--command", "/usr/bin/meshd ca show --pem"},
		{"/usr/bin/meshd", "ca", "show", "--pem"},
		{"tee", "bundle.pem"},
		{"meshd", "ca", "show", "--state-dir", "/var/lib/meshd", "--pem"},
		{"echo", "done; really"},
		{"for", "x", "in", "$(ls a b)"},
		{"meshd", "validate", "$x"},
		{"done"},
		{"meshd", "demo", "--shift", "0/100"},
		{"kubectl", "-n", "ns", "exec", "deploy/ca", "--", "meshd", "ca", "show", "--pem"},
		{"meshd", "ca", "show", "--pem"},
	}
	if !reflect.DeepEqual(argvs, want) {
		t.Errorf("commands:\n got %q\nwant %q", argvs, want)
	}
	if env := got[0].Env; env["A"] != "1" || env["B"] != "x y" || len(env) != 2 {
		t.Errorf("env of the first command = %v", env)
	}
	if got[0].Line != 3 || got[1].Line != 4 {
		t.Errorf("lines = %d, %d; want 3, 4", got[0].Line, got[1].Line)
	}
	for _, bad := range []string{"```sh\necho 'open\n```\n", "```sh\nsleep 1 &\n```\n", "```sh\nls\n"} {
		if _, err := ShellCommands(bad); err == nil {
			t.Errorf("ShellCommands(%q) = nil error", bad)
		}
	}
}

func TestParseMeshdAndEnv(t *testing.T) {
	if _, fs, err := ParseMeshd([]string{"/usr/bin/meshd", "sds", "--socket-group", "1337"}); err != nil || Flag(fs, "socket-group") != "1337" {
		t.Errorf("ParseMeshd(sds) = %v, socket-group %q", err, Flag(fs, "socket-group"))
	}
	for _, bad := range [][]string{
		{"meshd", "sds", "--no-such-flag"},
		{"meshd", "no-such-command"},
		{"meshd", "ca"},
		{"meshd"},
		{"envoy", "-c", "x"},
	} {
		if _, _, err := ParseMeshd(bad); err == nil {
			t.Errorf("ParseMeshd(%q) = nil error", bad)
		}
	}
	errs := CheckEnvNames([]string{"APPMESH_RESOURCE_ARN", "MESHD_JOIN_TOKEN", "APPNET_AGENT_HTTP_PORT", "PATH", "MESHD_NO_SUCH", "APPMESH_APP_PORTS"}, nil)
	if len(errs) != 2 {
		t.Errorf("CheckEnvNames: %v; want MESHD_NO_SUCH and APPMESH_APP_PORTS reported", errs)
	}
	if errs := CheckEnvNames([]string{"APPMESH_APP_PORTS"}, map[string]bool{"APPMESH_APP_PORTS": true}); len(errs) != 0 {
		t.Errorf("CheckEnvNames with extra: %v", errs)
	}
}

// TestDocsCommands: every meshd command in the ```sh blocks of the README,
// docs/ and the Kubernetes README parses with meshd's own command tree and
// uses only variables meshd knows; the cheap ones run (RunDocCommands).
// deploy/ecs and deploy/ec2 check their own READMEs and docs/migration.md.
func TestDocsCommands(t *testing.T) {
	for _, doc := range []string{"README.md", "docs/operations.md", "deploy/k8s/README.md"} {
		t.Run(doc, func(t *testing.T) {
			ran := RunDocCommands(t, doc)
			t.Logf("ran in-process: %v", ran)
		})
	}
}
