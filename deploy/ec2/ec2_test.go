package ec2

import (
	"bufio"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/caservice"
	"github.com/meshd/meshd/deploy/internal/deploytest"
	"github.com/meshd/meshd/internal/agent"
	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/internal/peer"
	"github.com/meshd/meshd/sds"
	"github.com/meshd/meshd/tracing"
)

// Where README.md installs the files.
const (
	envFilePath  = "/etc/meshd/meshd.env"
	iptablesPath = "/usr/libexec/meshd/meshd-iptables"
)

var units = []string{"meshd-controlplane.service", "meshd-sds.service", "meshd-agent.service", "meshd-iptables.service"}

// tool finds a program the test needs: missing, it fails the test in CI
// (.ci/run installs it) and skips it elsewhere.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: CI must install the Debian package %s", name, pkg)
	}
	t.Skipf("%s not found (Debian package %s)", name, pkg)
	return ""
}

// unit is a parsed unit file: section → key → values in order.
type unit map[string]map[string][]string

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// parseUnit reads systemd's unit syntax: sections, Key=Value, comments,
// backslash continuations. Every key may repeat.
func parseUnit(data string) (unit, error) {
	u := unit{}
	section := ""
	lines := strings.Split(data, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: %q", i+1, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u, nil
}

func loadUnit(t *testing.T, name string) unit {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return u
}

var envLine = regexp.MustCompile(`^([A-Z_][A-Z0-9_]*)=([^"'\s\\$]*)$`)

// parseEnvFile reads an EnvironmentFile in the plain subset this project
// uses (VAR=value, no quotes, no spaces, no expansions), so systemd and a
// shell read it alike.
func parseEnvFile(data string) (map[string]string, []string, error) {
	env := map[string]string{}
	var order []string
	for i, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		m := envLine.FindStringSubmatch(line)
		if m == nil {
			return nil, nil, fmt.Errorf("line %d: %q is not VAR=value", i+1, line)
		}
		if _, dup := env[m[1]]; dup {
			return nil, nil, fmt.Errorf("line %d: %s set twice", i+1, m[1])
		}
		env[m[1]] = m[2]
		order = append(order, m[1])
	}
	return env, order, nil
}

var loadEnv = sync.OnceValues(func() (map[string]string, error) {
	data, err := os.ReadFile("meshd.env")
	if err != nil {
		return nil, err
	}
	env, _, err := parseEnvFile(string(data))
	return env, err
})

func envFile(t *testing.T) map[string]string {
	t.Helper()
	env, err := loadEnv()
	if err != nil {
		t.Fatalf("meshd.env: %v", err)
	}
	return env
}

// iptablesVars are the variables meshd-iptables reads.
func iptablesVars(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("meshd-iptables")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{(APPMESH_[A-Z0-9_]+)`).FindAllStringSubmatch(string(data), -1) {
		vars[m[1]] = true
	}
	if len(vars) < 8 {
		t.Fatalf("meshd-iptables reads %v", vars)
	}
	return vars
}

var specifier = regexp.MustCompile(`%[a-zA-Z%]`)
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// commandLine expands an Exec*= line as systemd would (specifiers, then
// ${VAR} from the unit's environment) and splits it into words.
func commandLine(t *testing.T, unitName, line string, env map[string]string) []string {
	t.Helper()
	line = strings.TrimLeft(line, "-@:+!")
	line = specifier.ReplaceAllStringFunc(line, func(s string) string {
		switch s {
		case "%d":
			return "/run/credentials/" + unitName
		case "%n":
			return unitName
		case "%%":
			return "%"
		}
		t.Errorf("%s: specifier %s is not expected here", unitName, s)
		return s
	})
	line = envRef.ReplaceAllStringFunc(line, func(s string) string {
		m := envRef.FindStringSubmatch(s)
		name := m[1] + m[2]
		v, ok := env[name]
		if !ok {
			t.Errorf("%s: %s is not set by its EnvironmentFile", unitName, s)
		}
		return v
	})
	if strings.ContainsAny(line, `"'`) {
		t.Errorf("%s: quoting in %q: keep command lines plain", unitName, line)
	}
	return strings.Fields(line)
}

type parsedCmd struct {
	unit, key string
	argv      []string
	flags     func(string) string
}

