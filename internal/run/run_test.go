package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// events is a mutex-protected log of what components did.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, fmt.Sprintf(format, args...))
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.log)
}

// with returns the events that start with prefix, prefix removed.
func (e *events) with(prefix string) []string {
	var out []string
	for _, s := range e.list() {
		if rest, ok := strings.CutPrefix(s, prefix); ok {
			out = append(out, rest)
		}
	}
	return out
}

// logBuffer collects log output.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// wellBehaved records its start, waits for cancellation, takes a second to
// wind down, records its stop and returns ctx.Err().
func wellBehaved(ev *events, name string) Component {
	return Component{Name: name, Run: func(ctx context.Context) error {
		ev.add("start %s", name)
		<-ctx.Done()
		ev.add("cancelled %s", name)
		time.Sleep(time.Second)
		ev.add("stopped %s", name)
		return ctx.Err()
	}}
}

// runAsync runs the supervisor in a goroutine; the result arrives on the
// returned channel.
func runAsync(ctx context.Context, s *Supervisor) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return done
}

func TestSupervisorStopsStagesInReverseOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		var logs logBuffer
		s := &Supervisor{
			Log: testLogger(&logs),
			Stages: [][]Component{
				{wellBehaved(&ev, "s0")},
				nil, // an empty stage is allowed
				{wellBehaved(&ev, "s2a"), wellBehaved(&ev, "s2b")},
				{wellBehaved(&ev, "s3")},
			},
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, s)
		synctest.Wait()

		started := slices.Sorted(slices.Values(ev.with("start ")))
		if want := []string{"s0", "s2a", "s2b", "s3"}; !slices.Equal(started, want) {
			t.Fatalf("started %q, want %q", started, want)
		}
		if got := ev.with("cancelled "); len(got) != 0 {
			t.Fatalf("components cancelled before shutdown: %q", got)
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before cancellation", err)
		default:
		}

		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v after a clean shutdown, want nil", err)
		}
		// Each stage takes one second to stop, one after the other.
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("shutdown took %v, want 3s (three non-empty stages stopped one by one)", got)
		}

		// Stage numbers never go up in the event log, and no stage is
		// cancelled before the one above it has stopped.
		log := ev.with("")
		var stopLog []string
		for _, e := range log {
			if !strings.HasPrefix(e, "start ") {
				stopLog = append(stopLog, e)
			}
		}
		want := []string{
			"cancelled s3", "stopped s3",
			"cancelled s2?", "cancelled s2?", "stopped s2?", "stopped s2?",
			"cancelled s0", "stopped s0",
		}
		if len(stopLog) != len(want) {
			t.Fatalf("stop events %q, want %q", stopLog, want)
		}
		for i := range want {
			w := strings.TrimSuffix(want[i], "?")
			if !strings.HasPrefix(stopLog[i], w) {
				t.Fatalf("stop events %q, want %q (s2a and s2b in either order)", stopLog, want)
			}
		}
		if !strings.Contains(logs.String(), "shutting down") {
			t.Errorf("no shutdown log:\n%s", logs.String())
		}
	})
}

