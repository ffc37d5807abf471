package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/internal/admin"
	"github.com/meshd/meshd/internal/peer"
	"github.com/meshd/meshd/internal/run"
	"github.com/meshd/meshd/sds"
)

// DefaultTrustDomain is used when --trust-domain is not given.
const DefaultTrustDomain = "meshd.local"

// DefaultMetricsListen is meshd's own metrics and health endpoint.
const DefaultMetricsListen = "127.0.0.1:9903"

// DefaultSocket is where `meshd sds` listens: /run/meshd/sds.sock for root,
// else $XDG_RUNTIME_DIR/meshd/sds.sock, else /tmp/meshd-<uid>/sds.sock.
func DefaultSocket() string {
	if os.Geteuid() == 0 {
		return "/run/meshd/sds.sock"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "meshd", "sds.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("meshd-%d", os.Getuid()), "sds.sock")
}

// DefaultStateDir is where the CA lives: /var/lib/meshd for root, else
// $XDG_STATE_HOME/meshd, else ~/.local/state/meshd.
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/meshd"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "meshd")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "meshd")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("meshd-%d", os.Getuid()), "state")
}

const (
	socketDefaultDoc = "default /run/meshd/sds.sock as root, else $XDG_RUNTIME_DIR/meshd/sds.sock or /tmp/meshd-<uid>/sds.sock"
	stateDirUsage    = "`dir`ectory holding meshd's CA (created 0700; ca.json 0600); default /var/lib/meshd as root, else $XDG_STATE_HOME/meshd or ~/.local/state/meshd"
)

func orDefault(v string, def func() string) string {
	if v == "" {
		return def()
	}
	return v
}

// caFlags are the flags every command that opens the CA shares.
type caFlags struct {
	stateDir, trustDomain, caKeyType, svidKeyType, caCert, caKey string
	svidTTL, caTTL                                               time.Duration
}

func (f *caFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.stateDir, "state-dir", "", stateDirUsage)
	fs.StringVar(&f.trustDomain, "trust-domain", DefaultTrustDomain, "SPIFFE trust `domain` of the CA and every identity")
	fs.StringVar(&f.caKeyType, "ca-key-type", string(certs.KeyECDSAP256), "key `type` of roots meshd creates: ecdsa-p256, ed25519, rsa-2048 or rsa-3072")
	fs.DurationVar(&f.caTTL, "ca-ttl", certs.DefaultCATTL, "lifetime of roots meshd creates; the next root is published at 1/2 and signs from 5/6 of it")
	fs.StringVar(&f.caCert, "ca-cert", "", "operator-provided CA certificate PEM `file`: a root, or an intermediate followed by its chain up to the root (disables meshd's own root)")
	fs.StringVar(&f.caKey, "ca-key", "", "private key PEM `file` for --ca-cert (must not be world-readable)")
}

func (f *caFlags) registerSVID(fs *flag.FlagSet) {
	fs.DurationVar(&f.svidTTL, "svid-ttl", certs.DefaultSVIDTTL, "lifetime of issued X.509-SVIDs; each is renewed at half-life ±10%")
	fs.StringVar(&f.svidKeyType, "svid-key-type", string(certs.KeyECDSAP256), "key `type` of issued SVIDs: ecdsa-p256, ed25519, rsa-2048 or rsa-3072")
}

