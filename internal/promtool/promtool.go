// Package promtool runs Prometheus's own checker on an exposition in tests.
package promtool

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// Check runs `promtool check metrics` (Debian package prometheus; .ci/run
// installs it) on exposition. Exit 1 is a parse error and fails the test;
// exit 3 is lint only: App Mesh's CamelCase names and counters without
// _total draw lint findings by design. Without promtool the test fails
// under CI and is skipped elsewhere.
func Check(t testing.TB, exposition []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("promtool not installed; apt-get install prometheus")
	}
	cmd := exec.Command(path, "check", "metrics")
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
