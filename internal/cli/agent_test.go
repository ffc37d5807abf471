package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/agent"
	"github.com/meshd/meshd/internal/envoyadmin"
)

// TestAgentConfigurationDoc keeps docs/configuration.md's table of the
// agent's environment equal to agent.Variables (-update rewrites it).
func TestAgentConfigurationDoc(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("| variable | default | allowed | meaning |\n|---|---|---|---|\n")
	for _, v := range agent.Variables {
		names := strings.Split(v.Name, ", ")
		for i, n := range names {
			names[i] = "`" + n + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", strings.Join(names, ", "), cell(v.Default), cell(v.Allowed), cell(v.Meaning))
	}
	b.WriteString("\n")
	checkGenerated(t, filepath.Join("..", "..", "docs", "configuration.md"), "agent-env", b.Bytes())
}

func TestAgentBadEnvironment(t *testing.T) {
	t.Setenv("ENVOY_LOG_LEVEL", "loud")
	t.Setenv("LISTENER_DRAIN_WAIT_TIME_S", "soon")
	code, _, stderr := runCLI(t, "agent", "--envoy-path", "/nonexistent")
	if code != 2 || !strings.Contains(stderr, `meshd agent: ENVOY_LOG_LEVEL="loud": must be one of`) || !strings.Contains(stderr, `meshd agent: LISTENER_DRAIN_WAIT_TIME_S="soon"`) {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

func TestAgentCheckReadyNoAgent(t *testing.T) {
	t.Setenv("APPNET_AGENT_ADMIN_MODE", "uds")
	t.Setenv("APPNET_AGENT_ADMIN_UDS_PATH", filepath.Join(t.TempDir(), "none.sock"))
	code, _, stderr := runCLI(t, "agent", "--check-ready", "--timeout", "1ms")
	if code != 1 || !strings.Contains(stderr, "envoy is not healthy: timed out after 1ms") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	code, _, stderr = runCLI(t, "agent", "--check-ready", "--", "--base-id", "1")
	if code != 2 || !strings.Contains(stderr, "--check-ready takes no Envoy arguments") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// fakeEnvoyScript writes a shell script standing in for Envoy.
func fakeEnvoyScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "envoy")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func agentEnv(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agc") // short: sun_path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	boot := filepath.Join(dir, "envoy.yaml")
	os.WriteFile(boot, []byte("admin: {}\n"), 0o600)
	sock := filepath.Join(dir, "admin.sock")
	t.Setenv("ENVOY_CONFIG_FILE", boot)
	t.Setenv("APPNET_AGENT_ADMIN_MODE", "uds")
	t.Setenv("APPNET_AGENT_ADMIN_UDS_PATH", sock)
	t.Setenv("ENVOY_ADMIN_ACCESS_PORT", "1") // nobody serves Envoy's admin: drains fail fast
	return sock
}

// TestAgentRuns wires the whole command: the API answers over its socket
// while a fake Envoy runs, and a signal stops both with exit 0.
func TestAgentRuns(t *testing.T) {
	sock := agentEnv(t)
	argv := filepath.Join(t.TempDir(), "argv")
	envoy := fakeEnvoyScript(t, `echo "$@" > `+argv+`; exec sleep 60`)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- Main(ctx, []string{"agent", "--envoy-path", envoy, "--metrics-listen", "", "--", "--base-id", "7"}, &bytes.Buffer{}, &syncWriter{w: &stderr})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(argv)
		if _, err := os.Stat(sock); err == nil && len(b) > 0 {
			if got, want := strings.TrimSpace(string(b)), "-c "+os.Getenv("ENVOY_CONFIG_FILE")+" -l info --drain-time-s 20 --disable-hot-restart --skip-deprecated-logs --base-id 7"; got != want {
				t.Fatalf("envoy argv %q, want %q", got, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := envoyadmin.New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdle()
	body, err := c.Get(t.Context(), "/status", nil)
	if err != nil || !strings.Contains(string(body), `"envoyRestartCount": "0"`) {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	code, out, _ := runCLI(t, "agent", "--check-ready", "--timeout", "1ms")
	if code != 1 || out != "" {
		t.Fatalf("check-ready with an unreachable envoy admin: %d %q", code, out)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop")
	}
}

func TestAgentExitsNonZeroWhenEnvoyKeepsDying(t *testing.T) {
	agentEnv(t)
	t.Setenv("APPNET_ENVOY_RESTART_COUNT", "1")
	envoy := fakeEnvoyScript(t, "exit 3")
	code, _, stderr := runCLI(t, "agent", "--envoy-path", envoy, "--metrics-listen", "")
	if code != 1 || !strings.Contains(stderr, "APPNET_ENVOY_RESTART_COUNT=1") || !strings.Contains(stderr, "exit code 3") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
