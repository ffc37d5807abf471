package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// EnvoyStats is one read of Envoy's /stats?format=json: counters and gauges
// by canonical name, and histograms.
type EnvoyStats struct {
	Values     map[string]float64
	Histograms map[string]*Histogram
}

// Bin is a histogram bin [Lower, Lower+Width) holding Count observations,
// as Envoy's histogram_buckets=detailed shows them. Width is +Inf for
// the overflow bin of a bucketed histogram.
type Bin struct {
	Lower, Width float64
	Count        uint64
}

// Histogram is a cumulative histogram as a sorted list of bins.
type Histogram struct {
	Bins []Bin
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, b := range h.Bins {
		n += b.Count
	}
	return n
}

// Sum estimates the sum of observations from bin midpoints (Envoy's bins
// are about 1 % wide at two significant digits, so the estimate is within
// about 1 %); the overflow bin counts at its lower bound.
func (h *Histogram) Sum() float64 {
	var s float64
	for _, b := range h.Bins {
		s += b.mid() * float64(b.Count)
	}
	return s
}

func (b Bin) mid() float64 {
	if math.IsInf(b.Width, 1) {
		return b.Lower
	}
	return b.Lower + b.Width/2
}

// Cumulative gives the cumulative count of observations at or below each
// bound (a bin counts under the first bound its midpoint does not exceed).
func (h *Histogram) Cumulative(bounds []float64) []uint64 {
	out := make([]uint64, len(bounds))
	for _, b := range h.Bins {
		m := b.mid()
		i := sort.SearchFloat64s(bounds, m) // first bound ≥ m
		if i < len(bounds) {
			out[i] += b.Count
		}
	}
	for i := 1; i < len(out); i++ {
		out[i] += out[i-1]
	}
	return out
}

// merge adds o's bins into h (both sorted by Lower).
func (h *Histogram) merge(o *Histogram) {
	if o == nil || len(o.Bins) == 0 {
		return
	}
	if len(h.Bins) == 0 {
		h.Bins = append([]Bin(nil), o.Bins...)
		return
	}
	out := make([]Bin, 0, len(h.Bins)+len(o.Bins))
	i, j := 0, 0
	for i < len(h.Bins) || j < len(o.Bins) {
		switch {
		case j == len(o.Bins) || i < len(h.Bins) && h.Bins[i].Lower < o.Bins[j].Lower:
			out = append(out, h.Bins[i])
			i++
		case i == len(h.Bins) || o.Bins[j].Lower < h.Bins[i].Lower:
			out = append(out, o.Bins[j])
			j++
		default:
			b := h.Bins[i]
			b.Count += o.Bins[j].Count
			if o.Bins[j].Width > b.Width {
				b.Width = o.Bins[j].Width
			}
			out = append(out, b)
			i, j = i+1, j+1
		}
	}
	h.Bins = out
}

// The JSON shapes of /stats?format=json. An element of "stats" is either a
// counter/gauge/text readout {"name","value"} or {"histograms": …}, where
// histograms is an object (default quantiles, or histogram_buckets=detailed)
// or an array (histogram_buckets=cumulative|disjoint).
type statsJSON struct {
	Stats []struct {
		Name       string          `json:"name"`
		Value      json.RawMessage `json:"value"`
		Histograms json.RawMessage `json:"histograms"`
	} `json:"stats"`
}

type detailedJSON struct {
	Details []struct {
		Name   string `json:"name"`
		Totals []struct {
			Lower float64 `json:"lower_bound"`
			Width float64 `json:"width"`
			Count uint64  `json:"count"`
		} `json:"totals"`
	} `json:"details"`
}

type bucketsJSON []struct {
	Name    string `json:"name"`
	Buckets []struct {
		Upper      float64 `json:"upper_bound"`
		Cumulative uint64  `json:"cumulative"`
	} `json:"buckets"`
}

// ParseStats parses Envoy's /stats?format=json output, with histograms in
// any of its renderings: histogram_buckets=detailed (bins), cumulative or
// disjoint (buckets; disjoint must be told with disjoint=true), or the
// default quantiles (which carry no counts and are skipped). Text readouts
// are skipped.
func ParseStats(data []byte, disjoint bool) (*EnvoyStats, error) {
	var doc statsJSON
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("envoy stats json: %w", err)
	}
	s := &EnvoyStats{Values: make(map[string]float64, len(doc.Stats)), Histograms: map[string]*Histogram{}}
	for i, e := range doc.Stats {
		switch {
		case e.Histograms != nil:
			if err := s.parseHistograms(e.Histograms, disjoint); err != nil {
				return nil, fmt.Errorf("envoy stats json: stats[%d].histograms: %w", i, err)
			}
		case e.Name == "":
			return nil, fmt.Errorf("envoy stats json: stats[%d]: no name", i)
		case len(e.Value) > 0 && e.Value[0] == '"':
			// a text readout
		default:
			v, err := strconv.ParseFloat(string(e.Value), 64)
			if err != nil {
				return nil, fmt.Errorf("envoy stats json: %s: value %s: not a number", e.Name, e.Value)
			}
			s.Values[e.Name] = v
		}
	}
	return s, nil
}

func (s *EnvoyStats) parseHistograms(raw json.RawMessage, disjoint bool) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	if raw[0] == '[' {
		var hs bucketsJSON
		if err := json.Unmarshal(raw, &hs); err != nil {
			return err
		}
		for _, h := range hs {
			out := &Histogram{}
			prevUpper, prevCum := 0.0, uint64(0)
			for _, b := range h.Buckets {
				if b.Upper < prevUpper {
					return fmt.Errorf("%s: bucket bounds not increasing", h.Name)
				}
				n := b.Cumulative
				if !disjoint {
					if n < prevCum {
						return fmt.Errorf("%s: cumulative counts decrease", h.Name)
					}
					n -= prevCum
					prevCum = b.Cumulative
				}
				if n > 0 {
					out.Bins = append(out.Bins, Bin{Lower: prevUpper, Width: b.Upper - prevUpper, Count: n})
				}
				prevUpper = b.Upper
			}
			s.Histograms[h.Name] = out
		}
		return nil
	}
	var d detailedJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	for _, h := range d.Details {
		out := &Histogram{Bins: make([]Bin, 0, len(h.Totals))}
		for _, t := range h.Totals {
			if t.Width < 0 || math.IsNaN(t.Lower) {
				return fmt.Errorf("%s: bad bin %v,%v", h.Name, t.Lower, t.Width)
			}
			if t.Count > 0 {
				out.Bins = append(out.Bins, Bin{Lower: t.Lower, Width: t.Width, Count: t.Count})
			}
		}
		sort.Slice(out.Bins, func(i, j int) bool { return out.Bins[i].Lower < out.Bins[j].Lower })
		s.Histograms[h.Name] = out
	}
	return nil
}
