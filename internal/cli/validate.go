package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/meshd/meshd/controlplane"
	"github.com/meshd/meshd/internal/appmesh/load"
)

// paramFlag collects repeated KEY=VALUE flags.
type paramFlag map[string]string

func (p paramFlag) String() string { return "" }
func (p paramFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	p[k] = val
	return nil
}

// errProblems: validation found problems (exit 1), already printed.
var errProblems = errors.New("the configuration has problems")

func validateCommand() *Command {
	return &Command{
		Name:    "validate",
		Summary: "Check App Mesh definitions (CLI JSON, CloudFormation, Kubernetes CRDs) as the control plane would load them.",
		Usage:   "DIR",
		Long: `Loads every *.json, *.yaml and *.yml file under DIR the way 'meshd controlplane
--config DIR' does, decodes every spec as strictly as the App Mesh API, checks
every rule of the API (required fields, ranges, enums, unions, RE2 regexes,
retry events, TLS, access-log formats) and the rules between resources
(references, route and listener protocols, ports), and reports resources
defined twice. Each problem is printed on its own line with its file, document,
resource and field; the exit status is 1 if there is any.`,
		Setup: func(fs *flag.FlagSet) Action {
			var opt load.Options
			params := paramFlag{}
			fs.StringVar(&opt.DefaultMesh, "default-mesh", "", "mesh `name` for resources whose file names none (CLI input without meshName, CRDs without meshRef) when the files do not define exactly one mesh")
			fs.Var(params, "cfn-parameter", "CloudFormation parameter `NAME=VALUE` (repeatable; wins over the parameter's Default)")
			return func(ctx context.Context, env *Env, args []string) error {
				if len(args) != 1 {
					return usagef("want one directory, got %d arguments", len(args))
				}
				opt.Parameters = params
				u, err := controlplane.LoadDir(args[0], opt)
				if err != nil {
					return err
				}
				for _, w := range u.Warnings {
					fmt.Fprintln(env.Stderr, "warning: "+w.Error())
				}
				for _, p := range u.Problems {
					fmt.Fprintln(env.Stderr, p.Error())
				}
				if len(u.Problems) > 0 {
					fmt.Fprintf(env.Stdout, "%d problems in %s (%d resources loaded)\n", len(u.Problems), args[0], u.Resources)
					return errProblems
				}
				fmt.Fprintf(env.Stdout, "%s: %d resources, no problems\n", args[0], u.Resources)
				return nil
			}
		},
	}
}
