package certs

import (
	"crypto"
	"crypto/x509"
	"testing"
	"time"
)

// leafCerts generates n certificates that all have the same validity window,
// as if issued at the same moment, signed by one key.
func leafCerts(t *testing.T, key crypto.Signer, n int, notBefore, notAfter time.Time) []*x509.Certificate {
	t.Helper()
	out := make([]*x509.Certificate, n)
	for i := range out {
		out[i], _ = makeCert(t, certSpec{cn: "leaf", notBefore: notBefore, notAfter: notAfter, key: key})
	}
	return out
}

// TestRotationTimeWithinJitterBounds checks the half-life ±10 % bound for
// many generated certificates of many lifetimes and start dates.
func TestRotationTimeWithinJitterBounds(t *testing.T) {
	key := newP256(t)
	starts := []time.Time{
		t0,
		time.Date(2001, time.September, 9, 1, 46, 40, 0, time.UTC),
		time.Date(2049, time.December, 1, 0, 0, 0, 0, time.UTC),
	}
	lifetimes := []time.Duration{
		time.Second, 3 * time.Second, time.Minute, time.Hour, 7777 * time.Second,
		24 * time.Hour, 90 * 24 * time.Hour, 397 * 24 * time.Hour,
	}
	for _, life := range lifetimes {
		t.Run(life.String(), func(t *testing.T) {
			for _, nb := range starts {
				for _, c := range leafCerts(t, key, 20, nb, nb.Add(life)) {
					rt := RotationTime(c)
					off := rt.Sub(c.NotBefore)
					// [0.4, 0.6) of the lifetime, with 1 ns of float rounding.
					lo, hi := life*2/5-1, life*3/5+1
					if off < lo || off > hi {
						t.Fatalf("cert %s..%s: RotationTime at %s into a %s life (%.4f), want within [%s, %s]",
							c.NotBefore, c.NotAfter, off, life, float64(off)/float64(life), lo, hi)
					}
					if ShouldRotate(rt.Add(-time.Nanosecond), c) {
						t.Fatalf("ShouldRotate just before RotationTime %s = true, want false", rt)
					}
					if !ShouldRotate(rt, c) {
						t.Fatalf("ShouldRotate at RotationTime %s = false, want true", rt)
					}
				}
			}
		})
	}
}

