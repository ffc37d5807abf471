package sds

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshd/meshd/certs"
)

type cacheEnv struct {
	ca     *certs.CA
	cache  *Cache
	reg    *prometheus.Registry
	offset atomic.Int64 // wall-clock jump applied to both CA and cache
	cancel context.CancelFunc
	done   chan struct{}
}

// newCacheEnv builds a CA and a running cache inside a synctest bubble.
func newCacheEnv(t *testing.T, svidTTL time.Duration) *cacheEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "cache")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &cacheEnv{reg: prometheus.NewRegistry(), done: make(chan struct{})}
	now := func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.ca, err = certs.New(certs.Config{TrustDomain: spiffeid.RequireTrustDomainFromString(testTD), StateDir: filepath.Join(dir, "s"),
		SVIDTTL: svidTTL, CATTL: 30 * 24 * time.Hour, Now: now, Log: log, Registerer: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	e.cache, err = NewCache(CacheConfig{CA: e.ca, Now: now, Log: log, Registerer: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { defer close(e.done); _ = e.cache.Run(ctx) }()
	return e
}

func (e *cacheEnv) stop() { e.cancel(); <-e.done }

// subscribe opens one stream's subscription to testIdentity and mints its
// first SVID.
func (e *cacheEnv) subscribe(t *testing.T) (*subscriber, *entry, *issued) {
	t.Helper()
	sub := newSubscriber()
	ent := e.cache.acquire(testIdentity, sub)
	first, err := e.cache.get(ent)
	if err != nil {
		t.Fatal(err)
	}
	return sub, ent, first
}

var testIdentity = &Identity{SPIFFEID: spiffeid.RequireFromString(serviceB), DNSNames: []string{"serviceb.apps.local"}}

func drained(s *subscriber) bool {
	select {
	case <-s.wake:
		return true
	default:
		return false
	}
}

// TestCacheRenewsAtRotationTime: nothing happens before the rotation time;
// at it, the SVID is renewed once and its subscriber woken.
func TestCacheRenewsAtRotationTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newCacheEnv(t, time.Hour)
		defer e.stop()
		sub, ent, first := e.subscribe(t)
		rt := certs.RotationTime(first.svid.Certificates[0])
		time.Sleep(time.Until(rt) - time.Second)
		synctest.Wait()
		if drained(sub) || ent.cur.Load() != first {
			t.Fatal("renewed before the rotation time")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !drained(sub) {
			t.Fatal("subscriber not woken at the rotation time")
		}
		second := ent.cur.Load()
		if second == first || second.serial.Cmp(first.serial) == 0 {
			t.Fatal("SVID not renewed")
		}
		if got := metric(t, e.reg, "meshd_sds_svid_rotations_total"); got != 1 {
			t.Fatalf("rotations = %v", got)
		}
		// The next renewal follows the new certificate's own schedule.
		time.Sleep(time.Until(certs.RotationTime(second.svid.Certificates[0])) + time.Second)
		synctest.Wait()
		if ent.cur.Load() == second {
			t.Fatal("second renewal missing")
		}
		e.cache.release(ent, sub)
	})
}

// TestCacheClockJump: a wall-clock step that leaves the SVID expired is
// noticed within maxWait, without waiting for the old timer.
func TestCacheClockJump(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newCacheEnv(t, time.Hour)
		defer e.stop()
		sub, ent, first := e.subscribe(t)
		time.Sleep(time.Second)
		synctest.Wait()
		e.offset.Store(int64(2 * time.Hour)) // NTP step / VM resume
		time.Sleep(31 * time.Second)         // the documented bound: a jump is noticed within 30s
		synctest.Wait()
		cur := ent.cur.Load()
		if cur == first {
			t.Fatal("expired SVID not replaced after a clock jump")
		}
		if leaf := cur.svid.Certificates[0]; !leaf.NotAfter.After(time.Now().Add(2 * time.Hour)) {
			t.Fatalf("replacement expires at %s, before the jumped clock + TTL", leaf.NotAfter)
		}
		e.cache.release(ent, sub)
	})
}

