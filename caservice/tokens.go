package caservice

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/internal/fsutil"
)

// Join tokens live next to the CA state: TokensFile (0600) in the 0700 state
// directory, guarded by its own lock file. Only each token's SHA-256 is
// stored, so the file cannot be used to enroll.
const (
	TokensFile  = "join-tokens.json"
	tokensLock  = "join-tokens.lock"
	tokenPrefix = "meshd-jt."
	// MaxTokenTTL bounds how long a join token may stay redeemable.
	MaxTokenTTL = 7 * 24 * time.Hour
	// DefaultTokenTTL is the lifetime of a token when none is given.
	DefaultTokenTTL = 10 * time.Minute
	// usedTokenKeep is how long a redeemed token's record outlives the
	// token's expiry, so that a replay is reported as such.
	usedTokenKeep = 24 * time.Hour
	maxTokensFile = 16 << 20
)

// Join-token failures caused by the token; the service answers them with
// PermissionDenied.
var (
	ErrTokenUnknown = errors.New("join token unknown")
	ErrTokenUsed    = errors.New("join token already used")
	ErrTokenExpired = errors.New("join token expired")
)

// TokenStore is the join-token file of one CA state directory.
type TokenStore struct {
	Dir string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

type tokenRecord struct {
	// SHA256 is the hex SHA-256 of the token.
	SHA256   string     `json:"sha256"`
	SPIFFEID string     `json:"spiffeID"`
	Created  time.Time  `json:"created"`
	Expires  time.Time  `json:"expires"`
	UsedAt   *time.Time `json:"usedAt,omitempty"`
}

type tokensDoc struct {
	Version int            `json:"version"`
	Tokens  []*tokenRecord `json:"tokens"`
}

func (ts TokenStore) now() time.Time {
	if ts.Now != nil {
		return ts.Now()
	}
	return time.Now()
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// Create mints a single-use join token that enrolls an agent as id, valid
// for ttl, and records its hash.
func (ts TokenStore) Create(id spiffeid.ID, ttl time.Duration) (token string, expires time.Time, err error) {
	if !IsAgentID(id) {
		return "", time.Time{}, fmt.Errorf("join token for %s: an agent's SPIFFE ID must lie under %s", id, AgentPrefix(id.TrustDomain()))
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", time.Time{}, fmt.Errorf("join token TTL %s: must be positive and at most %s", ttl, MaxTokenTTL)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, err
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	now := ts.now()
	expires = now.Add(ttl).Truncate(time.Second)
	err = ts.update(func(d *tokensDoc) (bool, error) {
		d.Tokens = append(d.Tokens, &tokenRecord{SHA256: hashToken(token), SPIFFEID: id.String(), Created: now.UTC().Truncate(time.Second), Expires: expires.UTC()})
		return true, nil
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

// Outstanding counts the tokens that can still be redeemed.
func (ts TokenStore) Outstanding() (int, error) {
	unlock, err := ts.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	d, err := ts.load()
	if err != nil {
		return 0, err
	}
	now := ts.now()
	n := 0
	for _, r := range d.Tokens {
		if r.UsedAt == nil && now.Before(r.Expires) {
			n++
		}
	}
	return n, nil
}

// redeem marks each token used (when it is valid) in one locked
// read-modify-write with one fsync, and returns one result per token.
func (ts TokenStore) redeem(tokens []string) ([]redeemResult, error) {
	out := make([]redeemResult, len(tokens))
	err := ts.update(func(d *tokensDoc) (bool, error) {
		now := ts.now()
		changed := false
		byHash := make(map[string]*tokenRecord, len(d.Tokens))
		for _, r := range d.Tokens {
			byHash[r.SHA256] = r
		}
		for i, tok := range tokens {
			r, ok := byHash[hashToken(tok)]
			switch {
			case !ok || !strings.HasPrefix(tok, tokenPrefix):
				out[i].err = ErrTokenUnknown
			case r.UsedAt != nil:
				out[i].err = fmt.Errorf("%w (at %s)", ErrTokenUsed, r.UsedAt.UTC().Format(time.RFC3339))
			case !now.Before(r.Expires):
				out[i].err = fmt.Errorf("%w (at %s)", ErrTokenExpired, r.Expires.UTC().Format(time.RFC3339))
			default:
				id, err := spiffeid.FromString(r.SPIFFEID)
				if err != nil {
					out[i].err = fmt.Errorf("join token record: %w", err)
					continue
				}
				used := now.UTC()
				r.UsedAt = &used
				out[i].id = id
				changed = true
			}
		}
		return changed, nil
	})
	return out, err
}

type redeemResult struct {
	id  spiffeid.ID
	err error
}

func (ts TokenStore) lock() (func(), error) {
	if err := os.MkdirAll(ts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("join tokens: %w", err)
	}
	return fsutil.Lock(filepath.Join(ts.Dir, tokensLock))
}

func (ts TokenStore) path() string { return filepath.Join(ts.Dir, TokensFile) }

func (ts TokenStore) load() (*tokensDoc, error) {
	p := ts.path()
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return &tokensDoc{Version: 1}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("join tokens: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("join tokens: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("join tokens file %s has mode %04o; it must be 0600 (chmod 600 %s)", p, fi.Mode().Perm(), p)
	}
	if fi.Size() > maxTokensFile {
		return nil, fmt.Errorf("join tokens file %s is corrupted: %d bytes (limit %d)", p, fi.Size(), maxTokensFile)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var d tokensDoc
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("join tokens file %s is corrupted (move it aside; outstanding tokens are then lost): %w", p, err)
	}
	if d.Version != 1 {
		return nil, fmt.Errorf("join tokens file %s: unsupported version %d", p, d.Version)
	}
	return &d, nil
}

// update applies fn under the lock, prunes records long past expiry and,
// when fn or the pruning changed something, writes the file back
// atomically (a batch of unknown tokens costs no write).
func (ts TokenStore) update(fn func(*tokensDoc) (bool, error)) error {
	unlock, err := ts.lock()
	if err != nil {
		return err
	}
	defer unlock()
	d, err := ts.load()
	if err != nil {
		return err
	}
	changed, err := fn(d)
	if err != nil {
		return err
	}
	now := ts.now()
	n := len(d.Tokens)
	d.Tokens = slices.DeleteFunc(d.Tokens, func(r *tokenRecord) bool { return now.Sub(r.Expires) > usedTokenKeep })
	if !changed && len(d.Tokens) == n {
		return nil
	}
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(ts.path(), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write join tokens: %w", err)
	}
	return nil
}

// redeemer batches concurrent redemptions into one file update (group
// commit): the first caller becomes the leader and writes for everyone
// queued meanwhile, so 1,000 agents enrolling at once cost a few fsyncs.
type redeemer struct {
	store TokenStore

	mu      sync.Mutex
	pending []*redeemReq
	leading bool
}

type redeemReq struct {
	token string
	done  chan redeemResult
}

// Redeem consumes token and returns the agent ID it was minted for. The
// token is marked used on disk before Redeem returns successfully.
func (r *redeemer) Redeem(ctx context.Context, token string) (spiffeid.ID, error) {
	req := &redeemReq{token: token, done: make(chan redeemResult, 1)}
	r.mu.Lock()
	r.pending = append(r.pending, req)
	lead := !r.leading
	r.leading = true
	r.mu.Unlock()
	if lead {
		r.lead()
	}
	select {
	case res := <-req.done:
		return res.id, res.err
	case <-ctx.Done():
		// The token may still be consumed by the batch in flight; the
		// agent then needs a new one, as after any failed enrollment.
		return spiffeid.ID{}, ctx.Err()
	}
}

func (r *redeemer) lead() {
	for {
		r.mu.Lock()
		batch := r.pending
		r.pending = nil
		if len(batch) == 0 {
			r.leading = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		toks := make([]string, len(batch))
		for i, q := range batch {
			toks[i] = q.token
		}
		res, err := r.store.redeem(toks)
		for i, q := range batch {
			if err != nil {
				q.done <- redeemResult{err: err}
			} else {
				q.done <- res[i]
			}
		}
	}
}
