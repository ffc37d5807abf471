package certs

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/internal/fsutil"
)

// StateFile is the name of the CA state file inside the state directory.
const StateFile = "ca.json"

const lockFile = "ca.lock"

// maxStateSize bounds the state file; a few roots take a few KiB.
const maxStateSize = 1 << 20

// Status of an authority in the state file.
type Status string

// Authority statuses.
const (
	// StatusActive signs new certificates; it is in the bundle.
	StatusActive Status = "active"
	// StatusPrepared is in the bundle but signs nothing until ActivateAt.
	StatusPrepared Status = "prepared"
	// StatusRetired no longer signs; it stays in the bundle until KeepUntil.
	StatusRetired Status = "retired"
)

// Authority is one root in the CA's state.
type Authority struct {
	Status Status `json:"status"`
	// CertificatePEM is the self-signed root certificate.
	CertificatePEM string `json:"certificate"`
	// PrivateKeyPEM is the PKCS#8 key; dropped once the root is retired.
	PrivateKeyPEM string     `json:"privateKey,omitempty"`
	ActivateAt    *time.Time `json:"activateAt,omitempty"`
	KeepUntil     *time.Time `json:"keepUntil,omitempty"`

	Cert *x509.Certificate `json:"-"`
	Key  crypto.Signer     `json:"-"`
}

// ID is a short, stable name for the authority (hex of its subject key id).
func (a *Authority) ID() string { return authorityID(a.Cert) }

func authorityID(c *x509.Certificate) string {
	if len(c.SubjectKeyId) > 0 {
		return hex.EncodeToString(c.SubjectKeyId)
	}
	h := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(h[:20])
}

// State is the persisted CA: the trust domain and its roots.
type State struct {
	Version     int          `json:"version"`
	TrustDomain string       `json:"trustDomain"`
	KeyType     KeyType      `json:"keyType"`
	CATTL       Duration     `json:"caTTL"`
	Authorities []*Authority `json:"authorities"`
}

// Duration is a time.Duration that marshals as a Go duration string.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Active returns the signing authority, or nil.
func (s *State) Active() *Authority { return s.find(StatusActive) }

// Prepared returns the next authority, or nil.
func (s *State) Prepared() *Authority { return s.find(StatusPrepared) }

func (s *State) find(st Status) *Authority {
	for _, a := range s.Authorities {
		if a.Status == st {
			return a
		}
	}
	return nil
}

// Roots returns every root that belongs in the trust bundle, active first.
func (s *State) Roots() []*x509.Certificate {
	order := map[Status]int{StatusActive: 0, StatusPrepared: 1, StatusRetired: 2}
	as := append([]*Authority(nil), s.Authorities...)
	sort.SliceStable(as, func(i, j int) bool { return order[as[i].Status] < order[as[j].Status] })
	out := make([]*x509.Certificate, 0, len(as))
	for _, a := range as {
		out = append(out, a.Cert)
	}
	return out
}

// Policy decides when roots are prepared, activated and pruned.
type Policy struct {
	TrustDomain spiffeid.TrustDomain
	KeyType     KeyType
	// CATTL is the lifetime of a new root.
	CATTL time.Duration
}

// PrepareAt is when the next root is prepared and published: half-way
// through the active root's life (SPIRE's schedule).
func PrepareAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)
}

// ActivateAt is when a prepared root takes over from the active one: at five
// sixths of the active root's life.
func ActivateAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 6 * 5) // divide first: 5×life overflows for century-long roots
}