func (f *caFlags) config(env *Env, reg prometheus.Registerer) (certs.Config, error) {
	td, err := spiffeid.TrustDomainFromString(f.trustDomain)
	if err != nil {
		return certs.Config{}, usagef("--trust-domain: %v", err)
	}
	f.stateDir = orDefault(f.stateDir, DefaultStateDir)
	caKT, err := certs.ParseKeyType(f.caKeyType)
	if err != nil {
		return certs.Config{}, usagef("--ca-key-type: %v", err)
	}
	svidKT := certs.KeyECDSAP256
	if f.svidKeyType != "" {
		if svidKT, err = certs.ParseKeyType(f.svidKeyType); err != nil {
			return certs.Config{}, usagef("--svid-key-type: %v", err)
		}
	}
	return certs.Config{
		TrustDomain: td, StateDir: f.stateDir, CAKeyType: caKT, CATTL: f.caTTL,
		CACertFile: f.caCert, CAKeyFile: f.caKey, SVIDTTL: f.svidTTL, SVIDKeyType: svidKT,
		Log: env.Log, Registerer: reg,
	}, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func sdsCommand() *Command {
	return &Command{
		Name:    "sds",
		Summary: "Serve Envoy's SecretDiscoveryService v3 on a Unix socket, with certificates from meshd's CA.",
		Long: `Envoys that connect are attested by their peer credentials (uid, gid, executable)
and matched against the identities file; a caller that matches no entry gets
PermissionDenied. Secret names: the caller's SPIFFE ID or "default" (its
certificate), the trust-domain ID or "ROOTCA" (its bundle), "ALL" (own and
federated bundles). Without --identities, only processes running as meshd's
own uid get an identity (spiffe://TD/dev/uid/UID) — for trying meshd out.`,
		Setup: func(fs *flag.FlagSet) Action {
			var (
				ca                                  caFlags
				socket, group, identities, metrics  string
				validation, defSVID, defBundle, all string
				federated                           multiFlag
				maxConns, maxPerPeer, maxStreams    int
				maxReq                              int
				reload, grace                       time.Duration
				up                                  upstreamFlags
			)
			ca.register(fs)
			ca.registerSVID(fs)
			fs.StringVar(&socket, "socket", "", "Unix socket `path` to serve SDS on (socket 0660, directory created 0750); "+socketDefaultDoc)
			fs.StringVar(&group, "socket-group", "", "`group` name or gid that owns the socket (Envoy's group), so Envoy can connect")
			fs.StringVar(&identities, "identities", "", "identities YAML `file` mapping callers (uid:N, gid:N, exe:/path selectors) to SPIFFE IDs; reloaded on change")
			fs.StringVar(&metrics, "metrics-listen", DefaultMetricsListen, "`addr`ess for meshd's own /metrics, /healthz and /readyz (empty disables)")
			fs.StringVar(&validation, "validation-context", string(sds.ValidationAuto), "`mode` of validation contexts: auto (SPIFFE validator for Envoy ≥ 1.18), spiffe or trusted-ca")
			fs.StringVar(&defSVID, "default-svid-name", "default", "secret `name` for the caller's first identity")
			fs.StringVar(&defBundle, "default-bundle-name", "ROOTCA", "secret `name` for meshd's own trust bundle")
			fs.StringVar(&all, "all-bundles-name", "ALL", "secret `name` for own plus federated bundles")
			fs.Var(&federated, "federated-bundle", "federated trust bundle as `TD=FILE` (PEM); repeatable")
			fs.IntVar(&maxConns, "max-conns", 4096, "open connections allowed on the socket in total")
			fs.IntVar(&maxPerPeer, "max-conns-per-peer", 1024, "open connections allowed per peer uid")
			fs.IntVar(&maxStreams, "max-streams-per-conn", 1024, "concurrent streams allowed per connection")
			fs.IntVar(&maxReq, "max-request-bytes", sds.DefaultMaxRequest, "largest DiscoveryRequest accepted")
			fs.DurationVar(&reload, "reload-interval", time.Second, "how often the identities file and CA state are checked for changes")
			fs.DurationVar(&grace, "shutdown-grace", 5*time.Second, "how long shutdown waits for streams to close before cutting them")
			up.register(fs)
			return func(ctx context.Context, env *Env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				socket = orDefault(socket, DefaultSocket)
				reg := prometheus.NewRegistry()
				reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
				ccfg, err := ca.config(env, reg)
				if err != nil {
					return err
				}
				ccfg.PollInterval = reload
				gid := -1
				if group != "" {
					if gid, err = lookupGroup(group); err != nil {
						return usagef("--socket-group: %v", err)
					}
				}
				fed, err := loadFederated(federated)
				if err != nil {
					return err
				}
				authority, runCA, caReady, err := up.authority(env, ccfg, &ca, reg)
				if err != nil {
					return err
				}
				cache, err := sds.NewCache(sds.CacheConfig{CA: authority, Log: env.Log, Registerer: reg})
				if err != nil {
					return err
				}
				scfg := sds.Config{
					Socket: socket, SocketGroup: gid, CA: authority, Cache: cache,
					IdentitiesFile: identities, ReloadInterval: reload, Federated: fed,
					Validation: sds.ValidationMode(validation), DefaultSVIDName: defSVID,
					DefaultBundleName: defBundle, AllBundlesName: all,
					Limits:            peer.Limits{MaxConns: maxConns, MaxConnsPerUID: maxPerPeer},
					MaxStreamsPerConn: uint32(maxStreams), MaxRequestBytes: maxReq,
					ShutdownGrace: grace, Log: env.Log, Registerer: reg,
				}
				if identities == "" {
					scfg.Identities, err = devIdentities(ccfg.TrustDomain)
					if err != nil {
						return err
					}
					env.Log.Warn("no --identities file: serving only the development identity to processes of meshd's own uid",
						"spiffe_id", devID(ccfg.TrustDomain).String(), "uid", os.Getuid())
				}
				srv, err := sds.New(scfg)
				if err != nil {
					return err
				}
				stages := [][]run.Component{
					nil,
					{{Name: "ca", Run: runCA}, {Name: "svid-cache", Run: cache.Run}, {Name: "identities-reloader", Run: srv.RunReloader}},
					{{Name: "sds", Run: srv.Run}},
				}
				if metrics != "" {
					stages[0] = []run.Component{{Name: "metrics", Run: (&admin.Server{
						Addr: metrics, Gatherer: reg, Log: env.Log,
						Checks: []admin.Check{{Name: "sds", Ready: srv.Ready}, {Name: "certificate-source", Ready: caReady}},
					}).Run}}
				}
				sup := &run.Supervisor{Log: env.Log, Stages: stages, StopTimeout: grace + 5*time.Second}
				return sup.Run(ctx)
			}
		},
	}
}

func devID(td spiffeid.TrustDomain) spiffeid.ID {
	id, _ := spiffeid.FromSegments(td, "dev", "uid", strconv.Itoa(os.Getuid()))
	return id
}

func devIdentities(td spiffeid.TrustDomain) (*sds.Identities, error) {
	doc := fmt.Sprintf("- spiffeID: %s\n  dnsNames: [localhost]\n  selectors: [uid:%d]\n", devID(td), os.Getuid())
	return sds.ParseIdentities([]byte(doc), td)
}

func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(grp.Gid)
}

func loadFederated(specs []string) ([]*x509bundle.Bundle, error) {
	var out []*x509bundle.Bundle
	for _, s := range specs {
		tdStr, file, ok := strings.Cut(s, "=")
		if !ok || file == "" {
			return nil, usagef("--federated-bundle %q: want TD=FILE", s)
		}
		td, err := spiffeid.TrustDomainFromString(tdStr)
		if err != nil {
			return nil, usagef("--federated-bundle %q: %v", s, err)
		}
		b, err := x509bundle.Load(td, file)
		if err != nil {
			return nil, fmt.Errorf("--federated-bundle %s: %w", s, err)
		}
		if b.Empty() {
			return nil, errors.New("--federated-bundle " + s + ": no certificates")
		}
		out = append(out, b)
	}
	return out, nil
}
