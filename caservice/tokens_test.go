package caservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/internal/fsutil"
)

// tokenTestStart is the injected clock's start (whole seconds, so that
// expiry times are exact).
var tokenTestStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var tokenTestAgent = spiffeid.RequireFromString("spiffe://example.org/meshd/agent/node-1")

// tokenTestClock is a settable clock. With tick set, every reading also
// advances it by tick, so no two readings are equal.
type tokenTestClock struct {
	mu   sync.Mutex
	t    time.Time
	tick time.Duration
}

func newTokenTestClock() *tokenTestClock { return &tokenTestClock{t: tokenTestStart} }

func (c *tokenTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.tick)
	return c.t
}

func (c *tokenTestClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTokenTestStore(t *testing.T) (TokenStore, *tokenTestClock) {
	t.Helper()
	clk := newTokenTestClock()
	return TokenStore{Dir: filepath.Join(t.TempDir(), "state"), Now: clk.Now}, clk
}

func tokenTestCreate(t *testing.T, ts TokenStore, id spiffeid.ID, ttl time.Duration) string {
	t.Helper()
	tok, _, err := ts.Create(id, ttl)
	if err != nil {
		t.Fatalf("Create(%s, %s): %v", id, ttl, err)
	}
	return tok
}

// tokenTestRecords reads the tokens file as stored.
func tokenTestRecords(t *testing.T, ts TokenStore) []*tokenRecord {
	t.Helper()
	data, err := os.ReadFile(ts.path())
	if err != nil {
		t.Fatal(err)
	}
	var d tokensDoc
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", ts.path(), err)
	}
	return d.Tokens
}

func tokenTestFind(t *testing.T, ts TokenStore, tok string) *tokenRecord {
	t.Helper()
	for _, r := range tokenTestRecords(t, ts) {
		if r.SHA256 == hashToken(tok) {
			return r
		}
	}
	return nil
}

func tokenTestOutstanding(t *testing.T, ts TokenStore) int {
	t.Helper()
	n, err := ts.Outstanding()
	if err != nil {
		t.Fatalf("Outstanding: %v", err)
	}
	return n
}

func TestTokenCreate(t *testing.T) {
	ts, _ := newTokenTestStore(t)
	tok, exp, err := ts.Create(tokenTestAgent, 10*time.Minute)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !strings.HasPrefix(tok, "meshd-jt.") || len(tok) <= len("meshd-jt.")+32 {
		t.Errorf("token %q: want \"meshd-jt.\" and at least 32 more characters", tok)
	}
	if want := tokenTestStart.Add(10 * time.Minute); !exp.Equal(want) {
		t.Errorf("expires %s, want %s", exp, want)
	}
	fi, err := os.Stat(filepath.Join(ts.Dir, TokensFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", TokensFile, fi.Mode().Perm())
	}
	di, err := os.Stat(ts.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("state dir has mode %04o, want 0700", di.Mode().Perm())
	}
	data, err := os.ReadFile(filepath.Join(ts.Dir, TokensFile))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimPrefix(tok, "meshd-jt.")
	if strings.Contains(string(data), secret) {
		t.Errorf("%s contains the token:\n%s", TokensFile, data)
	}
	r := tokenTestFind(t, ts, tok)
	if r == nil {
		t.Fatalf("%s does not list the token's SHA-256:\n%s", TokensFile, data)
	}
	if r.SPIFFEID != tokenTestAgent.String() || !r.Expires.Equal(exp) || !r.Created.Equal(tokenTestStart) || r.UsedAt != nil {
		t.Errorf("record %+v", *r)
	}

	tok2 := tokenTestCreate(t, ts, tokenTestAgent, time.Hour)
	if tok2 == tok {
		t.Error("two Creates returned the same token")
	}
	if n := tokenTestOutstanding(t, ts); n != 2 {
		t.Errorf("Outstanding = %d, want 2", n)
	}
}

func TestTokenCreateRefuses(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		ttl     time.Duration
		wantErr string
	}{
		{"workload ID", "spiffe://example.org/ns/web/sa/frontend", time.Hour, "must lie under spiffe://example.org/meshd/agent/"},
		{"CA service ID", "spiffe://example.org/meshd/ca-service", time.Hour, "must lie under"},
		{"agent path without a name", "spiffe://example.org/meshd/agent", time.Hour, "must lie under"},
		{"zero TTL", tokenTestAgent.String(), 0, "must be positive"},
		{"negative TTL", tokenTestAgent.String(), -time.Second, "must be positive"},
		{"TTL over MaxTokenTTL", tokenTestAgent.String(), MaxTokenTTL + time.Nanosecond, "at most 168h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, _ := newTokenTestStore(t)
			tok, _, err := ts.Create(spiffeid.RequireFromString(tt.id), tt.ttl)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Create(%s, %s) = %q, %v; want error %q", tt.id, tt.ttl, tok, err, tt.wantErr)
			}
			if tok != "" {
				t.Errorf("a refused Create returned token %q", tok)
			}
			if _, err := os.Stat(ts.path()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused Create wrote %s (stat: %v)", TokensFile, err)
			}
		})
	}
	t.Run("zero ID", func(t *testing.T) {
		ts, _ := newTokenTestStore(t)
		if _, _, err := ts.Create(spiffeid.ID{}, time.Hour); err == nil {
			t.Fatal("Create accepted the zero ID")
		}
	})
	t.Run("MaxTokenTTL accepted", func(t *testing.T) {
		ts, _ := newTokenTestStore(t)
		if _, _, err := ts.Create(tokenTestAgent, MaxTokenTTL); err != nil {
			t.Fatalf("Create with MaxTokenTTL: %v", err)
		}
	})
}

