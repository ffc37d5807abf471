package ec2

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeIptables keeps a nat table per command (iptables, ip6tables) in
// $FAKE_IPT_STATE, with iptables' semantics for what meshd-iptables uses:
// -N fails on an existing chain, -X on a missing or referenced one, -A and
// -C need the chain (and a jump target) to exist, -D removes the first equal
// rule or fails.
const fakeIptables = `#!/bin/bash
set -u
state="$FAKE_IPT_STATE/$(basename "$0")"
touch "$state"
args=(); table=filter; waited=0
while [ $# -gt 0 ]; do
  case "$1" in
    -w) waited=1; shift ;;
    -t) table=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ "$table" = nat ] || { echo "table $table" >&2; exit 2; }
[ $waited = 1 ] || { echo "without -w: races with other iptables users" >&2; exit 2; }
op=${args[0]}; chain=${args[1]:-}; rest="${args[*]:2}"
builtin() { case "$1" in PREROUTING|INPUT|OUTPUT|POSTROUTING) return 0 ;; esac; return 1; }
has_chain() { builtin "$1" || grep -qx "chain $1" "$state"; }
case "$op" in
  -N) has_chain "$chain" && exit 1; echo "chain $chain" >> "$state" ;;
  -X) has_chain "$chain" || exit 1
      grep -q "^rule $chain " "$state" && exit 1
      grep -q -- "-j $chain\$" "$state" && exit 1
      grep -vx "chain $chain" "$state" > "$state.new"; mv "$state.new" "$state" ;;
  -F) has_chain "$chain" || exit 1
      grep -v "^rule $chain " "$state" > "$state.new"; mv "$state.new" "$state" ;;
  -A) has_chain "$chain" || exit 1
      target=${args[-1]}
      case "$target" in APPMESH_*) has_chain "$target" || exit 1 ;; esac
      echo "rule $chain $rest" >> "$state" ;;
  -C) grep -qxF "rule $chain $rest" "$state" ;;
  -D) n=$(grep -nxF "rule $chain $rest" "$state" | head -1 | cut -d: -f1)
      [ -n "$n" ] || exit 1
      sed -i "${n}d" "$state" ;;
  -L) cat "$state" ;;
  *) echo "unexpected $op" >&2; exit 2 ;;
esac
`

type iptablesRun struct {
	t     *testing.T
	state string
	path  string
}

func newIptablesRun(t *testing.T) *iptablesRun {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	state := filepath.Join(dir, "state")
	for _, d := range []string{bin, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"iptables", "ip6tables"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(fakeIptables), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &iptablesRun{t: t, state: state, path: bin + ":" + os.Getenv("PATH")}
}

func (r *iptablesRun) run(env map[string]string, arg string) (string, error) {
	cmd := exec.Command("bash", "meshd-iptables", arg)
	cmd.Env = []string{"PATH=" + r.path, "FAKE_IPT_STATE=" + r.state}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *iptablesRun) table(name string) []string {
	data, err := os.ReadFile(filepath.Join(r.state, name))
	if err != nil && !os.IsNotExist(err) {
		r.t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(data)), " ", "\x00"))
}

func rules(lines []string) []string {
	var out []string
	for _, l := range lines {
		out = append(out, strings.ReplaceAll(l, "\x00", " "))
	}
	return out
}

