package certs

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"time"
)

// RotationJitter is the fraction of a certificate's lifetime by which its
// renewal point may move either side of the half-life (SPIRE uses ±10 %).
const RotationJitter = 0.10

// RotationTime is when cert should be renewed: at half its lifetime, moved by
// up to ±10 % of the lifetime. The jitter is derived from the certificate's
// signature, so it is stable for one certificate (a pure function, testable
// in a table) yet spread across many certificates issued at the same moment,
// which keeps a fleet from renewing in lock-step.
func RotationTime(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	if life <= 0 {
		return cert.NotBefore
	}
	u := unitInterval(cert.Signature) // [0,1)
	frac := 0.5 + RotationJitter*(2*u-1)
	return cert.NotBefore.Add(time.Duration(float64(life) * frac))
}

// ShouldRotate reports whether cert is due for renewal at now. An expired or
// not-yet-valid certificate is always due.
func ShouldRotate(now time.Time, cert *x509.Certificate) bool {
	if now.Before(cert.NotBefore) || !now.Before(cert.NotAfter) {
		return true
	}
	return !now.Before(RotationTime(cert))
}

func unitInterval(seed []byte) float64 {
	h := sha256.Sum256(seed)
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / float64(1<<53)
}