func TestRedeemOnce(t *testing.T) {
	ts, clk := newTokenTestStore(t)
	rd := &redeemer{store: ts}
	ctx := context.Background()
	tok := tokenTestCreate(t, ts, tokenTestAgent, 10*time.Minute)
	clk.Advance(time.Minute)

	id, err := rd.Redeem(ctx, tok)
	if err != nil || id != tokenTestAgent {
		t.Fatalf("first Redeem = %s, %v; want %s", id, err, tokenTestAgent)
	}
	r := tokenTestFind(t, ts, tok)
	if r == nil || r.UsedAt == nil || !r.UsedAt.Equal(tokenTestStart.Add(time.Minute)) {
		t.Errorf("after Redeem the record is %+v, want usedAt %s", r, tokenTestStart.Add(time.Minute))
	}
	if n := tokenTestOutstanding(t, ts); n != 0 {
		t.Errorf("Outstanding = %d after the only token was redeemed", n)
	}
	for range 2 {
		id, err = rd.Redeem(ctx, tok)
		if !errors.Is(err, ErrTokenUsed) || !id.IsZero() {
			t.Errorf("replayed Redeem = %s, %v; want %v", id, err, ErrTokenUsed)
		}
	}
	// A used token stays used after it expires.
	clk.Advance(time.Hour)
	if _, err := rd.Redeem(ctx, tok); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("replay after expiry: %v, want %v", err, ErrTokenUsed)
	}
}