// TestIptablesScript runs meshd-iptables with meshd.env against a stand-in
// iptables and checks the nat rules App Mesh's redirection needs, that
// start is idempotent, that stop removes everything, and that bad input is
// refused before anything is changed.
func TestIptablesScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	env := envFile(t)
	r := newIptablesRun(t)
	if out, err := r.run(env, "start"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	want := []string{
		"chain APPMESH_EGRESS",
		"rule APPMESH_EGRESS -m owner --uid-owner 1337 -j RETURN",
		"rule APPMESH_EGRESS -p tcp --dport 22 -j RETURN",
		"rule APPMESH_EGRESS -p tcp --dport 15012 -j RETURN",
		"rule APPMESH_EGRESS -p tcp -d 169.254.169.254 -j RETURN",
		"rule APPMESH_EGRESS -p tcp -d 169.254.170.2 -j RETURN",
		"rule APPMESH_EGRESS -p tcp -j REDIRECT --to-ports 15001",
		"rule OUTPUT -p tcp -m addrtype ! --dst-type LOCAL -j APPMESH_EGRESS",
		"chain APPMESH_INGRESS",
		"rule APPMESH_INGRESS -p tcp -m multiport --dports 80 -j REDIRECT --to-ports 15000",
		"rule PREROUTING -p tcp -m addrtype ! --src-type LOCAL -j APPMESH_INGRESS",
	}
	got := rules(r.table("iptables"))
	if !slices.Equal(got, want) {
		t.Errorf("nat table after start:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if v6 := r.table("ip6tables"); len(v6) != 0 {
		t.Errorf("ip6tables changed without APPMESH_ENABLE_IPV6: %q", rules(v6))
	}
	if out, err := r.run(env, "start"); err != nil || !slices.Equal(rules(r.table("iptables")), want) {
		t.Errorf("start twice: %v\n%s\n%s", err, out, strings.Join(rules(r.table("iptables")), "\n"))
	}
	if out, err := r.run(env, "stop"); err != nil || len(r.table("iptables")) != 0 {
		t.Errorf("stop: %v\n%s\nleft: %q", err, out, rules(r.table("iptables")))
	}
	if out, err := r.run(env, "stop"); err != nil {
		t.Errorf("stop when stopped: %v\n%s", err, out)
	}

	// IPv6: the same rules in ip6tables, each address in its family.
	v6env := map[string]string{}
	for k, v := range env {
		v6env[k] = v
	}
	v6env["APPMESH_ENABLE_IPV6"] = "1"
	v6env["APPMESH_EGRESS_IGNORED_IP"] += ",fd00:ec2::254"
	if out, err := r.run(v6env, "start"); err != nil {
		t.Fatalf("start with IPv6: %v\n%s", err, out)
	}
	v4, v6 := strings.Join(rules(r.table("iptables")), "\n"), strings.Join(rules(r.table("ip6tables")), "\n")
	if strings.Contains(v4, "fd00:ec2::254") || !strings.Contains(v6, "-d fd00:ec2::254 -j RETURN") || strings.Contains(v6, "169.254.169.254") ||
		!strings.Contains(v6, "--uid-owner 1337 -j RETURN") || !strings.Contains(v6, "-j REDIRECT --to-ports 15001") {
		t.Errorf("IPv6 rules:\niptables:\n%s\nip6tables:\n%s", v4, v6)
	}
	if out, err := r.run(v6env, "stop"); err != nil || len(r.table("iptables"))+len(r.table("ip6tables")) != 0 {
		t.Errorf("stop with IPv6: %v\n%s", err, out)
	}

	// Bad input changes nothing.
	for name, change := range map[string][2]string{
		"no ignored user":    {"APPMESH_IGNORE_UID", ""},
		"a port that is not": {"APPMESH_APP_PORTS", "80,http"},
		"port out of range":  {"APPMESH_ENVOY_EGRESS_PORT", "70000"},
		"ignored IP garbage": {"APPMESH_EGRESS_IGNORED_IP", "169.254.169.254,metadata"},
		"uid not numeric":    {"APPMESH_IGNORE_UID", "envoy"},
	} {
		bad := map[string]string{}
		for k, v := range env {
			bad[k] = v
		}
		bad[change[0]] = change[1]
		if out, err := r.run(bad, "start"); err == nil || len(r.table("iptables")) != 0 {
			t.Errorf("%s: start %v\n%s\ntable: %q", name, err, out, rules(r.table("iptables")))
		}
	}
	if _, err := r.run(env, "frobnicate"); err == nil {
		t.Error("an unknown command was accepted")
	}
}

// TestShellcheck lints meshd-iptables.
func TestShellcheck(t *testing.T) {
	sc := tool(t, "shellcheck", "shellcheck")
	if out, err := exec.Command(sc, "--severity=style", "meshd-iptables").CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
