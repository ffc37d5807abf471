// Package run is meshd's supervisor: it runs components, each a Run(ctx)
// error, in ordered stages and shuts them down in reverse order.
//
// Stage 0 starts first and stops last (typically the metrics and health
// endpoint); the highest stage (typically the servers that accept client
// traffic) stops first. The first component to fail cancels every stage, and
// a panic in a component is recovered into an error, so one broken component
// never leaves the process half-alive.
package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Component is one long-running part of meshd.
type Component struct {
	// Name identifies the component in logs and errors.
	Name string
	// Run blocks until ctx is cancelled or the component fails. Returning nil
	// or ctx.Err() after cancellation is a clean stop.
	Run func(ctx context.Context) error
}

// Supervisor runs stages of components.
type Supervisor struct {
	Log *slog.Logger
	// Stages in start order; shutdown goes the other way.
	Stages [][]Component
	// StopTimeout bounds how long one stage may take to stop before the
	// supervisor moves on to the next (0 means 30s).
	StopTimeout time.Duration
}

type result struct {
	name string
	err  error
}

// Run starts every stage and blocks until ctx is cancelled or a component
// fails, then stops the stages from last to first. It returns the first
// component error (nil on a clean, signalled shutdown).
func (s *Supervisor) Run(ctx context.Context) error {
	log := s.Log
	if log == nil {
		return errors.New("run: supervisor needs a logger")
	}
	stopTimeout := s.StopTimeout
	if stopTimeout <= 0 {
		stopTimeout = 30 * time.Second
	}
	type stage struct {
		cancel context.CancelFunc
		wg     sync.WaitGroup
	}
	n := 0
	for _, comps := range s.Stages {
		n += len(comps)
	}
	results := make(chan result, n) // every component reports once, never blocking
	stages := make([]*stage, len(s.Stages))
	for i, comps := range s.Stages {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		st := &stage{cancel: cancel}
		stages[i] = st
		for _, c := range comps {
			st.wg.Add(1)
			go func() {
				defer st.wg.Done()
				err := runOne(sctx, c)
				if err != nil && sctx.Err() != nil && errors.Is(err, context.Canceled) {
					err = nil
				}
				if err == nil && sctx.Err() == nil {
					err = fmt.Errorf("%s: stopped unexpectedly", c.Name)
				}
				results <- result{name: c.Name, err: err}
			}()
		}
	}

	var first error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case r := <-results:
		if r.err != nil {
			first = r.err
			log.Error("component failed, shutting down", "component", r.name, "err", r.err)
		}
	}
	for i := len(stages) - 1; i >= 0; i-- {
		st := stages[i]
		st.cancel()
		done := make(chan struct{})
		go func() { st.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(stopTimeout):
			log.Error("stage did not stop in time, moving on", "stage", i, "timeout", stopTimeout)
		}
	}
	// Collect what the stopped components reported.
	for {
		select {
		case r := <-results:
			if r.err != nil && first == nil {
				first = r.err
			}
		default:
			return first
		}
	}
}

func runOne(ctx context.Context, c Component) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: panic: %v\n%s", c.Name, p, debug.Stack())
		}
	}()
	if err := c.Run(ctx); err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	return nil
}
