package agent

import "sync"

// ProcState is what the agent knows about its Envoy process.
type ProcState struct {
	// PID is the running Envoy's pid (0 when none runs or it has not yet
	// stayed up PID_POLL_INTERVAL_MS).
	PID int
	// Restarts is how many times Envoy was restarted (0 for the first run).
	Restarts int
	// Generation increases with every start, so watchers can tell that
	// Envoy restarted (counters and log levels start over).
	Generation uint64
}

// Process publishes Envoy's state from the Envoy component to the health
// checker, the snapshotter and the logging handler. It is safe for
// concurrent use; the zero value is ready.
type Process struct {
	mu      sync.Mutex
	st      ProcState
	changed chan struct{}
}

// State returns the current state.
func (p *Process) State() ProcState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// Watch returns the current state and a channel closed at the next change.
func (p *Process) Watch() (ProcState, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.st, p.changed
}

func (p *Process) update(f func(*ProcState)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.st)
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// started records a new Envoy process (its pid is published later, by
// running).
func (p *Process) started(restarts int) {
	p.update(func(s *ProcState) { s.PID = 0; s.Restarts = restarts; s.Generation++ })
}

// running publishes the pid of a started Envoy.
func (p *Process) running(pid int) { p.update(func(s *ProcState) { s.PID = pid }) }

// exited records that Envoy is gone.
func (p *Process) exited() { p.update(func(s *ProcState) { s.PID = 0 }) }