func TestRedeemErrors(t *testing.T) {
	ts, clk := newTokenTestStore(t)
	rd := &redeemer{store: ts}
	ctx := context.Background()
	short := tokenTestCreate(t, ts, tokenTestAgent, time.Minute)
	long := tokenTestCreate(t, ts, tokenTestAgent, 2*time.Hour)
	flipped := []byte(short)
	flipped[len(flipped)-1] ^= 1
	// The rows run in order; advance moves the clock before the row.
	tests := []struct {
		name    string
		advance time.Duration
		token   string
		want    error
	}{
		{"unknown token", 0, "meshd-jt.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ErrTokenUnknown},
		{"empty token", 0, "", ErrTokenUnknown},
		{"token without its prefix", 0, strings.TrimPrefix(short, "meshd-jt."), ErrTokenUnknown},
		{"token with one bit changed", 0, string(flipped), ErrTokenUnknown},
		{"token hash instead of token", 0, hashToken(short), ErrTokenUnknown},
		{"at expiry", time.Minute, short, ErrTokenExpired},
		{"after expiry", time.Hour, short, ErrTokenExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(tt.advance)
			id, err := rd.Redeem(ctx, tt.token)
			if !errors.Is(err, tt.want) || !id.IsZero() {
				t.Errorf("Redeem = %s, %v; want %v", id, err, tt.want)
			}
		})
	}
	// The failures consumed nothing: the expired token is still recorded
	// unused and the long-lived one still works.
	if r := tokenTestFind(t, ts, short); r == nil || r.UsedAt != nil {
		t.Errorf("expired token's record: %+v", r)
	}
	if id, err := rd.Redeem(ctx, long); err != nil || id != tokenTestAgent {
		t.Errorf("Redeem(long) = %s, %v", id, err)
	}
}

func TestRedeemExpiryBoundary(t *testing.T) {
	ts, clk := newTokenTestStore(t)
	rd := &redeemer{store: ts}
	tok := tokenTestCreate(t, ts, tokenTestAgent, 10*time.Minute)
	if n := tokenTestOutstanding(t, ts); n != 1 {
		t.Errorf("Outstanding = %d, want 1", n)
	}
	clk.Advance(10 * time.Minute)
	if n := tokenTestOutstanding(t, ts); n != 0 {
		t.Errorf("Outstanding at expiry = %d, want 0", n)
	}
	if _, err := rd.Redeem(context.Background(), tok); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("Redeem at expiry: %v, want %v", err, ErrTokenExpired)
	}
}

func TestTokenPrune(t *testing.T) {
	ts, clk := newTokenTestStore(t)
	rd := &redeemer{store: ts}
	ctx := context.Background()
	used := tokenTestCreate(t, ts, tokenTestAgent, time.Minute)
	unused := tokenTestCreate(t, ts, tokenTestAgent, time.Minute)
	keep := tokenTestCreate(t, ts, tokenTestAgent, MaxTokenTTL)
	if _, err := rd.Redeem(ctx, used); err != nil {
		t.Fatal(err)
	}
	// Exactly 24h past expiry the records are still kept: a replay is
	// reported as such.
	clk.Advance(time.Minute + 24*time.Hour)
	if _, err := rd.Redeem(ctx, used); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("replay 24h after expiry: %v, want %v", err, ErrTokenUsed)
	}
	if _, err := rd.Redeem(ctx, unused); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("24h after expiry: %v, want %v", err, ErrTokenExpired)
	}
	if got := len(tokenTestRecords(t, ts)); got != 3 {
		t.Errorf("file lists %d tokens 24h after expiry, want 3", got)
	}

	// Any update (here a failed redemption) prunes records more than 24h
	// past expiry.
	clk.Advance(time.Second)
	if _, err := rd.Redeem(ctx, "meshd-jt.unknown"); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("Redeem(unknown): %v", err)
	}
	recs := tokenTestRecords(t, ts)
	if len(recs) != 1 || recs[0].SHA256 != hashToken(keep) {
		t.Errorf("after pruning the file lists %d records, want only the long-lived token", len(recs))
	}
	for _, tok := range []string{used, unused} {
		if _, err := rd.Redeem(ctx, tok); !errors.Is(err, ErrTokenUnknown) {
			t.Errorf("Redeem of a pruned token: %v, want %v", err, ErrTokenUnknown)
		}
	}
	if n := tokenTestOutstanding(t, ts); n != 1 {
		t.Errorf("Outstanding = %d, want 1", n)
	}
	if id, err := rd.Redeem(ctx, keep); err != nil || id != tokenTestAgent {
		t.Errorf("Redeem(keep) = %s, %v", id, err)
	}
}

