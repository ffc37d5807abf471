package agent

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestVerdict(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { ts := now.Add(-d); return &ts }
	const timeout = time.Hour
	tests := []struct {
		name string
		s    HealthStatus
		want string
	}{
		{"live connected", HealthStatus{EnvoyState: Live, ManagementServerConnectionStatus: Connected, InitialConfigUpdateStatus: UpdateSuccessful}, Healthy},
		{"live connected, initial status unknown", HealthStatus{EnvoyState: Live, ManagementServerConnectionStatus: Connected}, Healthy},
		{"initial config failed", HealthStatus{EnvoyState: Live, ManagementServerConnectionStatus: Connected, InitialConfigUpdateStatus: UpdateFailed}, Unhealthy},
		{"not live", HealthStatus{EnvoyState: "PRE_INITIALIZING", ManagementServerConnectionStatus: Connected}, Unhealthy},
		{"draining", HealthStatus{EnvoyState: "DRAINING", ManagementServerConnectionStatus: Connected}, Unhealthy},
		{"unreachable", HealthStatus{EnvoyState: Unreachable, ManagementServerConnectionStatus: Connected}, Unhealthy},
		{"disconnected recently", HealthStatus{EnvoyState: Live, ManagementServerConnectionStatus: NotConnected, ManagementServerDisconnectedTimestamp: ago(time.Hour - time.Second)}, Healthy},
		{"disconnected too long", HealthStatus{EnvoyState: Live, ManagementServerConnectionStatus: NotConnected, ManagementServerDisconnectedTimestamp: ago(time.Hour)}, Unhealthy},
		{"disconnected without a time (App Mesh crashed here)", HealthStatus{EnvoyState: Live, ManagementServerConnectionStatus: NotConnected}, Unhealthy},
		{"connection unknown", HealthStatus{EnvoyState: Live}, Unhealthy},
	}
	for _, tc := range tests {
		if got := Verdict(tc.s, now, timeout); got != tc.want {
			t.Errorf("%s: Verdict = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestStatusJSON pins the /status body to App Mesh's bytes.
func TestStatusJSON(t *testing.T) {
	ts := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	full := HealthStatus{
		HealthStatus: Healthy, AgentUptime: "3600s", EnvoyPid: "15", EnvoyState: Live, EnvoyRestartCount: "0",
		ManagementServerConnectionStatus: NotConnected, ManagementServerDisconnectedTimestamp: &ts,
		EnvoyReadinessState: Initialized, InitialConfigUpdateStatus: UpdateSuccessful,
	}
	want := `{
  "healthStatus": "HEALTHY",
  "agentUptime": "3600s",
  "envoyPid": "15",
  "envoyState": "LIVE",
  "envoyRestartCount": "0",
  "managementServerConnectionStatus": "NOT_CONNECTED",
  "managementServerDisconnectedTimestamp": "2026-06-01T12:00:00Z",
  "envoyReadinessState": "INITIALIZED",
  "initialConfigUpdateStatus": "UPDATE_SUCCESSFUL"
}`
	if got := string(full.Marshal()); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	initial := HealthStatus{AgentUptime: "0s", EnvoyPid: "0", EnvoyRestartCount: "0", EnvoyReadinessState: NotInitialized}
	want = `{
  "healthStatus": "",
  "agentUptime": "0s",
  "envoyPid": "0",
  "envoyState": "",
  "envoyRestartCount": "0",
  "envoyReadinessState": "NOT_INITIALIZED"
}`
	if got := string(initial.Marshal()); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func newTestHealth(t *testing.T, admin EnvoyAdmin, proc *Process) *Health {
	t.Helper()
	cfg := defaults()
	cfg.DisconnectedTimeout = time.Hour
	h, err := NewHealth(HealthConfig{Admin: admin, Process: proc, Config: cfg, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHealthPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fe := newFakeEnvoy()
		admin := &handlerAdmin{h: fe}
		proc := &Process{}
		proc.started(0)
		proc.running(42)
		h := newTestHealth(t, admin, proc)
		ctx := context.Background()

		fe.set(func(f *fakeEnvoy) { f.ready = "PRE_INITIALIZING"; f.connected = 0 })
		h.Poll(ctx)
		s := h.Status()
		if s.HealthStatus != Unhealthy || s.EnvoyState != "PRE_INITIALIZING" || s.EnvoyPid != "42" || s.EnvoyReadinessState != NotInitialized ||
			s.ManagementServerConnectionStatus != NotConnected || s.ManagementServerDisconnectedTimestamp == nil {
			t.Fatalf("pre-initializing: %+v", s)
		}
		if h.Ready() {
			t.Fatal("Ready while pre-initializing")
		}

		time.Sleep(90 * time.Second)
		fe.set(func(f *fakeEnvoy) { f.ready = Live; f.connected = 1 })
		h.Poll(ctx)
		s = h.Status()
		if s.HealthStatus != Healthy || s.EnvoyReadinessState != Initialized || s.InitialConfigUpdateStatus != UpdateSuccessful ||
			s.ManagementServerConnectionStatus != Connected || s.ManagementServerDisconnectedTimestamp != nil || s.AgentUptime != "90s" {
			t.Fatalf("live: %+v", s)
		}
		if !h.Ready() {
			t.Fatal("not Ready when HEALTHY")
		}
		// The health stats query asks for both stats (App Mesh's filter
		// missed listener_create_failure).
		calls := fe.callList()
		if got, want := calls[len(calls)-1], `GET /stats?filter=%5E%28control_plane%5C.connected_state%7Clistener_manager%5C.listener_create_failure%29%24&format=json`; got != want {
			t.Errorf("stats call = %s, want %s", got, want)
		}

		// Disconnected: statically stable for DisconnectedTimeout.
		fe.set(func(f *fakeEnvoy) { f.connected = 0 })
		h.Poll(ctx)
		if s = h.Status(); s.HealthStatus != Healthy || s.ManagementServerConnectionStatus != NotConnected {
			t.Fatalf("just disconnected: %+v", s)
		}
		time.Sleep(time.Hour)
		h.Poll(ctx)
		if s = h.Status(); s.HealthStatus != Unhealthy {
			t.Fatalf("disconnected an hour: %+v", s)
		}

		// Unreachable Envoy.
		admin.setDown(true)
		fe.set(func(f *fakeEnvoy) { f.connected = 1 })
		h.Poll(ctx)
		if s = h.Status(); s.EnvoyState != Unreachable || s.HealthStatus != Unhealthy {
			t.Fatalf("unreachable: %+v", s)
		}
		admin.setDown(false)

		// A restarted Envoy whose listeners failed: UPDATE_FAILED.
		proc.exited()
		proc.started(1)
		proc.running(43)
		fe.set(func(f *fakeEnvoy) { f.lcf = 2 })
		h.Poll(ctx)
		if s = h.Status(); s.HealthStatus != Unhealthy || s.InitialConfigUpdateStatus != UpdateFailed || s.EnvoyRestartCount != "1" || s.EnvoyPid != "43" {
			t.Fatalf("listener failure: %+v", s)
		}
		// It stays failed for this Envoy, even if the stat were to go back.
		fe.set(func(f *fakeEnvoy) { f.lcf = 0 })
		h.Poll(ctx)
		if s = h.Status(); s.InitialConfigUpdateStatus != UpdateFailed {
			t.Fatalf("listener failure forgotten: %+v", s)
		}
	})
}

func TestHealthStatsFailureOnFirstLive(t *testing.T) {
	fe := newFakeEnvoy()
	fe.noStats = true
	proc := &Process{}
	h := newTestHealth(t, &handlerAdmin{h: fe}, proc)
	h.Poll(context.Background()) // App Mesh dereferenced a nil timestamp here
	s := h.Status()
	if s.HealthStatus != Unhealthy || s.EnvoyReadinessState != NotInitialized || s.ManagementServerConnectionStatus != "" {
		t.Fatalf("%+v", s)
	}
	fe.set(func(f *fakeEnvoy) { f.noStats = false })
	h.Poll(context.Background())
	if s = h.Status(); s.HealthStatus != Healthy || s.EnvoyReadinessState != Initialized {
		t.Fatalf("%+v", s)
	}
}

// TestHealthRun: polls on the interval (with jitter) and when Envoy's
// process changes.
func TestHealthRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fe := newFakeEnvoy()
		proc := &Process{}
		h := newTestHealth(t, &handlerAdmin{h: fe}, proc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- h.Run(ctx) }()
		readies := func() int {
			n := 0
			for _, c := range fe.callList() {
				if strings.HasPrefix(c, "GET /ready") {
					n++
				}
			}
			return n
		}
		synctest.Wait()
		if n := readies(); n != 0 {
			t.Fatalf("%d polls before the first interval", n)
		}
		time.Sleep(10*time.Second + 9*time.Millisecond)
		synctest.Wait()
		if n := readies(); n != 0 {
			t.Fatalf("polled before interval+10ms")
		}
		time.Sleep(41 * time.Millisecond)
		synctest.Wait()
		if n := readies(); n != 1 {
			t.Fatalf("%d polls after interval+50ms, want 1", n)
		}
		proc.started(0)
		synctest.Wait()
		if n := readies(); n != 2 {
			t.Fatalf("%d polls after envoy started, want 2", n)
		}
		proc.exited()
		synctest.Wait()
		if n := readies(); n != 3 {
			t.Fatalf("%d polls after envoy exited, want 3", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