// meshdCommands parses every Exec*= line of every unit.
func meshdCommands(t *testing.T) []parsedCmd {
	t.Helper()
	var out []parsedCmd
	for _, name := range units {
		u := loadUnit(t, name)
		env := map[string]string{}
		if u.get("Service", "EnvironmentFile") != "" {
			env = envFile(t)
		}
		for _, key := range []string{"ExecStartPre", "ExecStart", "ExecStartPost", "ExecStop", "ExecReload"} {
			for _, line := range u["Service"][key] {
				argv := commandLine(t, name, line, env)
				c := parsedCmd{unit: name, key: key, argv: argv}
				if deploytest.IsMeshd(argv[0]) {
					_, fs, err := deploytest.ParseMeshd(argv)
					if err != nil {
						t.Errorf("%s %s: %v", name, key, err)
						continue
					}
					c.flags = func(n string) string { return deploytest.Flag(fs, n) }
				}
				out = append(out, c)
			}
		}
	}
	return out
}

func find(cmds []parsedCmd, unitName, key string) *parsedCmd {
	for i := range cmds {
		if cmds[i].unit == unitName && cmds[i].key == key {
			return &cmds[i]
		}
	}
	return nil
}

// scratchRoot is a file-system root with the units installed as README.md
// says, systemd's own units (for the targets they reference), and the
// programs their Exec lines run.
func scratchRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	unitDir := filepath.Join(root, "etc/systemd/system")
	if err := os.MkdirAll(unitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		copyFile(t, u, filepath.Join(unitDir, u), 0o644)
	}
	var systemUnits string
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "multi-user.target")); err == nil {
			systemUnits = d
			break
		}
	}
	if systemUnits == "" {
		t.Fatal("systemd's own units (multi-user.target) are not installed")
	}
	dst := filepath.Join(root, "usr/lib/systemd/system")
	err := filepath.WalkDir(systemUnits, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(systemUnits, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	install := func(p string, data []byte) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	install("/usr/bin/meshd", []byte("#!/bin/sh\nexit 0\n"))
	script, err := os.ReadFile("meshd-iptables")
	if err != nil {
		t.Fatal(err)
	}
	install(iptablesPath, script)
	return root
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
}

// TestSystemdVerify runs systemd-analyze verify on every unit, installed in
// a scratch root; a warning fails like an error.
func TestSystemdVerify(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "systemd")
	root := scratchRoot(t)
	args := []string{"verify", "--root=" + root}
	for _, u := range units {
		args = append(args, filepath.Join(root, "etc/systemd/system", u))
	}
	out, err := exec.Command(analyze, args...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// It catches what it must: an unknown key, a bad value, a missing binary.
	for _, bad := range []struct{ from, to string }{
		{"NoNewPrivileges=yes", "NoNewPrivileges=yes\nProtectSytem=strict"},
		{"ProtectSystem=strict", "ProtectSystem=sometimes"},
		{"ExecStart=/usr/bin/meshd", "ExecStart=/usr/bin/meshdd"},
	} {
		data, _ := os.ReadFile("meshd-sds.service")
		p := filepath.Join(root, "etc/systemd/system/meshd-sds.service")
		if err := os.WriteFile(p, []byte(strings.Replace(string(data), bad.from, bad.to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", "--root="+root, p).CombinedOutput()
		if err == nil && len(strings.TrimSpace(string(out))) == 0 {
			t.Errorf("systemd-analyze verify accepted %q", bad.to)
		}
	}
}

// sysusers applies meshd.sysusers.conf to a scratch root and returns the
// users and groups it created (name → id).
func sysusers(t *testing.T) (users, groups map[string]int, primary map[string]int) {
	t.Helper()
	bin := tool(t, "systemd-sysusers", "systemd")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		if err := os.WriteFile(filepath.Join(root, "etc", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf, _ := filepath.Abs("meshd.sysusers.conf")
	if out, err := exec.Command(bin, "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	read := func(f string) [][]string {
		data, err := os.ReadFile(filepath.Join(root, "etc", f))
		if err != nil {
			t.Fatal(err)
		}
		var out [][]string
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			out = append(out, strings.Split(sc.Text(), ":"))
		}
		return out
	}
	users, groups, primary = map[string]int{}, map[string]int{}, map[string]int{}
	for _, f := range read("passwd") {
		users[f[0]], _ = strconv.Atoi(f[2])
		primary[f[0]], _ = strconv.Atoi(f[3])
		if f[6] != "/usr/sbin/nologin" {
			t.Errorf("user %s has shell %s; want /usr/sbin/nologin", f[0], f[6])
		}
	}
	for _, f := range read("group") {
		groups[f[0]], _ = strconv.Atoi(f[2])
	}
	return users, groups, primary
}

// TestUsersAndIdentities: the users the units run as exist once
// sysusers.d has run; Envoy's is App Mesh's IgnoredUID; the identities file
// gives the virtual node's identity to Envoy's user only.
func TestUsersAndIdentities(t *testing.T) {
	users, groups, primary := sysusers(t)
	env := envFile(t)
	if users["envoy"] != 1337 || groups["envoy"] != 1337 || primary["envoy"] != 1337 || strconv.Itoa(users["envoy"]) != env["APPMESH_IGNORE_UID"] {
		t.Errorf("envoy is %d:%d; want 1337:1337 = APPMESH_IGNORE_UID %s", users["envoy"], primary["envoy"], env["APPMESH_IGNORE_UID"])
	}
	if _, ok := users["meshd"]; !ok || users["meshd"] == 1337 {
		t.Errorf("user meshd: %v", users)
	}
	for _, name := range units {
		u := loadUnit(t, name)
		if user := u.get("Service", "User"); user != "" {
			if _, ok := users[user]; !ok {
				t.Errorf("%s: User=%s is not created by meshd.sysusers.conf", name, user)
			}
		}
		if g := u.get("Service", "Group"); g != "" {
			if _, ok := groups[g]; !ok {
				t.Errorf("%s: Group=%s is not created by meshd.sysusers.conf", name, g)
			}
		}
	}
	if u := loadUnit(t, "meshd-agent.service"); u.get("Service", "User") != "envoy" || u.get("Service", "Group") != "envoy" {
		t.Error("meshd-agent.service must run Envoy as envoy:envoy (IgnoredUID)")
	}

	cmds := meshdCommands(t)
	sdsCmd := find(cmds, "meshd-sds.service", "ExecStart")
	td, err := spiffeid.TrustDomainFromString(sdsCmd.flags("trust-domain"))
	if err != nil {
		t.Fatal(err)
	}
	if sdsCmd.flags("identities") != "/etc/meshd/identities.yaml" {
		t.Fatalf("meshd sds --identities %s; README.md installs identities.yaml as /etc/meshd/identities.yaml", sdsCmd.flags("identities"))
	}
	data, err := os.ReadFile("identities.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := sds.ParseIdentities(data, td)
	if err != nil {
		t.Fatal(err)
	}
	res, err := appmesh.ParseResource(env["APPMESH_RESOURCE_ARN"])
	if err != nil {
		t.Fatal(err)
	}
	want := spiffeid.RequireFromSegments(td, "mesh", res.Mesh, "virtualNode", res.Name)
	got := ids.Match(peer.Info{UID: uint32(users["envoy"]), GID: uint32(primary["envoy"]), Exe: "/usr/local/bin/envoy"})
	if len(got) != 1 || got[0].SPIFFEID != want {
		t.Fatalf("Envoy gets %v; want %s", got, want)
	}
	vn := virtualNode(t, res)
	if host := strings.ToLower(vn.Spec.ServiceDiscovery.DNS.Hostname); !slices.Equal(got[0].DNSNames, []string{host}) {
		t.Errorf("DNS SANs %v; want the service-discovery name %s", got[0].DNSNames, host)
	}
	for _, other := range []peer.Info{{UID: uint32(users["meshd"]), GID: uint32(groups["envoy"])}, {UID: 0, GID: 0}, {UID: 1000, GID: 1337}, {UID: 1337, GID: 0}} {
		if m := ids.Match(other); len(m) > 0 {
			t.Errorf("%d:%d gets %s too", other.UID, other.GID, m[0].SPIFFEID)
		}
	}
	policyData, err := os.ReadFile("ca-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cp := find(cmds, "meshd-controlplane.service", "ExecStart")
	policy, err := caservice.ParsePolicy(policyData, td)
	if err != nil {
		t.Fatal(err)
	}
	agentID := spiffeid.RequireFromSegments(td, "meshd", "agent", "ec2", res.Name, "ip-10-0-1-17")
	if err := policy.Allows(agentID, want, got[0].DNSNames); err != nil {
		t.Errorf("ca-policy.yaml: %v", err)
	}
	if cp.flags("trust-domain") != td.Name() {
		t.Errorf("trust domains: control plane %s, meshd sds %s", cp.flags("trust-domain"), td.Name())
	}
}

func virtualNode(t *testing.T, res appmesh.Resource) *model.VirtualNode {
	t.Helper()
	vn, err := deploytest.ExampleNode(res)
	if err != nil {
		t.Fatalf("APPMESH_RESOURCE_ARN: %v", err)
	}
	return vn
}

// TestUnits parses every Exec line with meshd's flag sets (after systemd's
// expansions) and checks how the units fit together and how they are
// hardened.
func TestUnits(t *testing.T) {
	cmds := meshdCommands(t)
	env := envFile(t)
	for _, c := range cmds {
		switch {
		case c.flags != nil:
		case c.argv[0] == iptablesPath:
			if len(c.argv) != 2 || (c.argv[1] != "start" && c.argv[1] != "stop") {
				t.Errorf("%s %s: %q", c.unit, c.key, c.argv)
			}
		default:
			t.Errorf("%s %s runs %s: neither meshd nor meshd-iptables", c.unit, c.key, c.argv[0])
		}
	}
	for _, name := range units {
		u := loadUnit(t, name)
		s := u["Service"]
		for key, want := range map[string]string{
			"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
			"PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes",
			"RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "SystemCallArchitectures": "native",
		} {
			if u.get("Service", key) != want {
				t.Errorf("%s: %s=%q; want %s", name, key, u.get("Service", key), want)
			}
		}
		if len(s["RestrictAddressFamilies"]) == 0 {
			t.Errorf("%s: no RestrictAddressFamilies", name)
		}
		if u.get("Install", "WantedBy") != "multi-user.target" {
			t.Errorf("%s: not WantedBy=multi-user.target", name)
		}
		switch name {
		case "meshd-iptables.service":
			// Root, with only the capabilities iptables needs.
			if caps := strings.Fields(u.get("Service", "CapabilityBoundingSet")); !slices.Equal(caps, []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}) {
				t.Errorf("%s: CapabilityBoundingSet %v", name, caps)
			}
		default:
			if u.get("Service", "User") == "" && u.get("Service", "DynamicUser") != "yes" {
				t.Errorf("%s: runs as root; set User= or DynamicUser=yes", name)
			}
			if _, ok := s["CapabilityBoundingSet"]; !ok || u.get("Service", "CapabilityBoundingSet") != "" {
				t.Errorf("%s: CapabilityBoundingSet= must be empty", name)
			}
		}
	}

	// meshd sds: its runtime directory, socket and group are Envoy's way in.
	sdsU := loadUnit(t, "meshd-sds.service")
	sdsCmd := find(cmds, "meshd-sds.service", "ExecStart")
	if sdsU.get("Service", "RuntimeDirectory") != "meshd" || sdsU.get("Service", "RuntimeDirectoryMode") != "0750" {
		t.Error("meshd-sds.service: RuntimeDirectory=meshd with RuntimeDirectoryMode=0750 expected")
	}
	if path.Dir(sdsCmd.flags("socket")) != "/run/meshd" || sdsCmd.flags("socket") != env["APPMESH_SDS_SOCKET_PATH"] {
		t.Errorf("meshd sds --socket %s, APPMESH_SDS_SOCKET_PATH %s: want the same path in /run/meshd", sdsCmd.flags("socket"), env["APPMESH_SDS_SOCKET_PATH"])
	}
	agentU := loadUnit(t, "meshd-agent.service")
	if g := sdsU.get("Service", "Group"); g != sdsCmd.flags("socket-group") || g != agentU.get("Service", "Group") {
		t.Errorf("meshd sds runs with group %s and gives the socket to %s; Envoy's group is %s: they must agree (RuntimeDirectory gets the service's group)", g, sdsCmd.flags("socket-group"), agentU.get("Service", "Group"))
	}
	cred, credPath, _ := strings.Cut(sdsU.get("Service", "LoadCredential"), ":")
	if sdsCmd.flags("join-token-file") != "/run/credentials/meshd-sds.service/"+cred || credPath == "" {
		t.Errorf("--join-token-file %s is not the LoadCredential %s", sdsCmd.flags("join-token-file"), cred)
	}

	// The control plane: state, names and ports the hosts use.
	cpU := loadUnit(t, "meshd-controlplane.service")
	cp := find(cmds, "meshd-controlplane.service", "ExecStart")
	if cp.flags("state-dir") != "/var/lib/"+cpU.get("Service", "StateDirectory") || cpU.get("Service", "StateDirectoryMode") != "0700" {
		t.Errorf("--state-dir %s must be the StateDirectory, mode 0700 (meshd refuses a looser one)", cp.flags("state-dir"))
	}
	_, xdsPort, _ := net.SplitHostPort(cp.flags("xds-listen"))
	_, caPort, _ := net.SplitHostPort(cp.flags("ca-listen"))
	host := cp.flags("ca-dns-name")
	if env["MESHD_XDS_ADDRESS"] != net.JoinHostPort(host, xdsPort) || sdsCmd.flags("ca-service") != net.JoinHostPort(host, caPort) {
		t.Errorf("MESHD_XDS_ADDRESS %s and meshd sds --ca-service %s must reach the control plane %s (xDS %s, CA %s)", env["MESHD_XDS_ADDRESS"], sdsCmd.flags("ca-service"), host, xdsPort, caPort)
	}
	if !slices.Contains(strings.Split(env["APPMESH_EGRESS_IGNORED_PORTS"], ","), caPort) {
		t.Errorf("APPMESH_EGRESS_IGNORED_PORTS %s must let meshd sds reach the CA service on %s directly", env["APPMESH_EGRESS_IGNORED_PORTS"], caPort)
	}
	if h, _, _ := net.SplitHostPort(cp.flags("metrics-listen")); h != "127.0.0.1" {
		t.Errorf("the control plane's /debug/nodes is on %s; keep it on loopback", cp.flags("metrics-listen"))
	}

	// Envoy under meshd agent: started means healthy; stopping drains.
	if c := find(cmds, "meshd-agent.service", "ExecStartPost"); c == nil || c.flags == nil || c.flags("check-ready") != "true" {
		t.Error("meshd-agent.service: ExecStartPost=meshd agent --check-ready expected")
	}
	if agentU.get("Service", "KillMode") != "mixed" {
		t.Error("meshd-agent.service: KillMode=mixed, so SIGTERM reaches meshd agent (which drains) and not Envoy")
	}
	drain, _ := strconv.Atoi(env["LISTENER_DRAIN_WAIT_TIME_S"])
	if stop := strings.TrimSuffix(agentU.get("Service", "TimeoutStopSec"), "s"); atoi(stop) < drain+3+5 {
		t.Errorf("meshd-agent.service: TimeoutStopSec %s leaves no time to drain (%d s + 3 s)", stop, drain)
	}
	if c := find(cmds, "meshd-agent.service", "ExecStart"); c.flags("envoy-path") == "" {
		t.Error("meshd agent: say where Envoy is (--envoy-path)")
	}
	ipU := loadUnit(t, "meshd-iptables.service")
	for _, k := range []string{"BindsTo", "After"} {
		if ipU.get("Unit", k) != "meshd-agent.service" {
			t.Errorf("meshd-iptables.service: %s=meshd-agent.service expected (no redirection to a dead Envoy)", k)
		}
	}
	for _, n := range []string{"meshd-agent.service", "meshd-iptables.service"} {
		if loadUnit(t, n).get("Service", "EnvironmentFile") != envFilePath {
			t.Errorf("%s: EnvironmentFile=%s expected", n, envFilePath)
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// TestEnvironmentFile: every variable is one meshd or meshd-iptables
// reads, the bootstrap renders from it and meshd agent accepts it, and the
// application ports are the virtual node's.
func TestEnvironmentFile(t *testing.T) {
	env := envFile(t)
	var names []string
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	ipt := iptablesVars(t)
	for _, err := range deploytest.CheckEnvNames(names, ipt) {
		t.Error(err)
	}
	for _, n := range names {
		if _, ok := deploytest.KnownEnv()[n]; !ok && !ipt[n] {
			t.Errorf("%s is read by nobody", n)
		}
	}
	_, warnings, err := deploytest.RenderBootstrap(env)
	if err != nil {
		t.Fatalf("the bootstrap does not render from meshd.env: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("bootstrap: %s", w)
	}
	if _, warnings, err := agent.LoadConfig(tracing.MapLookup(env)); err != nil || len(warnings) > 0 {
		t.Errorf("meshd agent: %v %q", err, warnings)
	}
	res, err := appmesh.ParseResource(env["APPMESH_RESOURCE_ARN"])
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, l := range virtualNode(t, res).Spec.Listeners {
		ports = append(ports, strconv.FormatInt(*l.PortMapping.Port, 10))
	}
	if strings.Join(ports, ",") != env["APPMESH_APP_PORTS"] {
		t.Errorf("APPMESH_APP_PORTS %s; the virtual node listens on %v", env["APPMESH_APP_PORTS"], ports)
	}
	for _, bad := range []string{"A=\"quoted\"", "A=two words", "lower=1", "A=$B", "A=1\nA=2"} {
		if _, _, err := parseEnvFile(bad); err == nil {
			t.Errorf("parseEnvFile(%q) = nil error", bad)
		}
	}
}

// TestReadmeCommands exercises the meshd commands of deploy/ec2/README.md.
func TestReadmeCommands(t *testing.T) {
	deploytest.CheckLinks(t, "deploy/ec2/README.md")
	ran := deploytest.RunDocCommands(t, "deploy/ec2/README.md")
	for _, want := range []string{"ca token create", "ca show"} {
		if ran[want] == 0 {
			t.Errorf("README.md: no `meshd %s` ran", want)
		}
	}
}
