package fakeenvoy

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// Build compiles cmd/fake-envoy once per test binary into a temporary
// directory and returns the binary's path. It uses the go command of the
// running toolchain and the module this file belongs to.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fake-envoy-")
		if err != nil {
			buildErr = err
			return
		}
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "cmd", "fake-envoy")
		out := filepath.Join(dir, "fake-envoy")
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		cmd := exec.Command(goBin, "build", "-o", out, ".")
		cmd.Dir = src
		buildOut, buildErr = cmd.CombinedOutput()
		buildPath = out
	})
	if buildErr != nil {
		t.Fatalf("build fake-envoy: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}