func TestSupervisorComponentErrors(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		run  func(ctx context.Context) error
		// check validates the error Run returned.
		want   []string
		wantIs error
	}{
		{
			name:   "failing",
			run:    func(ctx context.Context) error { time.Sleep(time.Second); return errBoom },
			want:   []string{"faulty: boom"},
			wantIs: errBoom,
		},
		{
			name: "failing at once",
			run:  func(ctx context.Context) error { return fmt.Errorf("listen: %w", errBoom) },
			want: []string{"faulty: listen: boom"}, wantIs: errBoom,
		},
		{
			name: "panicking",
			run:  func(ctx context.Context) error { time.Sleep(time.Second); panic("kaboom") },
			want: []string{"faulty: panic: kaboom", "run_test.go"}, // with the stack
		},
		{
			name: "panicking with an error",
			run:  func(ctx context.Context) error { var m map[string]int; m["x"] = 1; return nil },
			want: []string{"faulty: panic:", "assignment to entry in nil map"},
		},
		{
			name: "returning nil early",
			run:  func(ctx context.Context) error { time.Sleep(time.Second); return nil },
			want: []string{"faulty: stopped unexpectedly"},
		},
		{
			// context.Canceled from something other than the stage's
			// context is a failure, not a clean stop.
			name:   "returning context.Canceled early",
			run:    func(ctx context.Context) error { return context.Canceled },
			want:   []string{"faulty: context canceled"},
			wantIs: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ev events
				var logs logBuffer
				s := &Supervisor{
					Log: testLogger(&logs),
					Stages: [][]Component{
						{wellBehaved(&ev, "s0")},
						{wellBehaved(&ev, "s1a"), {Name: "faulty", Run: tt.run}},
						{wellBehaved(&ev, "s2")},
					},
				}
				// The parent context is never cancelled: the failure alone
				// must bring everything down.
				err := s.Run(t.Context())
				if err == nil {
					t.Fatal("Run = nil, want the component's error")
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Run error %q does not contain %q", err, w)
					}
				}
				if !strings.HasPrefix(err.Error(), "faulty: ") {
					t.Errorf("Run error %q is not prefixed with the component name", err)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("Run error %v does not wrap %v", err, tt.wantIs)
				}
				stopped := ev.with("stopped ")
				if want := []string{"s2", "s1a", "s0"}; !slices.Equal(stopped, want) {
					t.Errorf("stopped %q, want %q", stopped, want)
				}
				if !strings.Contains(logs.String(), "component failed") || !strings.Contains(logs.String(), "component=faulty") {
					t.Errorf("failure not logged:\n%s", logs.String())
				}
			})
		})
	}
}

// The first failure is returned; errors reported while stopping do not
// replace it.
func TestSupervisorFirstErrorWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errFirst, errLater := errors.New("first"), errors.New("later")
		s := &Supervisor{
			Log: testLogger(io.Discard),
			Stages: [][]Component{
				{{Name: "noisy", Run: func(ctx context.Context) error { <-ctx.Done(); return errLater }}},
				{{Name: "broken", Run: func(ctx context.Context) error { time.Sleep(time.Second); return errFirst }}},
			},
		}
		err := s.Run(t.Context())
		if !errors.Is(err, errFirst) || errors.Is(err, errLater) {
			t.Fatalf("Run = %v, want broken's error only", err)
		}
	})
}

// A component that fails while stopping after a signalled shutdown makes
// the shutdown unclean.
func TestSupervisorErrorDuringShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errFlush := errors.New("flush failed")
		s := &Supervisor{
			Log: testLogger(io.Discard),
			Stages: [][]Component{
				{{Name: "clean", Run: func(ctx context.Context) error { <-ctx.Done(); return nil }}},
				{{Name: "wrapped", Run: func(ctx context.Context) error {
					<-ctx.Done()
					return fmt.Errorf("serve: %w", ctx.Err())
				}}},
				{{Name: "writer", Run: func(ctx context.Context) error { <-ctx.Done(); return errFlush }}},
			},
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, s)
		synctest.Wait()
		cancel()
		err := <-done
		if !errors.Is(err, errFlush) || !strings.HasPrefix(err.Error(), "writer: ") {
			t.Fatalf("Run = %v, want writer's flush error", err)
		}
	})
}