// Advance moves the state forward to now: it creates the first root,
// prepares the next one at the active root's half-life, activates it at five
// sixths (or at the time `meshd ca rotate` set), and prunes retired roots
// once every certificate they signed has expired. It reports whether the
// state changed.
func (p Policy) Advance(s *State, now time.Time) (bool, error) {
	changed := false
	// Prune first: a retired root leaves once its KeepUntil has passed.
	kept := s.Authorities[:0]
	for _, a := range s.Authorities {
		if a.Status == StatusRetired && a.KeepUntil != nil && !now.Before(*a.KeepUntil) {
			changed = true
			continue
		}
		kept = append(kept, a)
	}
	s.Authorities = kept

	active := s.Active()
	next := s.Prepared()
	if next != nil && !now.Before(next.Cert.NotAfter) {
		// A prepared root that expired unused is useless.
		s.remove(next)
		next, changed = nil, true
	}
	if active != nil && !now.Before(active.Cert.NotAfter) {
		// The active root has expired (meshd was down for a long time).
		// Retire it now; everything it signed has expired too.
		s.remove(active)
		active, changed = nil, true
	}
	if active == nil {
		if next != nil {
			s.activate(next, nil, now)
			return true, nil
		}
		a, err := p.newRoot(now)
		if err != nil {
			return changed, err
		}
		a.Status = StatusActive
		s.Authorities = append(s.Authorities, a)
		return true, nil
	}
	if next == nil && !now.Before(PrepareAt(active.Cert)) {
		a, err := p.newRoot(now)
		if err != nil {
			return changed, err
		}
		at := ActivateAt(active.Cert)
		if at.Before(now) {
			at = now
		}
		a.Status, a.ActivateAt = StatusPrepared, &at
		s.Authorities = append(s.Authorities, a)
		return true, nil
	}
	if next != nil && next.ActivateAt != nil && !now.Before(*next.ActivateAt) {
		s.activate(next, active, now)
		return true, nil
	}
	return changed, nil
}

// Rotate prepares a next root now (unless one is prepared already) and
// schedules its activation at activateAt. The next root is in the bundle
// from now on; it signs from activateAt.
func (p Policy) Rotate(s *State, now, activateAt time.Time) (*Authority, error) {
	next := s.Prepared()
	if next == nil {
		a, err := p.newRoot(now)
		if err != nil {
			return nil, err
		}
		a.Status = StatusPrepared
		s.Authorities = append(s.Authorities, a)
		next = a
	}
	next.ActivateAt = &activateAt
	return next, nil
}

func (s *State) activate(next, old *Authority, now time.Time) {
	if old != nil {
		keep := old.Cert.NotAfter
		old.Status, old.KeepUntil, old.PrivateKeyPEM, old.Key = StatusRetired, &keep, "", nil
	}
	next.Status, next.ActivateAt = StatusActive, nil
}

func (s *State) remove(a *Authority) {
	for i, x := range s.Authorities {
		if x == a {
			s.Authorities = append(s.Authorities[:i], s.Authorities[i+1:]...)
			return
		}
	}
}

// rootBackdate is how far a root's NotBefore is set into the past, to absorb
// clock skew between meshd and its peers.
const rootBackdate = time.Minute

func (p Policy) newRoot(now time.Time) (*Authority, error) {
	key, err := p.KeyType.Generate()
	if err != nil {
		return nil, fmt.Errorf("generate %s root key: %w", p.KeyType, err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tdURL := p.TrustDomain.ID().URL()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"meshd"}, CommonName: "meshd root CA " + p.TrustDomain.Name(), SerialNumber: serial.String()},
		NotBefore:             now.Add(-rootBackdate),
		NotAfter:              now.Add(p.CATTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{tdURL},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Authority{
		CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		PrivateKeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		Cert:           cert,
		Key:            key,
	}, nil
}

func randSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// ParseState decodes and checks a state file's content. name is used in
// errors.
func ParseState(name string, data []byte) (*State, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: unexpected data after the state object", name)
	}
	if s.Version != 1 {
		return nil, fmt.Errorf("%s: unsupported state version %d", name, s.Version)
	}
	td, err := spiffeid.TrustDomainFromString(s.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("%s: trustDomain: %w", name, err)
	}
	kt, err := ParseKeyType(string(s.KeyType))
	if err != nil {
		return nil, fmt.Errorf("%s: keyType: %w", name, err)
	}
	s.KeyType = kt // canonical spelling, so Generate accepts it
	if s.CATTL <= 0 {
		return nil, fmt.Errorf("%s: caTTL must be positive", name)
	}
	counts := map[Status]int{}
	for i, a := range s.Authorities {
		where := fmt.Sprintf("%s: authorities[%d]", name, i)
		if a == nil {
			return nil, fmt.Errorf("%s: null authority", where)
		}
		counts[a.Status]++
		switch a.Status {
		case StatusActive, StatusPrepared:
			if a.PrivateKeyPEM == "" {
				return nil, fmt.Errorf("%s: %s root without a private key", where, a.Status)
			}
		case StatusRetired:
			if a.KeepUntil == nil {
				return nil, fmt.Errorf("%s: retired root without keepUntil", where)
			}
		default:
			return nil, fmt.Errorf("%s: unknown status %q", where, a.Status)
		}
		certs, err := parseCertsPEM([]byte(a.CertificatePEM))
		if err != nil || len(certs) != 1 {
			return nil, fmt.Errorf("%s: certificate: want exactly one PEM certificate (%v)", where, err)
		}
		a.Cert = certs[0]
		if !a.Cert.IsCA {
			return nil, fmt.Errorf("%s: certificate is not a CA", where)
		}
		if !isTrustDomainRoot(a.Cert, td) {
			return nil, fmt.Errorf("%s: root is not for trust domain %s", where, td)
		}
		if a.PrivateKeyPEM != "" {
			key, err := parseKeyPEM([]byte(a.PrivateKeyPEM))
			if err != nil {
				return nil, fmt.Errorf("%s: privateKey: %w", where, err)
			}
			if err := keyMatches(key, a.Cert); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			a.Key = key
		}
	}
	if counts[StatusActive] > 1 || counts[StatusPrepared] > 1 {
		return nil, fmt.Errorf("%s: more than one active or prepared root", name)
	}
	return &s, nil
}

