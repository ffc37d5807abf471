package demo

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"

	"github.com/meshd/meshd/sds/sdsclient"
)

// identity is one process's certificate and trust bundle, streamed from
// meshd's SDS socket exactly as Envoy asks for them (its SPIFFE ID and
// ROOTCA on one stream, every push ACKed). It is a go-spiffe SVID and
// bundle source, so the process's TLS configs always use the newest
// certificate.
type identity struct {
	id     spiffeid.ID
	socket string
	log    *slog.Logger

	mu       sync.RWMutex
	svid     *x509svid.SVID
	bundle   *x509bundle.Bundle
	renewals int // new certificates received after the first
	ready    chan struct{}
	once     sync.Once
}

func newIdentity(id spiffeid.ID, socket string, log *slog.Logger) *identity {
	return &identity{id: id, socket: socket, log: log, ready: make(chan struct{})}
}

// GetX509SVID implements x509svid.Source.
func (i *identity) GetX509SVID() (*x509svid.SVID, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.svid == nil {
		return nil, fmt.Errorf("no certificate yet for %s", i.id)
	}
	return i.svid, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (i *identity) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.bundle == nil || i.bundle.TrustDomain() != td {
		return nil, fmt.Errorf("no trust bundle for %s", td)
	}
	return i.bundle, nil
}

// snapshot returns the current certificate and the number of renewals.
func (i *identity) snapshot() (*x509svid.SVID, int) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.svid, i.renewals
}

// Run keeps an SDS stream open and applies every push, reconnecting after
// errors until ctx ends.
func (i *identity) Run(ctx context.Context) error {
	for {
		err := i.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		i.log.Warn("SDS stream ended; reconnecting", "spiffe_id", i.id.String(), "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (i *identity) stream(ctx context.Context) error {
	conn, err := sdsclient.Dial(i.socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("SDS stream: %w", err)
	}
	names := []string{i.id.String(), "ROOTCA"}
	if err := stream.Send(sdsclient.Request(sdsclient.Node(i.id.String(), "1.34.0"), names...)); err != nil {
		return fmt.Errorf("SDS request: %w", err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("SDS: %w", err)
		}
		secrets, err := sdsclient.Secrets(resp)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			switch s.GetName() {
			case i.id.String():
				svid, err := sdsclient.SVID(s)
				if err != nil {
					return err
				}
				i.mu.Lock()
				if i.svid != nil && !i.svid.Certificates[0].Equal(svid.Certificates[0]) {
					i.renewals++
				}
				i.svid = svid
				i.mu.Unlock()
			case "ROOTCA":
				bundles, err := sdsclient.Bundles(s, i.id.TrustDomain())
				if err != nil {
					return err
				}
				for _, b := range bundles {
					if b.TrustDomain() == i.id.TrustDomain() {
						i.mu.Lock()
						i.bundle = b
						i.mu.Unlock()
					}
				}
			}
		}
		if err := stream.Send(sdsclient.ACK(resp, names...)); err != nil {
			return fmt.Errorf("SDS ack: %w", err)
		}
		i.mu.RLock()
		complete := i.svid != nil && i.bundle != nil
		i.mu.RUnlock()
		if complete {
			i.once.Do(func() { close(i.ready) })
		}
	}
}