// Returning nil, ctx.Err() or an error wrapping it after cancellation is a
// clean stop.
func TestSupervisorCleanStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls events
		comp := func(name string, ret func(ctx context.Context) error) Component {
			return Component{Name: name, Run: func(ctx context.Context) error {
				calls.add("%s", name)
				<-ctx.Done()
				return ret(ctx)
			}}
		}
		s := &Supervisor{
			Log: testLogger(io.Discard),
			Stages: [][]Component{{
				comp("nil", func(context.Context) error { return nil }),
				comp("err", func(ctx context.Context) error { return ctx.Err() }),
				comp("wrapped", func(ctx context.Context) error { return fmt.Errorf("x: %w", ctx.Err()) }),
				comp("cause", func(ctx context.Context) error { return context.Cause(ctx) }),
			}},
		}
		ctx, cancel := context.WithCancelCause(t.Context())
		done := runAsync(ctx, s)
		synctest.Wait()
		cancel(errors.New("SIGTERM"))
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if n := len(calls.list()); n != 4 {
			t.Fatalf("%d components ran, want 4", n)
		}
	})
}

func TestSupervisorStopTimeout(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{"explicit", 5 * time.Second, 5 * time.Second},
		{"default", 0, 30 * time.Second},
		{"negative means default", -time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ev events
				var logs logBuffer
				release := make(chan struct{})
				defer close(release) // lets the stuck component go
				s := &Supervisor{
					Log:         testLogger(&logs),
					StopTimeout: tt.timeout,
					Stages: [][]Component{
						{wellBehaved(&ev, "s0")},
						{{Name: "stuck", Run: func(ctx context.Context) error {
							<-release // ignores ctx
							return nil
						}}},
						{wellBehaved(&ev, "s2")},
					},
				}
				ctx, cancel := context.WithCancel(t.Context())
				done := runAsync(ctx, s)
				synctest.Wait()
				start := time.Now()
				cancel()
				err := <-done
				if err != nil {
					t.Errorf("Run = %v, want nil (the stuck component never reported)", err)
				}
				// s2 takes 1s, the stuck stage the timeout, s0 1s.
				if got, want := time.Since(start), tt.want+2*time.Second; got != want {
					t.Errorf("shutdown took %v, want %v", got, want)
				}
				if stopped := ev.with("stopped "); !slices.Equal(stopped, []string{"s2", "s0"}) {
					t.Errorf("stopped %q, want s2 then s0 (past the stuck stage)", stopped)
				}
				if !strings.Contains(logs.String(), "stage did not stop in time") || !strings.Contains(logs.String(), "stage=1") {
					t.Errorf("timeout not logged:\n%s", logs.String())
				}
			})
		})
	}
}

// A stage that stops in time does not wait for the timeout.
func TestSupervisorStopTimeoutNotWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		var logs logBuffer
		s := &Supervisor{Log: testLogger(&logs), StopTimeout: time.Minute, Stages: [][]Component{{wellBehaved(&ev, "a")}}}
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, s)
		synctest.Wait()
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != time.Second {
			t.Errorf("shutdown took %v, want 1s", got)
		}
		if strings.Contains(logs.String(), "did not stop in time") {
			t.Errorf("timeout logged for a stage that stopped:\n%s", logs.String())
		}
	})
}

func TestSupervisorNilLogger(t *testing.T) {
	ran := false
	s := &Supervisor{Stages: [][]Component{{{Name: "x", Run: func(ctx context.Context) error { ran = true; return nil }}}}}
	err := s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "logger") {
		t.Fatalf("Run = %v, want an error about the missing logger", err)
	}
	if ran {
		t.Error("a component ran without a logger")
	}
}

// A context cancelled before Run still starts and stops every component.
func TestSupervisorCancelledContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		s := &Supervisor{Log: testLogger(io.Discard), Stages: [][]Component{{wellBehaved(&ev, "a")}, {wellBehaved(&ev, "b")}}}
		if err := s.Run(ctx); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if got := ev.with("stopped "); !slices.Equal(got, []string{"b", "a"}) {
			t.Errorf("stopped %q, want b then a", got)
		}
	})
}

// With no stages, Run waits for cancellation.
func TestSupervisorNoStages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := runAsync(ctx, &Supervisor{Log: testLogger(io.Discard)})
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before cancellation", err)
		default:
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
	})
}