// TestRotationTimeStable checks that one certificate always gets the same
// renewal point, also from an independently parsed copy, and that
// ShouldRotate flips from false to true exactly once over its life.
func TestRotationTimeStable(t *testing.T) {
	c, _ := makeCert(t, certSpec{cn: "leaf", notBefore: t0, notAfter: t0.Add(time.Hour)})
	want := RotationTime(c)
	for i := 0; i < 100; i++ {
		if got := RotationTime(c); !got.Equal(want) {
			t.Fatalf("call %d: RotationTime = %s, want %s", i, got, want)
		}
	}
	copyOf, err := x509.ParseCertificate(c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := RotationTime(copyOf); !got.Equal(want) {
		t.Fatalf("RotationTime of a re-parsed copy = %s, want %s", got, want)
	}

	// Stepping through the life a second at a time, the flip must come at
	// the first step at or after RotationTime.
	flipAt := want.Truncate(time.Second)
	if flipAt.Before(want) {
		flipAt = flipAt.Add(time.Second)
	}
	flips := 0
	prev := ShouldRotate(c.NotBefore, c)
	if prev {
		t.Fatalf("ShouldRotate at NotBefore = true, want false")
	}
	for now := c.NotBefore; now.Before(c.NotAfter); now = now.Add(time.Second) {
		got := ShouldRotate(now, c)
		if got != prev {
			flips++
			if !now.Equal(flipAt) {
				t.Fatalf("ShouldRotate flipped at %s, want %s (RotationTime %s)", now, flipAt, want)
			}
		}
		prev = got
	}
	if flips != 1 || !prev {
		t.Fatalf("ShouldRotate flipped %d times over the lifetime (ending %v), want exactly once to true", flips, prev)
	}
}

// TestRotationTimeSpread checks that certificates issued at the same moment
// get different renewal points spread over the whole jitter window.
func TestRotationTimeSpread(t *testing.T) {
	const n = 500
	life := 24 * time.Hour
	certs := leafCerts(t, newP256(t), n, t0, t0.Add(life))

	seen := map[time.Time]bool{}
	var buckets [10]int
	minF, maxF, sum := 1.0, 0.0, 0.0
	for _, c := range certs {
		rt := RotationTime(c)
		seen[rt] = true
		f := float64(rt.Sub(c.NotBefore)) / float64(life)
		minF, maxF, sum = min(minF, f), max(maxF, f), sum+f
		b := int((f - 0.4) / 0.02)
		if b < 0 || b >= len(buckets) {
			t.Fatalf("RotationTime fraction %.5f outside [0.4, 0.6)", f)
		}
		buckets[b]++
	}
	if len(seen) < n-5 {
		t.Errorf("%d certificates issued together got only %d distinct rotation times; jitter is not spread", n, len(seen))
	}
	if minF > 0.43 || maxF < 0.57 {
		t.Errorf("rotation fractions span only [%.4f, %.4f], want close to [0.4, 0.6)", minF, maxF)
	}
	if mean := sum / n; mean < 0.49 || mean > 0.51 {
		t.Errorf("mean rotation fraction %.4f, want about 0.5", mean)
	}
	// Uniform jitter puts about 50 of 500 in each tenth of the window; fewer
	// than 10 is more than 6 standard deviations off.
	for i, k := range buckets {
		if k < 10 {
			t.Errorf("only %d of %d rotation times in [%.2f, %.2f) of the lifetime: %v", k, n, 0.4+0.02*float64(i), 0.42+0.02*float64(i), buckets)
		}
	}
}

// TestShouldRotate is a table of (now, cert) cases around the validity
// window, run against several certificates so that no single jitter value
// makes it pass by accident.
func TestShouldRotate(t *testing.T) {
	life := time.Hour
	certs := leafCerts(t, newP256(t), 20, t0, t0.Add(life))
	cases := []struct {
		name string
		now  func(c *x509.Certificate) time.Time
		want bool
	}{
		{"long before NotBefore", func(c *x509.Certificate) time.Time { return c.NotBefore.Add(-24 * time.Hour) }, true},
		{"1ns before NotBefore (not yet valid)", func(c *x509.Certificate) time.Time { return c.NotBefore.Add(-time.Nanosecond) }, true},
		{"at NotBefore", func(c *x509.Certificate) time.Time { return c.NotBefore }, false},
		{"at 39% of life", func(c *x509.Certificate) time.Time { return c.NotBefore.Add(life * 39 / 100) }, false},
		{"1ns before RotationTime", func(c *x509.Certificate) time.Time { return RotationTime(c).Add(-time.Nanosecond) }, false},
		{"at RotationTime", func(c *x509.Certificate) time.Time { return RotationTime(c) }, true},
		{"at 61% of life", func(c *x509.Certificate) time.Time { return c.NotBefore.Add(life * 61 / 100) }, true},
		{"1ns before NotAfter", func(c *x509.Certificate) time.Time { return c.NotAfter.Add(-time.Nanosecond) }, true},
		{"at NotAfter (expired)", func(c *x509.Certificate) time.Time { return c.NotAfter }, true},
		{"long after NotAfter", func(c *x509.Certificate) time.Time { return c.NotAfter.Add(365 * 24 * time.Hour) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range certs {
				now := tc.now(c)
				if got := ShouldRotate(now, c); got != tc.want {
					t.Fatalf("ShouldRotate(%s) for cert valid %s..%s (RotationTime %s) = %v, want %v",
						now, c.NotBefore, c.NotAfter, RotationTime(c), got, tc.want)
				}
			}
		})
	}
}

// TestRotationZeroAndNegativeLifetime: a certificate without a positive
// lifetime is renewed at its NotBefore and is always due.
func TestRotationZeroAndNegativeLifetime(t *testing.T) {
	key := newP256(t)
	cases := []struct {
		name     string
		notAfter time.Time
	}{
		{"zero lifetime", t0},
		{"negative lifetime", t0.Add(-time.Hour)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := makeCert(t, certSpec{cn: "leaf", notBefore: t0, notAfter: tc.notAfter, key: key})
			if got := RotationTime(c); !got.Equal(c.NotBefore) {
				t.Errorf("RotationTime = %s, want NotBefore %s", got, c.NotBefore)
			}
			for _, d := range []time.Duration{-time.Hour, -time.Nanosecond, 0, time.Nanosecond, time.Hour} {
				if !ShouldRotate(t0.Add(d), c) {
					t.Errorf("ShouldRotate(NotBefore%+v) = false, want true", d)
				}
			}
		})
	}
}
