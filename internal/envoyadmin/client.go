// Package envoyadmin is a small client of Envoy's admin interface
// (https://www.envoyproxy.io/docs/envoy/latest/operations/admin) over TCP
// or a Unix socket, shared by the metrics collector and `meshd agent`.
//
// The admin interface runs on Envoy's main thread, which also answers
// /ready: callers bound what they ask for (filters, usedonly) and how long
// they wait (a context deadline), and bodies are capped so a runaway
// response cannot exhaust memory.
package envoyadmin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// MaxBody caps a body read with Get or Post (Envoy's unfiltered JSON stats
// for 1,000 clusters are ≈ 12 MB).
const MaxBody = 64 << 20

// UserAgent is sent with every request.
const UserAgent = "meshd"

// Client talks to one Envoy admin endpoint.
type Client struct {
	base string // scheme://host, no trailing slash
	hc   *http.Client
	addr string
}

// New returns a client for addr: "host:port", "http://host:port" or
// "unix:///path/to/admin.sock".
func New(addr string) (*Client, error) {
	tr := &http.Transport{
		MaxIdleConns:        2,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	c := &Client{hc: &http.Client{Transport: tr}, addr: addr}
	switch {
	case strings.HasPrefix(addr, "unix://"):
		path := strings.TrimPrefix(addr, "unix://")
		if path == "" {
			return nil, fmt.Errorf("envoy admin address %q: empty socket path", addr)
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://envoy"
	case strings.HasPrefix(addr, "http://"):
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("envoy admin address %q: want http://host:port", addr)
		}
		c.base = "http://" + u.Host
	default:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("envoy admin address %q: want host:port or unix:///path: %w", addr, err)
		}
		c.base = "http://" + addr
	}
	return c, nil
}

// Addr is the address the client was made for.
func (c *Client) Addr() string { return c.addr }

// StatusError is a non-2xx answer from Envoy.
type StatusError struct {
	Path   string
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("envoy admin %s: %d %s", e.Path, e.Status, strings.TrimSpace(e.Body))
}

// Do sends a request and returns the response with a 2xx status; the
// caller closes the body. Any other status is a *StatusError.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + Encode(query)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("envoy admin %s %s: %w", method, path, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("envoy admin %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, &StatusError{Path: path, Status: resp.StatusCode, Body: string(b)}
	}
	return resp, nil
}

// Get reads a whole body (at most MaxBody bytes).
func (c *Client) Get(ctx context.Context, path string, query url.Values) ([]byte, error) {
	return c.read(ctx, http.MethodGet, path, query)
}

// Post sends an empty POST and reads the answer.
func (c *Client) Post(ctx context.Context, path string, query url.Values) ([]byte, error) {
	return c.read(ctx, http.MethodPost, path, query)
}

func (c *Client) read(ctx context.Context, method, path string, query url.Values) ([]byte, error) {
	resp, err := c.Do(ctx, method, path, query)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("envoy admin %s %s: read: %w", method, path, err)
	}
	if len(b) > MaxBody {
		return nil, fmt.Errorf("envoy admin %s %s: body larger than %d bytes", method, path, MaxBody)
	}
	return b, nil
}

// CloseIdle closes idle connections.
func (c *Client) CloseIdle() { c.hc.CloseIdleConnections() }

// Encode is url.Values.Encode, except that a parameter with an empty value
// is written as a bare flag ("usedonly", not "usedonly="), as Envoy's docs
// spell them.
func Encode(q url.Values) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(q)) {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			if v != "" {
				b.WriteByte('=')
				b.WriteString(url.QueryEscape(v))
			}
		}
	}
	return b.String()
}

// IsUnreachable reports whether err means Envoy could not be reached (as
// opposed to Envoy answering with an error).
func IsUnreachable(err error) bool {
	var se *StatusError
	return err != nil && !errors.As(err, &se)
}
