package fakeenvoy

import (
	"math"
	"sort"
)

// Envoy keeps histograms in circllhist ("log-linear") bins: two significant
// decimal digits, so a value v in [10^e, 10^(e+1)) lands in the bin
// [floor(v/10^(e-1))·10^(e-1), +10^(e-1)), and 0 has a bin of its own. This
// file reproduces the binning, the quantile interpolation and the bucket
// counts of libcircllhist as Envoy uses them.

// DefaultBuckets are the upper bounds Envoy reports histogram buckets at
// unless stats_config.histogram_bucket_settings says otherwise.
var DefaultBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// SupportedQuantiles are the quantiles Envoy computes (as fractions).
var SupportedQuantiles = []float64{0, 0.25, 0.5, 0.75, 0.90, 0.95, 0.99, 0.995, 0.999, 1}

// bin is a circllhist bucket: val in 10..99 (0 for the zero bin) times
// 10^(exp-1).
type bin struct {
	val int8
	exp int8
}

func (b bin) less(o bin) bool {
	if b.val == 0 || o.val == 0 {
		return b.val == 0 && o.val != 0
	}
	if b.exp != o.exp {
		return b.exp < o.exp
	}
	return b.val < o.val
}

// lower is hist_bucket_to_double: the bin's lower bound.
func (b bin) lower() float64 {
	if b.val == 0 {
		return 0
	}
	return (float64(b.val) / 10.0) * math.Pow10(int(b.exp))
}

// width is hist_bucket_to_double_bin_width.
func (b bin) width() float64 {
	if b.val == 0 {
		return 0
	}
	return math.Pow10(int(b.exp)) / 10.0
}

// binOf returns the bin of v (v ≥ 0, finite); ok is false for values
// circllhist cannot hold (NaN, ±Inf, overflow).
func binOf(v float64) (bin, bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return bin{}, false
	}
	if v < 0 {
		v = 0 // Envoy's histograms record unsigned integers
	}
	if v == 0 {
		return bin{}, true
	}
	if v == math.Trunc(v) && v < 1<<62 {
		return intBin(int64(v)), true
	}
	e := int(math.Floor(math.Log10(v)))
	// math.Log10 is not exact at powers of ten; C's log10 is.
	for math.Pow10(e) > v {
		e--
	}
	for math.Pow10(e+1) <= v {
		e++
	}
	if e < -128 {
		return bin{}, true
	}
	if e > 127 {
		return bin{}, false
	}
	d := v / math.Pow10(e) * 10
	val := int(math.Floor(d + 1e-13))
	if val == 100 {
		val = 10
		e++
	}
	if val < 10 || val > 99 || e > 127 {
		return bin{}, false
	}
	return bin{val: int8(val), exp: int8(e)}, true
}

// intBin is int_scale_to_hist_bucket(v, 0): Envoy's path for the integer
// values it records.
func intBin(v int64) bin {
	scale := 1
	if v < 10 {
		v *= 10
		scale--
	}
	for v >= 100 {
		v /= 10
		scale++
	}
	return bin{val: int8(v), exp: int8(scale)}
}

// hist is one circllhist histogram: counts per bin, sorted by bin.
type hist struct {
	bins   []bin
	counts []uint64
}

func (h *hist) insert(b bin, n uint64) {
	i := sort.Search(len(h.bins), func(i int) bool { return !h.bins[i].less(b) })
	if i < len(h.bins) && h.bins[i] == b {
		h.counts[i] += n
		return
	}
	h.bins = append(h.bins, bin{})
	h.counts = append(h.counts, 0)
	copy(h.bins[i+1:], h.bins[i:])
	copy(h.counts[i+1:], h.counts[i:])
	h.bins[i], h.counts[i] = b, n
}

func (h *hist) merge(o *hist) {
	for i, b := range o.bins {
		h.insert(b, o.counts[i])
	}
}

func (h *hist) clear() { h.bins, h.counts = nil, nil }

func (h *hist) count() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// quantiles is hist_approx_quantile: NaN for every quantile of an empty
// histogram.
func (h *hist) quantiles(qs []float64) []float64 {
	out := make([]float64, len(qs))
	total := float64(h.count())
	if total == 0 {
		for i := range out {
			out[i] = math.NaN()
		}
		return out
	}
	for i, q := range qs {
		out[i] = total * q
	}
	var width, left, lowerCnt, upperCnt float64
	ib := 0
	track := func(i int) {
		width = h.bins[i].width()
		left = h.bins[i].lower()
		lowerCnt = upperCnt
		upperCnt = lowerCnt + float64(h.counts[i])
	}
	for ; ib < len(h.bins); ib++ {
		if h.counts[ib] == 0 {
			continue
		}
		track(ib)
		break
	}
	for iq := range out {
		for ib < len(h.bins)-1 && upperCnt < out[iq] {
			ib++
			track(ib)
		}
		switch {
		case lowerCnt == out[iq]:
			out[iq] = left
		case upperCnt == out[iq]:
			out[iq] = left + width
		case width == 0:
			out[iq] = left
		default:
			out[iq] = left + (out[iq]-lowerCnt)/(upperCnt-lowerCnt)*width
		}
	}
	return out
}

// countBelow is hist_approx_count_below: the values in bins entirely at or
// below threshold.
func (h *hist) countBelow(threshold float64) uint64 {
	var n uint64
	for i, b := range h.bins {
		if b.lower()+b.width() <= threshold {
			n += h.counts[i]
		} else {
			break
		}
	}
	return n
}

// cumulativeBuckets are the counts at or below each bound.
func (h *hist) cumulativeBuckets(bounds []float64) []uint64 {
	out := make([]uint64, len(bounds))
	for i, b := range bounds {
		out[i] = h.countBelow(b)
	}
	return out
}

// disjointBuckets are computeDisjointBuckets: each bound's count less the
// previous bound's.
func (h *hist) disjointBuckets(bounds []float64) []uint64 {
	out := h.cumulativeBuckets(bounds)
	var prev uint64
	for i, c := range out {
		out[i] = c - prev
		prev = c
	}
	return out
}

// DetailBucket is one bin as /stats?histogram_buckets=detailed shows it.
type DetailBucket struct {
	LowerBound float64
	Width      float64
	Count      uint64
}

func (h *hist) detail() []DetailBucket {
	out := make([]DetailBucket, 0, len(h.bins))
	for i, b := range h.bins {
		out = append(out, DetailBucket{LowerBound: b.lower(), Width: b.width(), Count: h.counts[i]})
	}
	return out
}

// histogram is a ParentHistogram: values recorded since the last merge
// (pending), the last merged interval, and everything merged so far.
type histogram struct {
	pending, interval, cumulative hist
	pendingSum, sum               float64
	pendingUsed                   bool
	merged                        bool // Envoy's used(): merged with data at least once
}

func (h *histogram) record(v float64) {
	b, ok := binOf(v)
	if !ok {
		return
	}
	if v < 0 {
		v = 0
	}
	h.pending.insert(b, 1)
	h.pendingSum += v
	h.pendingUsed = true
}

// merge is ParentHistogramImpl::merge: only a histogram that has ever had a
// value is merged.
func (h *histogram) merge() {
	if !h.merged && !h.pendingUsed {
		return
	}
	h.interval.clear()
	h.interval.merge(&h.pending)
	h.cumulative.merge(&h.pending)
	h.sum += h.pendingSum
	h.pending.clear()
	h.pendingSum = 0
	h.pendingUsed = false
	h.merged = true
}