func TestTokenPruneOnCreate(t *testing.T) {
	ts, clk := newTokenTestStore(t)
	old := tokenTestCreate(t, ts, tokenTestAgent, time.Minute)
	clk.Advance(time.Minute + 24*time.Hour + time.Second)
	tokenTestCreate(t, ts, tokenTestAgent, time.Minute)
	if r := tokenTestFind(t, ts, old); r != nil {
		t.Errorf("Create kept a record %s past expiry: %+v", 24*time.Hour+time.Second, *r)
	}
	if got := len(tokenTestRecords(t, ts)); got != 1 {
		t.Errorf("file lists %d tokens, want 1", got)
	}
}

func TestTokenOutstanding(t *testing.T) {
	ts, clk := newTokenTestStore(t)
	rd := &redeemer{store: ts}
	if n := tokenTestOutstanding(t, ts); n != 0 {
		t.Errorf("Outstanding without a file = %d", n)
	}
	if _, err := os.Stat(ts.path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Outstanding created %s", TokensFile)
	}
	var toks []string
	for i := range 5 {
		toks = append(toks, tokenTestCreate(t, ts, tokenTestAgent, time.Duration(i+1)*time.Minute))
	}
	if n := tokenTestOutstanding(t, ts); n != 5 {
		t.Errorf("Outstanding = %d, want 5", n)
	}
	if _, err := rd.Redeem(context.Background(), toks[4]); err != nil {
		t.Fatal(err)
	}
	if n := tokenTestOutstanding(t, ts); n != 4 {
		t.Errorf("Outstanding after one redemption = %d, want 4", n)
	}
	clk.Advance(2 * time.Minute) // toks[0] and toks[1] expire
	if n := tokenTestOutstanding(t, ts); n != 2 {
		t.Errorf("Outstanding after two expired = %d, want 2", n)
	}
}

func TestTokenFileWorldReadable(t *testing.T) {
	ts, _ := newTokenTestStore(t)
	tok := tokenTestCreate(t, ts, tokenTestAgent, time.Hour)
	if err := os.Chmod(ts.path(), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: accepted a world-readable tokens file", what)
			return
		}
		if !strings.Contains(err.Error(), ts.path()) || !strings.Contains(err.Error(), "0644") {
			t.Errorf("%s: error %q does not name %s and its mode", what, err, ts.path())
		}
		if errors.Is(err, ErrTokenUnknown) || errors.Is(err, ErrTokenUsed) || errors.Is(err, ErrTokenExpired) {
			t.Errorf("%s: %v blames the token", what, err)
		}
	}
	_, _, err := ts.Create(tokenTestAgent, time.Hour)
	check("Create", err)
	_, err = ts.Outstanding()
	check("Outstanding", err)
	_, err = (&redeemer{store: ts}).Redeem(context.Background(), tok)
	check("Redeem", err)

	// Fixing the mode makes the token usable again: nothing was consumed.
	if err := os.Chmod(ts.path(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&redeemer{store: ts}).Redeem(context.Background(), tok); err != nil {
		t.Errorf("Redeem after chmod 600: %v", err)
	}
}

