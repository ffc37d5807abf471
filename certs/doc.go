// Package certs is meshd's certificate authority.
//
// It creates and persists a self-signed root (or uses an operator-provided
// root or intermediate), issues X.509-SVIDs (URI SAN = SPIFFE ID, plus the DNS
// SANs App Mesh requires) with go-spiffe types, and rolls its root over
// without downtime: a next root is prepared and published in the trust bundle
// before it signs anything, and a retired root stays in the bundle until
// every certificate it signed has expired (leaf lifetimes are capped at the
// issuing root's NotAfter, so that is the root's own NotAfter).
//
// Timing follows SPIRE: a root is prepared at half its life and activated at
// five sixths; a leaf is renewed at half its life with ±10 % jitter
// (RotationTime). Time is always passed in or injected, never read from a
// global clock in logic that decides anything.
package certs
