package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/issuer"
	"github.com/meshd/meshd/sds"
)

// JoinTokenEnv carries a join token (ECS and Kubernetes inject secrets as
// environment variables; a flag would show in ps).
const JoinTokenEnv = "MESHD_JOIN_TOKEN"

// upstreamFlags select where `meshd sds` gets certificates: its own CA
// (default), the meshd CA service, or an upstream SPIRE agent.
type upstreamFlags struct {
	caService, caBundle, joinTokenFile, k8sTokenFile, spire string
	caSync                                                  time.Duration
}

func (f *upstreamFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.caService, "ca-service", "", "get certificates from the meshd CA service at `addr` (host:port or unix:///path) instead of a local CA; needs --ca-service-bundle and a credential")
	fs.StringVar(&f.caBundle, "ca-service-bundle", "", "trust bundle PEM `file` that authenticates the CA service until it serves its own ('meshd ca show --pem')")
	fs.DurationVar(&f.caSync, "ca-service-sync-interval", issuer.DefaultSyncInterval, "how often the trust bundle is fetched from the CA service (±25 % jitter, at most 1/30 of the root's lifetime; a certificate it signs brings the bundle too); no connection is held in between. Keep it far below how long a next root is published before it signs ('meshd ca rotate --activate-in', default 15m)")
	fs.StringVar(&f.joinTokenFile, "join-token-file", "", "`file` holding a single-use join token from 'meshd ca token create' (or set $"+JoinTokenEnv+")")
	fs.StringVar(&f.k8sTokenFile, "k8s-token-file", "", "projected Kubernetes service-account token `file` to enroll with (re-read at each enrollment)")
	fs.StringVar(&f.spire, "spire-socket", "", "take SVIDs from an upstream SPIRE agent's Workload API at `addr` (unix:///path) instead of issuing")
}

// authority builds the certificate source: its Run and its readiness.
func (f *upstreamFlags) authority(env *Env, ccfg certs.Config, ca *caFlags, reg prometheus.Registerer) (sds.Authority, func(context.Context) error, func() bool, error) {
	if f.caService != "" && f.spire != "" {
		return nil, nil, nil, usagef("--ca-service and --spire-socket exclude each other")
	}
	if (f.caService != "" || f.spire != "") && (ca.caCert != "" || ca.caKey != "") {
		return nil, nil, nil, usagef("--ca-cert/--ca-key configure a local CA; they cannot be combined with --ca-service or --spire-socket")
	}
	switch {
	case f.caService != "":
		if f.caBundle == "" {
			return nil, nil, nil, usagef("--ca-service needs --ca-service-bundle")
		}
		b, err := x509bundle.Load(ccfg.TrustDomain, f.caBundle)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--ca-service-bundle: %w", err)
		}
		token := os.Getenv(JoinTokenEnv)
		if f.joinTokenFile != "" {
			data, err := os.ReadFile(f.joinTokenFile)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("--join-token-file: %w", err)
			}
			token = strings.TrimSpace(string(data))
		}
		if f.caSync <= 0 {
			return nil, nil, nil, usagef("--ca-service-sync-interval must be positive")
		}
		if (token == "") == (f.k8sTokenFile == "") {
			return nil, nil, nil, usagef("--ca-service needs exactly one credential: --join-token-file (or $%s) or --k8s-token-file", JoinTokenEnv)
		}
		r, err := issuer.NewRemote(issuer.RemoteConfig{
			Addr: f.caService, TrustDomain: ccfg.TrustDomain, Bootstrap: b,
			JoinToken: token, KubernetesTokenFile: f.k8sTokenFile, KeyType: ccfg.SVIDKeyType,
			SyncInterval: f.caSync,
			Log:          env.Log, Registerer: reg,
		})
		if err != nil {
			return nil, nil, nil, err
		}
		return r, r.Run, func() bool { return r.Ready() == nil }, nil
	case f.spire != "":
		s, err := issuer.NewSPIRE(issuer.SPIREConfig{Addr: f.spire, TrustDomain: ccfg.TrustDomain, Log: env.Log, Registerer: reg})
		if err != nil {
			return nil, nil, nil, err
		}
		return s, s.Run, func() bool { return s.Ready() == nil }, nil
	default:
		a, err := certs.New(ccfg)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("certificate authority: %w", err)
		}
		return a, a.Run, func() bool { return true }, nil
	}
}
