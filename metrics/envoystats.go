package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
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

// BucketCounts gives the observations per bucket (not cumulative): one
// count per bound, then the overflow above the last bound.
func (h *Histogram) BucketCounts(bounds []float64) []uint64 {
	cum := h.Cumulative(bounds)
	out := make([]uint64, len(cum)+1)
	var prev uint64
	for i, c := range cum {
		out[i] = c - prev
		prev = c
	}
	out[len(cum)] = h.Count() - prev
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

// ParseStats parses Envoy's /stats?format=json output, with histograms in
// any of its renderings: histogram_buckets=detailed (bins), cumulative or
// disjoint (buckets; disjoint must be told with disjoint=true), or the
// default quantiles (which carry no counts and are skipped). Text readouts
// are skipped. An element of "stats" is a counter/gauge/text readout
// {"name","value"} or {"histograms": …}, an object (quantiles, detailed) or
// an array (cumulative, disjoint).
func ParseStats(data []byte, disjoint bool) (*EnvoyStats, error) {
	s := &EnvoyStats{Values: map[string]float64{}, Histograms: map[string]*Histogram{}}
	l := &lexer{b: data}
	err := l.object(func(k []byte) error {
		if string(k) != "stats" {
			return l.skip()
		}
		n := 0
		return l.array(func() error {
			n++
			return s.parseElement(l, disjoint, n-1)
		})
	})
	if err == nil {
		err = l.end()
	}
	if err != nil {
		return nil, fmt.Errorf("envoy stats json: %w", err)
	}
	return s, nil
}

func (s *EnvoyStats) parseElement(l *lexer, disjoint bool, idx int) error {
	var name []byte
	var value float64
	hasValue, text := false, false
	err := l.object(func(k []byte) error {
		var err error
		switch string(k) {
		case "name":
			name, err = l.rawString()
		case "value":
			if l.peek() == '"' {
				text = true
				return l.skip()
			}
			value, err = l.number()
			hasValue = true
		case "histograms":
			if l.peek() == '[' {
				return s.parseBuckets(l, disjoint)
			}
			return s.parseDetailed(l)
		default:
			return l.skip()
		}
		return err
	})
	switch {
	case err != nil:
		return err
	case hasValue && len(name) == 0:
		return fmt.Errorf("stats[%d]: value without a name", idx)
	case hasValue:
		s.Values[string(name)] = value
	case len(name) > 0 && !text:
		return fmt.Errorf("stats[%d] (%s): no value", idx, name)
	}
	return nil
}

// parseDetailed reads {"supported_percentiles":…,"details":[{"name",
// "totals":[{"lower_bound","width","count"}],…}]} (histogram_buckets=
// detailed); the default {"supported_quantiles","computed_quantiles"}
// carries no counts and is skipped.
func (s *EnvoyStats) parseDetailed(l *lexer) error {
	return l.object(func(k []byte) error {
		if string(k) != "details" {
			return l.skip()
		}
		return l.array(func() error {
			var name string
			h := &Histogram{}
			err := l.object(func(k []byte) error {
				switch string(k) {
				case "name":
					var err error
					name, err = l.str()
					return err
				case "totals":
					return l.array(func() error {
						var b Bin
						var count float64
						err := l.object(func(k []byte) error {
							var err error
							switch string(k) {
							case "lower_bound":
								b.Lower, err = l.number()
							case "width":
								b.Width, err = l.number()
							case "count":
								count, err = l.number()
							default:
								err = l.skip()
							}
							return err
						})
						if err != nil {
							return err
						}
						if b.Width < 0 || !isCount(count) {
							return fmt.Errorf("%s: bad bin %v,%v:%v", name, b.Lower, b.Width, count)
						}
						if b.Count = uint64(count); b.Count > 0 {
							h.Bins = append(h.Bins, b)
						}
						return nil
					})
				default:
					return l.skip()
				}
			})
			if err != nil {
				return err
			}
			if name == "" {
				return errors.New("histogram without a name")
			}
			sort.Slice(h.Bins, func(i, j int) bool { return h.Bins[i].Lower < h.Bins[j].Lower })
			s.Histograms[name] = h
			return nil
		})
	})
}

// parseBuckets reads [{"name","buckets":[{"upper_bound","interval",
// "cumulative"}]}] (histogram_buckets=cumulative or disjoint).
func (s *EnvoyStats) parseBuckets(l *lexer, disjoint bool) error {
	return l.array(func() error {
		var name string
		type bucket struct{ upper, n float64 }
		var buckets []bucket
		err := l.object(func(k []byte) error {
			switch string(k) {
			case "name":
				var err error
				name, err = l.str()
				return err
			case "buckets":
				return l.array(func() error {
					var b bucket
					if err := l.object(func(k []byte) error {
						var err error
						switch string(k) {
						case "upper_bound":
							b.upper, err = l.number()
						case "cumulative":
							b.n, err = l.number()
						default:
							err = l.skip()
						}
						return err
					}); err != nil {
						return err
					}
					buckets = append(buckets, b)
					return nil
				})
			default:
				return l.skip()
			}
		})
		if err != nil {
			return err
		}
		if name == "" {
			return errors.New("histogram without a name")
		}
		out := &Histogram{}
		prevUpper, prevCum := 0.0, 0.0
		for _, b := range buckets {
			if b.upper < prevUpper {
				return fmt.Errorf("%s: bucket bounds not increasing", name)
			}
			if !isCount(b.n) {
				return fmt.Errorf("%s: bad bucket count %v", name, b.n)
			}
			n := b.n
			if !disjoint {
				if n < prevCum {
					return fmt.Errorf("%s: cumulative counts decrease", name)
				}
				n -= prevCum
				prevCum = b.n
			}
			if n > 0 {
				out.Bins = append(out.Bins, Bin{Lower: prevUpper, Width: b.upper - prevUpper, Count: uint64(n)})
			}
			prevUpper = b.upper
		}
		s.Histograms[name] = out
		return nil
	})
}

// isCount reports whether a JSON number is an exact observation count.
func isCount(v float64) bool { return v >= 0 && v == math.Trunc(v) && v <= 1<<53 }
