package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/meshd/meshd/internal/appmesh"
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
--config DIR' does, decodes every spec as strictly as the App Mesh API, and
reports resources defined twice and references to resources that do not
exist. Each problem is printed on its own line with its file, document,
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
				docs, problems, warnings, err := loadAndCheck(args[0], opt)
				if err != nil {
					return err
				}
				for _, w := range warnings {
					fmt.Fprintln(env.Stderr, "warning: "+w.Error())
				}
				for _, p := range problems {
					fmt.Fprintln(env.Stderr, p.Error())
				}
				if len(problems) > 0 {
					fmt.Fprintf(env.Stdout, "%d problems in %s (%d resources loaded)\n", len(problems), args[0], len(docs))
					return errProblems
				}
				fmt.Fprintf(env.Stdout, "%s: %d resources, no problems\n", args[0], len(docs))
				return nil
			}
		},
	}
}

// loadAndCheck is the control plane's loader: files, strict specs,
// references.
func loadAndCheck(dir string, opt load.Options) ([]load.Doc, []load.Problem, []load.Problem, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, nil, nil, fmt.Errorf("%s is not a directory", dir)
	}
	res, err := load.Dir(os.DirFS(dir), ".", opt)
	if err != nil {
		return nil, nil, nil, err
	}
	problems := res.Problems
	var docs []load.Doc
	for _, d := range res.Docs {
		if _, err := appmesh.DecodeSpec(appmesh.ResourceKind(d.Kind), d.Spec); err != nil {
			loc := d.Loc
			var se *appmesh.SpecError
			msg := err.Error()
			if errors.As(err, &se) {
				loc.Path = strings.TrimSuffix("spec."+se.Path, ".")
				msg = se.Msg
			}
			problems = append(problems, load.Problem{Loc: loc, Msg: msg})
			continue
		}
		docs = append(docs, d)
	}
	problems = append(problems, load.Check(docs)...)
	return docs, problems, res.Warnings, nil
}
