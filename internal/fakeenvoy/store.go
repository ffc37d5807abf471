package fakeenvoy

import (
	"sort"
	"strings"
)

// Kind is the type of a stat.
type Kind int

// Stat kinds, in the order Envoy lists them.
const (
	TextReadout Kind = iota
	Counter
	Gauge
	Histogram
)

func (k Kind) String() string {
	return [...]string{"text_readout", "counter", "gauge", "histogram"}[k]
}

// stat is one counter, gauge, text readout or histogram.
type stat struct {
	name      string
	kind      Kind
	value     uint64 // counter, gauge
	text      string // text readout
	hist      *histogram
	used      bool
	tags      []Tag
	extracted string // tag-extracted name
	lazy      bool   // created on first use, not with the config
	owner     string // "cluster:<name>", "listener:<root>", … for removal
}

// store holds the stats by name. The Envoy's mutex guards it.
type store struct {
	tags  *tagProducer
	stats map[string]*stat
}

func newStore(tp *tagProducer) *store {
	return &store{tags: tp, stats: map[string]*stat{}}
}

// get returns the stat, creating it with kind if it does not exist. A name
// already used by another kind keeps its kind (as in Envoy, where the
// second lookup would be a different stat in another map; the fake keeps
// one namespace).
func (s *store) get(name string, kind Kind, owner string, lazy bool) *stat {
	if st := s.stats[name]; st != nil {
		return st
	}
	tags, extracted := s.tags.produce(name)
	st := &stat{name: name, kind: kind, tags: tags, extracted: extracted, owner: owner, lazy: lazy}
	if kind == Histogram {
		st.hist = &histogram{}
	}
	s.stats[name] = st
	return st
}

func (s *store) counter(name, owner string) *stat {
	return s.get(name, Counter, owner, false)
}

// gauge returns a gauge, creating it if needed; set marks a gauge Envoy
// sets to v on creation (its used flag is then on).
func (s *store) gauge(name, owner string, v uint64, set bool) *stat {
	created := s.stats[name] == nil
	st := s.get(name, Gauge, owner, false)
	if set && created {
		st.value, st.used = v, true
	}
	return st
}

func (s *store) histogram(name, owner string) *stat {
	return s.get(name, Histogram, owner, false)
}

func (s *store) removeOwner(owner string) {
	for n, st := range s.stats {
		if st.owner == owner {
			delete(s.stats, n)
		}
	}
}

func (st *stat) add(d uint64) {
	st.value += d
	st.used = true
}

func (st *stat) sub(d uint64) {
	if d > st.value {
		st.value = 0
	} else {
		st.value -= d
	}
	st.used = true
}

func (st *stat) set(v uint64) {
	st.value = v
	st.used = true
}

// sorted returns the stats of kind, sorted by name bytewise (Envoy's
// std::map<std::string, …> order for /stats).
func (s *store) sorted(kind Kind) []*stat {
	var out []*stat
	for _, st := range s.stats {
		if st.kind == kind {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// statNameLess is Envoy's SymbolTable::lessThan: names compared token by
// token (tokens split at '.'), each token bytewise.
func statNameLess(a, b string) bool {
	for {
		ia, ib := strings.IndexByte(a, '.'), strings.IndexByte(b, '.')
		ta, tb := a, b
		if ia >= 0 {
			ta = a[:ia]
		}
		if ib >= 0 {
			tb = b[:ib]
		}
		if ta != tb {
			return ta < tb
		}
		if ia < 0 || ib < 0 {
			return ia < 0 && ib >= 0
		}
		a, b = a[ia+1:], b[ib+1:]
	}
}
