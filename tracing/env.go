package tracing

import (
	"errors"
	"github.com/meshd/meshd/internal/envvar"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Lookup reads one environment variable, like os.LookupEnv.
type Lookup func(name string) (string, bool)

// MapLookup serves variables from a map (tests, and callers that build the
// environment themselves).
func MapLookup(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// VarError is one invalid environment variable: which, its value, and what is
// allowed. Its message is one line.
type VarError = envvar.VarError

// InputError reports everything wrong with the input (environment and the
// files it names), one problem per line. meshd exits 2 on it.
type InputError struct{ Problems []error }

func (e *InputError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find a VarError among the problems.
func (e *InputError) Unwrap() []error { return e.Problems }

// IsInput reports whether err is about bad input rather than a failure of
// meshd itself.
func IsInput(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

// reader is envvar's Reader (every problem collected, not just the first)
// with the parsers only the bootstrap needs.
type reader struct{ envvar.Reader }

func (r *reader) integer(name string, def, lo, hi int64) int64 {
	v, ok := r.Get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		if hi == math.MaxInt64 {
			r.Fail(name, v, "must be an integer of at least %d", lo)
		} else {
			r.Fail(name, v, "must be an integer from %d to %d", lo, hi)
		}
		return def
	}
	return n
}

// ip parses an IP literal (the X-Ray tracer and the DogStatsD sink open their
// own sockets and cannot resolve names).
func (r *reader) ip(name, def string) string {
	v, ok := r.Get(name)
	if !ok {
		return def
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		r.Fail(name, v, "must be an IPv4 or IPv6 address such as 127.0.0.1 (no host name: Envoy opens this socket itself, without DNS)")
		return def
	}
	return a.String()
}

// host accepts an IP literal or a DNS name (for STRICT_DNS clusters).
func (r *reader) host(name, def string) string {
	v, ok := r.Get(name)
	if !ok {
		return def
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return v
	}
	if !validHostname(v) {
		r.Fail(name, v, "must be an IP address or a DNS name")
		return def
	}
	return v
}

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// duration parses a Go duration within [lo, hi).
func (r *reader) duration(name string, lo, hi time.Duration) (time.Duration, bool) {
	v, ok := r.Get(name)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d >= hi {
		r.Fail(name, v, "must be a duration such as 5s or 5000ms, at least %s and less than %s", lo, hi)
		return 0, false
	}
	return d, true
}

// path returns a non-empty path, or "" when unset.
func (r *reader) path(name string) string {
	v, _ := r.Get(name)
	return v
}
