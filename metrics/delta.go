package metrics

// Delta is one series' change since the previous collection: a counter's
// increase (Value), a gauge's current value, a histogram's new
// observations (Bins).
type Delta struct {
	*Series
	Value float64
	Bins  []Bin
}

// deltas turns cumulative snapshots into per-interval changes for the push
// exporters (DogStatsD, EMF). The first collection only sets the baseline
// (meshd may start long after Envoy: its history is not one interval's
// traffic); a series that appears later counts from zero; a counter or
// histogram that goes backwards was reset by an Envoy restart, and its new
// value is the delta. Never negative.
type deltas struct {
	primed bool
	vals   map[string]float64
	hists  map[string]map[float64]uint64
}

func (d *deltas) next(series []Series) []Delta {
	vals := make(map[string]float64, len(series))
	hists := map[string]map[float64]uint64{}
	var out []Delta
	for i := range series {
		s := &series[i]
		k := s.key()
		switch s.Kind {
		case Gauge:
			out = append(out, Delta{Series: s, Value: s.Value})
		case Counter:
			vals[k] = s.Value
			prev, seen := d.vals[k]
			if !d.primed {
				continue
			}
			v := s.Value
			if seen && v >= prev {
				v -= prev
			}
			out = append(out, Delta{Series: s, Value: v})
		case HistogramKind:
			cur := make(map[float64]uint64, len(s.Hist.Bins))
			for _, b := range s.Hist.Bins {
				cur[b.Lower] = b.Count
			}
			hists[k] = cur
			if !d.primed {
				continue
			}
			prev := d.hists[k]
			reset := false
			for lower, n := range prev {
				if cur[lower] < n {
					reset = true
					break
				}
			}
			var bins []Bin
			for _, b := range s.Hist.Bins {
				n := b.Count
				if !reset {
					n -= prev[b.Lower]
				}
				if n > 0 {
					bins = append(bins, Bin{Lower: b.Lower, Width: b.Width, Count: n})
				}
			}
			out = append(out, Delta{Series: s, Bins: bins})
		}
	}
	d.vals, d.hists, d.primed = vals, hists, true
	return out
}
