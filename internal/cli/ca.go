package cli

import (
	"context"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/caservice"
	"github.com/meshd/meshd/certs"
)

func caCommand() *Command {
	return &Command{
		Name:    "ca",
		Summary: "Manage meshd's certificate authority (init, show, rotate).",
		Subs: []*Command{
			{
				Name: "init", Summary: "Create the root CA in --state-dir (no-op if it exists).",
				Setup: func(fs *flag.FlagSet) Action {
					var f caFlags
					f.register(fs)
					return func(_ context.Context, env *Env, args []string) error {
						if len(args) > 0 {
							return usagef("unexpected arguments %q", args)
						}
						if f.caCert != "" || f.caKey != "" {
							return usagef("--ca-cert/--ca-key are used as they are; there is nothing to initialise")
						}
						cfg, err := f.config(env, prometheus.NewRegistry())
						if err != nil {
							return err
						}
						cfg.SVIDTTL = cfg.CATTL / certs.MinCATTLFactor
						ca, err := certs.New(cfg)
						if err != nil {
							return err
						}
						return printState(env.Stdout, f.stateDir, ca.State(), time.Now())
					}
				},
			},
			{
				Name: "show", Summary: "Show the roots in --state-dir: status, validity, schedule (--pem: the trust bundle).",
				Setup: func(fs *flag.FlagSet) Action {
					var dir string
					var pemOut bool
					fs.StringVar(&dir, "state-dir", "", stateDirUsage)
					fs.BoolVar(&pemOut, "pem", false, "print the trust bundle as PEM instead of a table")
					return func(_ context.Context, env *Env, args []string) error {
						if len(args) > 0 {
							return usagef("unexpected arguments %q", args)
						}
						dir = orDefault(dir, DefaultStateDir)
						st, err := certs.Store{Dir: dir}.Load()
						if err != nil {
							return err
						}
						if pemOut {
							for _, r := range st.Roots() {
								if err := pem.Encode(env.Stdout, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw}); err != nil {
									return err
								}
							}
							return nil
						}
						return printState(env.Stdout, dir, st, time.Now())
					}
				},
			},
			{
				Name: "rotate", Summary: "Prepare the next root now (published in the bundle at once) and schedule when it starts signing.",
				Long: `A running 'meshd sds' on the same --state-dir picks the change up within
--reload-interval, pushes the new bundle to every stream, and switches signing
at the scheduled time. The old root stays in the bundle until it expires.`,
				Setup: func(fs *flag.FlagSet) Action {
					var dir string
					var in time.Duration
					var now bool
					fs.StringVar(&dir, "state-dir", "", stateDirUsage)
					fs.DurationVar(&in, "activate-in", 15*time.Minute, "how long the next root is only published before it starts signing")
					fs.BoolVar(&now, "now", false, "start signing with the next root immediately (same as --activate-in 0)")
					return func(_ context.Context, env *Env, args []string) error {
						if len(args) > 0 {
							return usagef("unexpected arguments %q", args)
						}
						if in < 0 {
							return usagef("--activate-in must not be negative")
						}
						if now {
							in = 0
						}
						dir = orDefault(dir, DefaultStateDir)
						t := time.Now()
						st, err := certs.Store{Dir: dir}.Update(func(s *certs.State) (*certs.State, bool, error) {
							if s == nil {
								return nil, false, fmt.Errorf("%s holds no CA; run 'meshd ca init' first", dir)
							}
							td, err := spiffeid.TrustDomainFromString(s.TrustDomain)
							if err != nil {
								return nil, false, err
							}
							p := certs.Policy{TrustDomain: td, KeyType: s.KeyType, CATTL: time.Duration(s.CATTL)}
							if _, err := p.Rotate(s, t, t.Add(in)); err != nil {
								return nil, false, err
							}
							return s, true, nil
						})
						if err != nil {
							return err
						}
						fmt.Fprintf(env.Stdout, "next root published; it signs from %s\n\n", t.Add(in).UTC().Format(time.RFC3339))
						return printState(env.Stdout, dir, st, t)
					}
				},
			},
			caServeCommand(),
			{
				Name: "token", Summary: "Manage single-use join tokens for 'meshd sds --join-token'.",
				Subs: []*Command{{
					Name: "create", Summary: "Mint a single-use, short-lived join token that enrolls one agent as --spiffe-id.",
					Long: `The token is printed once; only its SHA-256 is stored (join-tokens.json in
--state-dir, 0600). The CA service accepts it once, before it expires, and
the agent then renews its certificate over mTLS. The SPIFFE ID must lie under
spiffe://TD/meshd/agent/; the CA service's policy says which workload IDs
that agent may get.`,
					Setup: func(fs *flag.FlagSet) Action {
						var dir, id string
						var ttl time.Duration
						fs.StringVar(&dir, "state-dir", "", stateDirUsage)
						fs.StringVar(&id, "spiffe-id", "", "the agent's SPIFFE `ID` (spiffe://TD/meshd/agent/...); required")
						fs.DurationVar(&ttl, "ttl", caservice.DefaultTokenTTL, "how long the token can be redeemed (at most 168h)")
						return func(_ context.Context, env *Env, args []string) error {
							if len(args) > 0 {
								return usagef("unexpected arguments %q", args)
							}
							if id == "" {
								return usagef("--spiffe-id is required")
							}
							sid, err := spiffeid.FromString(id)
							if err != nil {
								return usagef("--spiffe-id: %v", err)
							}
							if ttl <= 0 || ttl > caservice.MaxTokenTTL {
								return usagef("--ttl must be positive and at most %s", caservice.MaxTokenTTL)
							}
							dir = orDefault(dir, DefaultStateDir)
							st, err := certs.Store{Dir: dir}.Load()
							if err != nil {
								return err
							}
							if st.TrustDomain != sid.TrustDomain().Name() {
								return usagef("--spiffe-id %s is not in the CA's trust domain %s", sid, st.TrustDomain)
							}
							if !caservice.IsAgentID(sid) {
								return usagef("--spiffe-id %s: an agent's ID must lie under %s", sid, caservice.AgentPrefix(sid.TrustDomain()))
							}
							tok, exp, err := caservice.TokenStore{Dir: dir}.Create(sid, ttl)
							if err != nil {
								return err
							}
							fmt.Fprintln(env.Stdout, tok)
							fmt.Fprintf(env.Stderr, "join token for %s, single use, expires %s\n", sid, ts(exp))
							return nil
						}
					},
				}},
			},
		},
	}
}

func printState(w io.Writer, dir string, st *certs.State, now time.Time) error {
	fmt.Fprintf(w, "state dir:    %s\ntrust domain: spiffe://%s\nkey type:     %s\nroot ttl:     %s\n\n", dir, st.TrustDomain, st.KeyType, time.Duration(st.CATTL))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tID\tNOT BEFORE\tNOT AFTER\tNEXT STEP")
	for _, a := range st.Authorities {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Status, a.ID()[:16], ts(a.Cert.NotBefore), ts(a.Cert.NotAfter), nextStep(st, a, now))
	}
	return tw.Flush()
}

func nextStep(st *certs.State, a *certs.Authority, now time.Time) string {
	switch a.Status {
	case certs.StatusActive:
		if st.Prepared() == nil {
			return "next root prepared at " + ts(certs.PrepareAt(a.Cert))
		}
		return "signs until the prepared root activates"
	case certs.StatusPrepared:
		if a.ActivateAt != nil {
			return "signs from " + ts(*a.ActivateAt)
		}
	case certs.StatusRetired:
		return "leaves the bundle at " + ts(*a.KeepUntil)
	}
	return ""
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }
