package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	dto "github.com/prometheus/client_model/go"
)

// EnvoyStats is a minimal Stats for the server's tests: it streams
// Envoy's own /stats/prometheus and has no extension families (meshd's
// metrics.Collector is the real one).
type EnvoyStats struct {
	Admin EnvoyAdmin
}

var _ Stats = EnvoyStats{}

// WritePrometheus streams Envoy's /stats/prometheus[?usedonly].
func (s EnvoyStats) WritePrometheus(ctx context.Context, w io.Writer, usedOnly bool) error {
	q := url.Values{}
	if usedOnly {
		q.Set("usedonly", "")
	}
	resp, err := s.Admin.Do(ctx, http.MethodGet, "/stats/prometheus", q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("envoy admin /stats/prometheus: copy: %w", err)
	}
	return nil
}

// Extension returns no families.
func (EnvoyStats) Extension(context.Context) ([]*dto.MetricFamily, error) { return nil, nil }
