package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshd/meshd/sds/sdsclient"
)

func secretsCommand() *Command {
	return &Command{
		Name:    "secrets",
		Summary: "Fetch secrets from an SDS socket the way Envoy does, and summarise them.",
		Usage:   "[name ...]",
		Long: `With no names, asks for "default" and "ROOTCA". With --watch, keeps the stream
open, ACKs every response like Envoy, and prints each push (rotation, CA
rollover) until interrupted.`,
		Setup: func(fs *flag.FlagSet) Action {
			var socket, version string
			var timeout time.Duration
			var watch bool
			fs.StringVar(&socket, "socket", "", "SDS Unix socket `path`; "+socketDefaultDoc)
			fs.StringVar(&version, "envoy-version", "1.34.0", "Envoy `version` to present in the node (\"\" omits it)")
			fs.DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the first response")
			fs.BoolVar(&watch, "watch", false, "keep the stream open and print every push")
			return func(ctx context.Context, env *Env, names []string) error {
				if len(names) == 0 {
					names = []string{"default", "ROOTCA"}
				}
				socket = orDefault(socket, DefaultSocket)
				conn, err := sdsclient.Dial(socket)
				if err != nil {
					return err
				}
				defer conn.Close()
				sctx, cancel := context.WithCancel(ctx)
				defer cancel()
				stream, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(sctx)
				if err != nil {
					return fmt.Errorf("open stream on %s: %w", socket, err)
				}
				if err := stream.Send(sdsclient.Request(sdsclient.Node("meshd-secrets", version), names...)); err != nil {
					return fmt.Errorf("send request: %w", err)
				}
				first := time.AfterFunc(timeout, cancel)
				got := map[string]bool{}
				for {
					resp, err := stream.Recv()
					if err != nil {
						if ctx.Err() != nil {
							return nil
						}
						if status.Code(err) == codes.Canceled {
							return fmt.Errorf("no response within %s for %v (names not available to this caller?)", timeout, names)
						}
						return fmt.Errorf("%s: %w", socket, err)
					}
					secrets, err := sdsclient.Secrets(resp)
					if err != nil {
						return err
					}
					for _, s := range secrets {
						got[s.GetName()] = true
						fmt.Fprintf(env.Stdout, "%s v%s %s\n", time.Now().UTC().Format(time.RFC3339), resp.GetVersionInfo(), sdsclient.Describe(s))
					}
					if err := stream.Send(sdsclient.ACK(resp, names...)); err != nil {
						return fmt.Errorf("ack: %w", err)
					}
					if !watch && len(got) == len(names) {
						first.Stop()
						return nil
					}
					if len(got) == len(names) {
						first.Stop()
					}
				}
			}
		},
	}
}
