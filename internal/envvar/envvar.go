// Package envvar reads configuration from environment variables the way
// meshd's App Mesh-compatible commands do: an empty value is unset, and
// every bad variable is collected (one VarError each) instead of stopping
// at the first, so a task definition can be fixed in one round. The
// bootstrap renderer (tracing) and the agent (internal/agent) share it.
package envvar

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// VarError is one invalid environment variable: which, its value, and what
// is allowed. Its message is one line.
type VarError struct {
	Name, Value, Allowed string
}

func (e *VarError) Error() string {
	return fmt.Sprintf("%s=%q: %s", e.Name, e.Value, e.Allowed)
}

// Reader parses variables from Lookup, collecting Problems and Warnings.
type Reader struct {
	Lookup   func(name string) (string, bool)
	Problems []error
	Warnings []string
}

// Get returns a variable's value with surrounding space trimmed; an empty
// value counts as unset, as in the App Mesh image.
func (r *Reader) Get(name string) (string, bool) {
	v, ok := r.Lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// Fail records a VarError; allowed is a format for args.
func (r *Reader) Fail(name, value, allowed string, args ...any) {
	r.Problems = append(r.Problems, &VarError{Name: name, Value: value, Allowed: fmt.Sprintf(allowed, args...)})
}

// Warn records a warning.
func (r *Reader) Warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// Str returns the value, or def when unset.
func (r *Reader) Str(name, def string) string {
	if v, ok := r.Get(name); ok {
		return v
	}
	return def
}

// Bool accepts what the App Mesh image accepted (Go's strconv.ParseBool:
// 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False).
func (r *Reader) Bool(name string, def bool) bool {
	v, ok := r.Get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.Fail(name, v, "must be a boolean: 1, true, 0 or false (also t, f, TRUE, FALSE, True, False)")
		return def
	}
	return b
}

// Port parses a TCP/UDP port from 1 to 65535. (The App Mesh image cast any
// integer to uint32, so -1 became 4294967295; meshd refuses what is not a
// port.)
func (r *Reader) Port(name string, def uint32) uint32 {
	v, ok := r.Get(name)
	if !ok {
		return def
	}
	p, err := ParsePort(v)
	if err != nil {
		r.Fail(name, v, "must be a port number from 1 to 65535")
		return def
	}
	return p
}

// ParsePort parses a port number from 1 to 65535.
func ParsePort(v string) (uint32, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return 0, errors.New("not a port")
	}
	return uint32(n), nil
}

// OneOf accepts one of the allowed values, case-insensitively, and returns
// it as spelled in allowed.
func (r *Reader) OneOf(name, def string, allowed ...string) string {
	v, ok := r.Get(name)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	r.Fail(name, v, "must be one of %s", strings.Join(allowed, ", "))
	return def
}