func TestTokenFileBad(t *testing.T) {
	tests := []struct {
		name    string
		write   func(path string) error
		wantErr string
	}{
		{"not JSON", func(p string) error { return os.WriteFile(p, []byte("{\"version\": 1, \"tokens\": [\n"), 0o600) }, "corrupted"},
		{"garbage", func(p string) error { return os.WriteFile(p, []byte("\x00\x01\x02"), 0o600) }, "corrupted"},
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o600) }, "corrupted"},
		{"wrong types", func(p string) error { return os.WriteFile(p, []byte(`{"version":1,"tokens":{"a":1}}`), 0o600) }, "corrupted"},
		{"oversized", func(p string) error {
			if err := os.WriteFile(p, []byte(`{"version":1}`), 0o600); err != nil {
				return err
			}
			return os.Truncate(p, maxTokensFile+1)
		}, "corrupted"},
		{"unsupported version", func(p string) error { return os.WriteFile(p, []byte(`{"version":2,"tokens":[]}`), 0o600) }, "unsupported version 2"},
		{"missing version", func(p string) error { return os.WriteFile(p, []byte(`{"tokens":[]}`), 0o600) }, "unsupported version 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, _ := newTokenTestStore(t)
			if err := os.MkdirAll(ts.Dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tt.write(ts.path()); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(ts.path())
			if err != nil {
				t.Fatal(err)
			}
			_, _, cerr := ts.Create(tokenTestAgent, time.Hour)
			_, oerr := ts.Outstanding()
			_, rerr := (&redeemer{store: ts}).Redeem(context.Background(), "meshd-jt.x")
			for what, err := range map[string]error{"Create": cerr, "Outstanding": oerr, "Redeem": rerr} {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), ts.path()) {
					t.Errorf("%s: %v; want an error naming %s and saying %q", what, err, ts.path(), tt.wantErr)
				}
				if errors.Is(err, ErrTokenUnknown) {
					t.Errorf("%s: %v blames the token", what, err)
				}
			}
			after, err := os.ReadFile(ts.path())
			if err != nil {
				t.Fatal(err)
			}
			if string(after) != string(before) {
				t.Error("the bad file was overwritten")
			}
		})
	}
}

func TestRedeemSameTokenConcurrently(t *testing.T) {
	ts, _ := newTokenTestStore(t)
	rd := &redeemer{store: ts}
	tok := tokenTestCreate(t, ts, tokenTestAgent, time.Hour)
	const n = 64
	errs := make([]error, n)
	ids := make([]spiffeid.ID, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			ids[i], errs[i] = rd.Redeem(context.Background(), tok)
		})
	}
	close(start)
	wg.Wait()
	ok, used := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			if ids[i] != tokenTestAgent {
				t.Errorf("Redeem returned %s, want %s", ids[i], tokenTestAgent)
			}
		case errors.Is(err, ErrTokenUsed):
			used++
		default:
			t.Errorf("Redeem: %v", err)
		}
	}
	if ok != 1 || used != n-1 {
		t.Errorf("%d redemptions succeeded and %d got ErrTokenUsed; want 1 and %d", ok, used, n-1)
	}
}

// TestRedeemGroupCommit redeems 300 tokens at once while another process
// (the test) holds the tokens lock, so redemptions queue up behind the
// first batch. The clock ticks on every reading and a batch stamps all of
// its tokens with one reading, so fewer distinct usedAt times than tokens
// prove that batches shared one read-modify-write.
func TestRedeemGroupCommit(t *testing.T) {
	ts, clk := newTokenTestStore(t)
	const n = 300
	toks := make([]string, n)
	ids := make([]spiffeid.ID, n)
	// Writing the file directly is much faster than 300 fsyncing Creates.
	doc := tokensDoc{Version: 1}
	for i := range n {
		ids[i] = spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/meshd/agent/node-%d", i))
		toks[i] = fmt.Sprintf("%sgroup-commit-%d", tokenPrefix, i)
		doc.Tokens = append(doc.Tokens, &tokenRecord{
			SHA256: hashToken(toks[i]), SPIFFEID: ids[i].String(),
			Created: tokenTestStart, Expires: tokenTestStart.Add(time.Hour),
		})
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(ts.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := fsutil.WriteFileAtomic(ts.path(), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := tokenTestOutstanding(t, ts); got != n {
		t.Fatalf("Outstanding = %d, want %d", got, n)
	}
	clk.mu.Lock()
	clk.tick = time.Microsecond
	clk.mu.Unlock()

	unlock, err := fsutil.Lock(filepath.Join(ts.Dir, tokensLock))
	if err != nil {
		t.Fatal(err)
	}
	rd := &redeemer{store: ts}
	errs := make([]error, n)
	got := make([]spiffeid.ID, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = rd.Redeem(context.Background(), toks[i]) })
	}
	// Let requests queue behind the leader, which blocks on the lock.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rd.mu.Lock()
		queued := len(rd.pending)
		rd.mu.Unlock()
		if queued >= n/2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	unlock()
	wg.Wait()

	for i := range n {
		if errs[i] != nil || got[i] != ids[i] {
			t.Errorf("Redeem(token %d) = %s, %v; want %s", i, got[i], errs[i], ids[i])
		}
	}
	batches := map[time.Time]int{}
	for _, r := range tokenTestRecords(t, ts) {
		if r.UsedAt == nil {
			t.Errorf("token of %s not marked used", r.SPIFFEID)
			continue
		}
		batches[*r.UsedAt]++
	}
	t.Logf("%d redemptions in %d batches", n, len(batches))
	if len(batches) >= n {
		t.Errorf("%d redemptions took %d read-modify-write cycles; want them batched", n, len(batches))
	}
	if n := tokenTestOutstanding(t, ts); n != 0 {
		t.Errorf("Outstanding = %d, want 0", n)
	}
}

func TestRedeemCanceledContext(t *testing.T) {
	ts, _ := newTokenTestStore(t)
	tok := tokenTestCreate(t, ts, tokenTestAgent, time.Hour)
	unlock, err := fsutil.Lock(filepath.Join(ts.Dir, tokensLock))
	if err != nil {
		t.Fatal(err)
	}
	rd := &redeemer{store: ts}
	// The leader blocks on the lock; a queued caller gives up with its
	// context.
	leaderDone := make(chan error, 1)
	go func() {
		_, err := rd.Redeem(context.Background(), "meshd-jt.unknown")
		leaderDone <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		rd.mu.Lock()
		taken := rd.leading && len(rd.pending) == 0
		rd.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leader did not take its batch")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := rd.Redeem(ctx, tok); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Redeem with an expiring context: %v", err)
	}
	unlock()
	if err := <-leaderDone; !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("leader: %v, want %v", err, ErrTokenUnknown)
	}
	// The abandoned request was still processed by the leader's next batch.
	if _, err := rd.Redeem(context.Background(), tok); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("Redeem after an abandoned redemption: %v, want %v", err, ErrTokenUsed)
	}
}