func isTrustDomainRoot(c *x509.Certificate, td spiffeid.TrustDomain) bool {
	for _, u := range c.URIs {
		if u.String() == td.IDString() {
			return true
		}
	}
	return false
}

// Marshal encodes the state for the state file.
func (s *State) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Store is the state directory: ca.json (0600) in a 0700 directory, updated
// atomically under an exclusive lock shared by `meshd sds` and `meshd ca`.
type Store struct {
	Dir string
}

// Path is the state file's path.
func (st Store) Path() string { return filepath.Join(st.Dir, StateFile) }

// ErrNoState is returned by Load when the directory holds no CA yet.
var ErrNoState = errors.New("no CA state")

// Update locks the store, loads the state (nil if there is none), calls fn,
// and writes the state fn returns back if fn reports a change.
func (st Store) Update(fn func(s *State) (*State, bool, error)) (*State, error) {
	s, _, err := st.UpdateStat(fn)
	return s, err
}

// UpdateStat is Update that also returns the state file's FileInfo as it
// was when the lock was released, so a caller can tell a later outside
// change from its own write.
func (st Store) UpdateStat(fn func(s *State) (*State, bool, error)) (*State, os.FileInfo, error) {
	if err := st.ensureDir(); err != nil {
		return nil, nil, err
	}
	unlock, err := st.lock()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	s, err := st.load()
	if err != nil && !errors.Is(err, ErrNoState) {
		return nil, nil, err
	}
	s, changed, err := fn(s)
	if err != nil {
		return nil, nil, err
	}
	if changed {
		if err := st.write(s); err != nil {
			return nil, nil, err
		}
	}
	fi, err := os.Stat(st.Path())
	if err != nil {
		return nil, nil, fmt.Errorf("stat CA state: %w", err)
	}
	return s, fi, nil
}

// Load reads the state without changing it.
func (st Store) Load() (*State, error) {
	unlock, err := st.lock()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", st.Dir, ErrNoState)
		}
		return nil, err
	}
	defer unlock()
	return st.load()
}

func (st Store) ensureDir() error {
	if err := os.MkdirAll(st.Dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	fi, err := os.Stat(st.Dir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state dir %s is not a directory", st.Dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("state dir %s has mode %04o; it holds CA keys and must be 0700 (chmod 700 %s)", st.Dir, fi.Mode().Perm(), st.Dir)
	}
	return nil
}

func (st Store) lock() (func(), error) {
	unlock, err := fsutil.Lock(filepath.Join(st.Dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", st.Dir, err)
	}
	return unlock, nil
}

func (st Store) load() (*State, error) {
	p := st.Path()
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", st.Dir, ErrNoState)
	}
	if err != nil {
		return nil, fmt.Errorf("read CA state: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read CA state: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("CA state file %s has mode %04o; it holds private keys and must be 0600 (chmod 600 %s)", p, fi.Mode().Perm(), p)
	}
	if fi.Size() > maxStateSize {
		return nil, fmt.Errorf("CA state file %s is corrupted: %d bytes (limit %d)", p, fi.Size(), maxStateSize)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("read CA state %s: %w", p, err)
	}
	s, err := ParseState(p, data)
	if err != nil {
		return nil, fmt.Errorf("CA state is corrupted (move %s aside to start a new CA; workloads will then trust only the new root): %w", p, err)
	}
	return s, nil
}

func (st Store) write(s *State) error {
	data, err := s.Marshal()
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(st.Path(), data, 0o600); err != nil {
		return fmt.Errorf("write CA state: %w", err)
	}
	return nil
}
