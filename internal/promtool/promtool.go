// Package promtool runs Prometheus's own checker on an exposition in tests.
package promtool

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Check runs `promtool check metrics` (Debian package prometheus; .ci/run
// installs it) on exposition. Exit 1 is a parse error and fails the test;
// exit 3 is lint only: App Mesh's CamelCase names and counters without
// _total draw lint findings by design. Without promtool the test fails
// under CI and is skipped elsewhere.
func Check(t testing.TB, exposition []byte) {
	t.Helper()
	cmd := exec.Command(lookPath(t), "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 3:
		t.Logf("promtool lint (expected for App Mesh names):\n%s", out)
	default:
		t.Fatalf("promtool check metrics: %v\n%s\n--- input:\n%s", err, out, exposition)
	}
}

// lookPath finds promtool; without it the test fails under CI and is
// skipped elsewhere.
func lookPath(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("promtool not installed; apt-get install prometheus")
	}
	return path
}

// CheckRules runs `promtool check rules` on a rules file: every expression
// must be valid PromQL.
func CheckRules(t testing.TB, rules []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(lookPath(t), "check", "rules", f).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n--- input:\n%s", err, out, rules)
	}
}