// TestTokenStoresShareDir is `meshd ca token create` running next to the
// service: two TokenStores on one directory see each other's tokens.
func TestTokenStoresShareDir(t *testing.T) {
	clk := newTokenTestClock()
	dir := filepath.Join(t.TempDir(), "state")
	service := TokenStore{Dir: dir, Now: clk.Now}
	cli := TokenStore{Dir: dir, Now: clk.Now}
	rd := &redeemer{store: service}
	ctx := context.Background()

	tok := tokenTestCreate(t, cli, tokenTestAgent, time.Hour)
	if n := tokenTestOutstanding(t, service); n != 1 {
		t.Errorf("service sees %d outstanding tokens, want 1", n)
	}
	if id, err := rd.Redeem(ctx, tok); err != nil || id != tokenTestAgent {
		t.Fatalf("service redeemed the CLI's token: %s, %v", id, err)
	}
	if n := tokenTestOutstanding(t, cli); n != 0 {
		t.Errorf("CLI sees %d outstanding tokens after redemption, want 0", n)
	}
	if _, err := (&redeemer{store: cli}).Redeem(ctx, tok); !errors.Is(err, ErrTokenUsed) {
		t.Errorf("CLI-side replay: %v, want %v", err, ErrTokenUsed)
	}

	// Concurrent writers through both stores lose nothing (the lock file
	// serialises them).
	const n = 40
	var wg sync.WaitGroup
	toks := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		ts := cli
		if i%2 == 0 {
			ts = service
		}
		wg.Go(func() { toks[i], _, errs[i] = ts.Create(tokenTestAgent, time.Hour) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	if got := tokenTestOutstanding(t, service); got != n {
		t.Errorf("%d outstanding after %d concurrent Creates", got, n)
	}
	for i := range n {
		wg.Go(func() {
			if _, err := rd.Redeem(ctx, toks[i]); err != nil {
				t.Errorf("Redeem(token %d): %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := tokenTestOutstanding(t, cli); got != 0 {
		t.Errorf("%d outstanding after redeeming all", got)
	}
}
