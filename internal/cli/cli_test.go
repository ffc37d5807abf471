package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/tracing"
)

var update = flag.Bool("update", false, "rewrite golden files (docs/configuration.md's generated section)")

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestHelpDocumentsEveryFlag: `meshd <cmd> --help` lists every flag of the
// command, and `meshd --help` every command.
func TestHelpDocumentsEveryFlag(t *testing.T) {
	code, out, _ := runCLI(t, "--help")
	if code != 0 {
		t.Fatalf("meshd --help exited %d", code)
	}
	for _, c := range Root().Subs {
		if !strings.Contains(out, "  "+c.Name+" ") {
			t.Errorf("meshd --help does not list %q", c.Name)
		}
	}
	n := 0
	Walk(func(path []string, c *Command, fs *flag.FlagSet) {
		n++
		code, out, _ := runCLI(t, append(path[1:], "--help")...)
		if code != 0 {
			t.Errorf("%s --help exited %d", strings.Join(path, " "), code)
		}
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(out, "--"+f.Name) {
				t.Errorf("%s --help does not document --%s", strings.Join(path, " "), f.Name)
			}
		})
	})
	if n < 5 {
		t.Fatalf("walked only %d commands", n)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"sds", "--nosuch"}, 2, "flag provided but not defined"},
		{[]string{"sds", "extra"}, 2, "unexpected arguments"},
		{[]string{"sds", "--trust-domain", "Bad Domain"}, 2, "--trust-domain"},
		{[]string{"sds", "--ca-key-type", "dsa"}, 2, "unknown key type"},
		{[]string{"ca"}, 2, "Commands:"},
		{[]string{"sds", "--log-level", "loud"}, 2, "--log-level"},
	}
	for _, tc := range tests {
		code, _, errOut := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("meshd %v: exit %d, stderr %q; want exit %d containing %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}

func TestCACommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	code, out, errOut := runCLI(t, "ca", "init", "--state-dir", dir, "--trust-domain", "example.org", "--ca-ttl", "240h")
	if code != 0 || !strings.Contains(out, "active") || !strings.Contains(out, "spiffe://example.org") {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	fi, err := os.Stat(filepath.Join(dir, "ca.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.json: %v %v", fi, err)
	}
	code, out, _ = runCLI(t, "ca", "show", "--state-dir", dir, "--pem")
	if code != 0 || strings.Count(out, "BEGIN CERTIFICATE") != 1 {
		t.Fatalf("show --pem before rotate: %s", out)
	}
	code, out, errOut = runCLI(t, "ca", "rotate", "--state-dir", dir, "--activate-in", "1h")
	if code != 0 || !strings.Contains(out, "prepared") {
		t.Fatalf("rotate: %d %s %s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "ca", "show", "--state-dir", dir, "--pem")
	if code != 0 || strings.Count(out, "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("show --pem after rotate: %s", out)
	}
	code, out, _ = runCLI(t, "ca", "rotate", "--state-dir", dir, "--now")
	if code != 0 || !strings.Contains(out, "signs from") {
		t.Fatalf("rotate --now: %s", out)
	}
	code, _, errOut = runCLI(t, "ca", "show", "--state-dir", filepath.Join(t.TempDir(), "none"))
	if code != 1 || !strings.Contains(errOut, "no CA state") {
		t.Fatalf("show on empty dir: %d %s", code, errOut)
	}
}

// TestSDSRefusesBadCA: a world-readable CA key or a corrupted state dir
// stops `meshd sds` with a message naming the file.
func TestSDSRefusesBadCA(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	// Make a valid operator CA from meshd's own state, then expose its key.
	state := filepath.Join(dir, "state")
	if code, _, e := runCLI(t, "ca", "init", "--state-dir", state); code != 0 {
		t.Fatal(e)
	}
	data, _ := os.ReadFile(filepath.Join(state, "ca.json"))
	certPEM := regexp.MustCompile(`"certificate": "([^"]+)"`).FindSubmatch(data)[1]
	keyPEM := regexp.MustCompile(`"privateKey": "([^"]+)"`).FindSubmatch(data)[1]
	unescape := func(b []byte) []byte { return []byte(strings.ReplaceAll(string(b), `\n`, "\n")) }
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	os.WriteFile(certFile, unescape(certPEM), 0o644)
	os.WriteFile(keyFile, unescape(keyPEM), 0o644)
	code, _, errOut := runCLI(t, "sds", "--socket", sock, "--metrics-listen", "", "--ca-cert", certFile, "--ca-key", keyFile)
	if code != 1 || !strings.Contains(errOut, keyFile) || !strings.Contains(errOut, "world-accessible") {
		t.Fatalf("world-readable key: %d %s", code, errOut)
	}
	os.Chmod(keyFile, 0o000)
	if os.Geteuid() != 0 { // root reads anything
		code, _, errOut = runCLI(t, "sds", "--socket", sock, "--metrics-listen", "", "--ca-cert", certFile, "--ca-key", keyFile)
		if code != 1 || !strings.Contains(errOut, keyFile) {
			t.Fatalf("unreadable key: %d %s", code, errOut)
		}
	}
	os.WriteFile(filepath.Join(state, "ca.json"), []byte(`{"version":1,"trustDomain":`), 0o600)
	code, _, errOut = runCLI(t, "sds", "--socket", sock, "--metrics-listen", "", "--state-dir", state)
	if code != 1 || !strings.Contains(errOut, "corrupted") || !strings.Contains(errOut, filepath.Join(state, "ca.json")) {
		t.Fatalf("corrupted state: %d %s", code, errOut)
	}
	code, _, errOut = runCLI(t, "sds", "--socket", "/tmp/"+strings.Repeat("s", 110), "--metrics-listen", "", "--state-dir", filepath.Join(dir, "st2"))
	if code != 1 || !strings.Contains(errOut, "107 bytes") {
		t.Fatalf("long socket path: %d %s", code, errOut)
	}
}

// TestConfigurationDoc keeps docs/configuration.md's flag and environment
// references equal to the code (go test ./internal/cli -run
// TestConfigurationDoc -update rewrites them).
func TestConfigurationDoc(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "configuration.md")
	var flags bytes.Buffer
	Walk(func(p []string, c *Command, fs *flag.FlagSet) {
		fmt.Fprintf(&flags, "### `%s`\n\n%s\n\n| flag | default | meaning |\n|---|---|---|\n", strings.Join(p, " "), c.Summary)
		for _, f := range Flags(fs) {
			arg := ""
			if f.Arg != "" {
				arg = " " + f.Arg
			}
			def := f.Default
			if def != "" {
				def = "`" + strings.Trim(def, `"`) + "`"
			}
			fmt.Fprintf(&flags, "| `--%s%s` | %s | %s |\n", f.Name, arg, def, cell(f.Usage))
		}
		flags.WriteString("\n")
	})
	var env bytes.Buffer
	group := ""
	for _, v := range tracing.Variables {
		if v.Group != group {
			if group != "" {
				env.WriteString("\n")
			}
			group = v.Group
			fmt.Fprintf(&env, "#### %s\n\n| variable | default | allowed | meaning |\n|---|---|---|---|\n", group)
		}
		name := "`" + v.Name + "`"
		if v.Meshd {
			name += " (meshd)"
		}
		fmt.Fprintf(&env, "| %s | %s | %s | %s |\n", name, cell(v.Default), cell(v.Allowed), cell(v.Meaning))
	}
	env.WriteString("\n")
	checkGenerated(t, path, "flags", flags.Bytes())
	checkGenerated(t, path, "bootstrap-env", env.Bytes())
}

// cell escapes a Markdown table cell: pipes, and angle brackets that would
// read as HTML tags.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

// checkGenerated compares (or with -update rewrites) the section of path
// between <!-- BEGIN GENERATED: name --> and <!-- END GENERATED: name -->.
func checkGenerated(t *testing.T, path, name string, gen []byte) {
	t.Helper()
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := "<!-- BEGIN GENERATED: "+name+" -->\n", "<!-- END GENERATED: "+name+" -->\n"
	i, j := bytes.Index(old, []byte(begin)), bytes.Index(old, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers of the generated section %s", path, name)
	}
	want := append(append(append([]byte{}, old[:i+len(begin)]...), gen...), old[j:]...)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(old, want) {
		t.Fatalf("%s: section %s is out of date with the code; run: go test ./internal/cli -run TestConfigurationDoc -update", path, name)
	}
}

// readmeCommand returns the words of the one-line shell block that follows
// <!-- marker --> in README.md.
func readmeCommand(t *testing.T, marker string) []string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(marker) + " -->\\s*```sh\\n\\s*([^\\n]+)\\n")
	m := re.FindSubmatch(readme)
	if m == nil {
		t.Fatalf("README.md has no %s", marker)
	}
	return strings.Fields(string(m[1]))
}

// TestREADME runs the README's quick-start commands as written (in a
// temporary directory, with meshd in-process), and checks that .ci/run runs
// the README's test command.
func TestREADME(t *testing.T) {
	block := func(marker string) []string { return readmeCommand(t, marker) }
	runCmd, clientCmd, testCmd := block("sds-command"), block("client-command"), block("test-command")
	if strings.Join(testCmd, " ") != "go test -race ./..." {
		t.Fatalf("test command %q: .ci/run and the Makefile expect go test -race ./...", testCmd)
	}
	ci, err := os.ReadFile(filepath.Join("..", "..", ".ci", "run"))
	if err != nil || !bytes.Contains(ci, []byte("test-command")) {
		t.Fatalf(".ci/run does not run the README's test command: %v", err)
	}
	for _, c := range [][]string{runCmd, clientCmd} {
		if strings.Join(c[:3], " ") != "go run ./cmd/meshd" {
			t.Fatalf("README command %q does not start with go run ./cmd/meshd", c)
		}
	}
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var serverErr bytes.Buffer
	go func() {
		args := append(append([]string{}, runCmd[3:]...), "--metrics-listen", "127.0.0.1:0")
		done <- Main(ctx, args, &bytes.Buffer{}, &serverErr)
	}()
	sock := ""
	for i, a := range runCmd {
		if a == "--socket" {
			sock = runCmd[i+1]
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("meshd sds did not create %s:\n%s", sock, serverErr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, out, errOut := runCLI(t, clientCmd[3:]...)
	if code != 0 || !strings.Contains(out, "default: tls_certificate spiffe://meshd.local/dev/uid/") || !strings.Contains(out, "ROOTCA: validation_context") {
		t.Fatalf("client command: exit %d\n%s\n%s", code, out, errOut)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("meshd sds exited %d on shutdown:\n%s", code, serverErr.String())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		path    string
		wantErr string
	}{
		{[]string{"sds", "--socket", "/run/meshd/sds.sock", "--socket-group", "1337"}, "meshd sds", ""},
		{[]string{"ca", "serve", "--listen", "0.0.0.0:15012"}, "meshd ca serve", ""},
		{[]string{"sds", "--no-such-flag"}, "", "flag provided but not defined"},
		{[]string{"ca"}, "", "not a runnable"},
		{[]string{"nosuch"}, "", "not a runnable"},
	} {
		path, _, err := Parse(tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) = %v, want error containing %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(path, " ") != tc.path {
			t.Errorf("Parse(%q) = %q, %v; want %q", tc.args, path, err, tc.path)
		}
	}
}