// TestCacheEvictsIdle: an SVID with no stream left is dropped after the
// idle period, with its expiry metric.
func TestCacheEvictsIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newCacheEnv(t, time.Hour)
		defer e.stop()
		sub, ent, _ := e.subscribe(t)
		if metric(t, e.reg, "meshd_sds_svid_expiry_timestamp_seconds", "spiffe_id", serviceB) == 0 {
			t.Fatal("expiry metric missing")
		}
		e.cache.release(ent, sub)
		time.Sleep(4 * time.Minute)
		synctest.Wait()
		if metric(t, e.reg, "meshd_sds_svids_cached") != 1 {
			t.Fatal("evicted too early")
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if metric(t, e.reg, "meshd_sds_svids_cached") != 0 {
			t.Fatal("idle SVID not evicted")
		}
		if metric(t, e.reg, "meshd_sds_svid_expiry_timestamp_seconds", "spiffe_id", serviceB) != 0 {
			t.Fatal("expiry metric of an evicted SVID still exported")
		}
	})
}

// TestCacheSingleIssuance: many streams asking at once cause one signing.
func TestCacheSingleIssuance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newCacheEnv(t, time.Hour)
		defer e.stop()
		var wg sync.WaitGroup
		got := make([]*issued, 50)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sub := newSubscriber()
				ent := e.cache.acquire(testIdentity, sub)
				defer e.cache.release(ent, sub)
				is, err := e.cache.get(ent)
				if err != nil {
					t.Error(err)
				}
				got[i] = is
			}()
		}
		wg.Wait()
		for _, is := range got {
			if is != got[0] {
				t.Fatal("streams got different SVIDs")
			}
		}
		if n := metric(t, e.reg, "meshd_ca_svids_issued_total"); n != 1 {
			t.Fatalf("issued %v SVIDs for one identity", n)
		}
	})
}

// flakyCA fails Issue while down is set, counting attempts.
type flakyCA struct {
	*certs.CA
	down     atomic.Bool
	attempts atomic.Int64
}

func (f *flakyCA) Issue(id spiffeid.ID, dns []string) (*x509svid.SVID, error) {
	f.attempts.Add(1)
	if f.down.Load() {
		return nil, errors.New("CA service unreachable")
	}
	return f.CA.Issue(id, dns)
}

// TestCacheRenewalFailures: while the CA is unreachable the current SVID
// keeps being served and renewal is retried with bounded, jittered backoff
// and an alarm; once it expires it is no longer served; when the CA comes
// back the SVID is renewed and the alarm clears.
func TestCacheRenewalFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newCacheEnv(t, time.Hour)
		e.stop() // replace the cache with one over a flaky CA
		flaky := &flakyCA{CA: e.ca}
		reg := prometheus.NewRegistry()
		cache, err := NewCache(CacheConfig{CA: flaky, Log: slog.New(slog.DiscardHandler), Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = cache.Run(ctx) }()
		defer func() { cancel(); <-done }()

		sub := newSubscriber()
		ent := cache.acquire(testIdentity, sub)
		first, err := cache.get(ent)
		if err != nil {
			t.Fatal(err)
		}
		leaf := first.svid.Certificates[0]
		flaky.down.Store(true)
		time.Sleep(time.Until(certs.RotationTime(leaf)) + time.Second)
		synctest.Wait()
		if got := metric(t, reg, "meshd_sds_svid_renewal_overdue"); got != 1 {
			t.Fatalf("renewal_overdue = %v after a failed renewal, want 1", got)
		}
		if is, err := cache.get(ent); err != nil || is != first {
			t.Fatalf("current SVID not served while still valid: %v", err)
		}
		// Backoff: from 1 s doubling to 30 s, each wait jittered within
		// [b/2, b]. Over 10 minutes that is at least 600/30 and at most
		// about 5 + 600/15 attempts.
		before := flaky.attempts.Load()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		n := flaky.attempts.Load() - before
		if n < 20 || n > 50 {
			t.Fatalf("%d renewal attempts in 10 minutes; want between 20 and 50 (jittered backoff capped at 30 s)", n)
		}
		time.Sleep(time.Until(leaf.NotAfter) + time.Second)
		synctest.Wait()
		if is, err := cache.get(ent); err == nil {
			t.Fatalf("served an SVID that expired at %s (now %s)", is.notAfter, time.Now())
		}
		flaky.down.Store(false)
		time.Sleep(31 * time.Second)
		synctest.Wait()
		is, err := cache.get(ent)
		if err != nil || !time.Now().Before(is.notAfter) || is == first {
			t.Fatalf("not renewed once the CA came back: %v", err)
		}
		if got := metric(t, reg, "meshd_sds_svid_renewal_overdue"); got != 0 {
			t.Fatalf("renewal_overdue = %v after recovery, want 0", got)
		}
		if !drained(sub) {
			t.Fatal("subscriber not woken by the renewal")
		}
		cache.release(ent, sub)
	})
}
