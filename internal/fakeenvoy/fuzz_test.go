package fakeenvoy

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzStatsQuery: any query string gets 200 or Envoy's 400, and a 200 JSON
// body is valid JSON.
func FuzzStatsQuery(f *testing.F) {
	for _, s := range []string{"", "usedonly", "filter=upstream", "filter=(", "format=json&histogram_buckets=detailed", "format=prometheus&filter=%5Ecluster", "type=Histograms&histogram_buckets=disjoint", "filter=a%00b&format=json", "format=json&filter=[[:digit:]]+"} {
		f.Add(s)
	}
	e, _ := newApps(f, false)
	drive(e)
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.ContainsAny(raw, " #\r\n\t") {
			return
		}
		req := httptest.NewRequest("GET", "/stats", nil)
		req.URL.RawQuery = raw
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
			q, _ := parseQuery(raw)
			if q["format"] == "json" && !json.Valid(rec.Body.Bytes()) {
				t.Errorf("%q: invalid JSON", raw)
			}
		case 400:
		default:
			t.Errorf("%q: %d", raw, rec.Code)
		}
	})
}
