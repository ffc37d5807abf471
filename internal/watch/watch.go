// Package watch holds two small primitives meshd's components share: a
// broadcast Signal (many waiters, one notifier, no lost wake-ups) and a
// content-hashing file poller used for hot reload.
package watch

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Signal is a level-triggered broadcast. Waiters take the channel from C and
// select on it; Notify closes that channel and installs a fresh one, so a
// waiter that took C before Notify always wakes.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// C returns a channel closed by the next Notify.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes every current waiter.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
	}
	s.ch = make(chan struct{})
}

// File remembers the SHA-256 of a file's content so callers can tell whether
// it changed. Content hashing (rather than mtime) also catches the atomic
// symlink swaps Kubernetes uses for ConfigMap and Secret volumes.
type File struct {
	Path string
	// MaxSize bounds how much is read; a larger file is an error.
	MaxSize int64
	sum     [32]byte
	seen    bool
}

// ErrTooLarge is returned by Read for files above MaxSize.
var ErrTooLarge = errors.New("file too large")

// Read reads the file and reports whether its content differs from the
// content last passed to Mark.
func (f *File) Read() (data []byte, changed bool, err error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, false, err
	}
	defer fh.Close()
	limit := f.MaxSize
	if limit <= 0 {
		limit = 1 << 20
	}
	data, err = io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", f.Path, err)
	}
	if int64(len(data)) > limit {
		return nil, false, fmt.Errorf("%s: %w (limit %d bytes)", f.Path, ErrTooLarge, limit)
	}
	return data, !f.seen || sha256.Sum256(data) != f.sum, nil
}

// Mark records data as handled (applied or rejected), so an unchanged file
// is not reported, and re-logged, again.
func (f *File) Mark(data []byte) {
	f.sum = sha256.Sum256(data)
	f.seen = true
}
