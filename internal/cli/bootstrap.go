package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/meshd/meshd/internal/fsutil"
	"github.com/meshd/meshd/tracing"
)

// inputError is bad input other than the command line (the environment, the
// files it names): exit code 2, one line per problem.
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

func bootstrapCommand() *Command {
	return &Command{
		Name:    "bootstrap",
		Summary: "Render Envoy's bootstrap from the App Mesh environment variables.",
		Long: `Reads the variables the App Mesh Envoy image read (APPMESH_RESOURCE_ARN,
ENABLE_ENVOY_XRAY_TRACING, ENABLE_ENVOY_DOG_STATSD, …; see
docs/configuration.md) plus MESHD_XDS_ADDRESS, the address of meshd's control
plane, and writes an Envoy v3 bootstrap validated against Envoy's protos.
Invalid variables or files exit with status 2, one line per problem.`,
		Setup: func(fs *flag.FlagSet) Action {
			var output, format string
			fs.StringVar(&output, "output", "-", "write the bootstrap to this `file` (mode 0644, replaced atomically); - is standard output")
			fs.StringVar(&format, "format", "", "output `format`: yaml or json (default: json if --output ends in .json, else yaml)")
			return func(ctx context.Context, env *Env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				f, err := outputFormat(format, output)
				if err != nil {
					return err
				}
				data, warnings, err := RenderBootstrap(os.LookupEnv, os.ReadFile, f)
				for _, w := range warnings {
					env.Log.Warn(w)
				}
				if err != nil {
					return err
				}
				if output == "-" {
					_, err = env.Stdout.Write(data)
					return err
				}
				if err := fsutil.WriteFileAtomic(output, data, 0o644); err != nil {
					return err
				}
				env.Log.Info("bootstrap written", "path", output, "format", string(f))
				return nil
			}
		},
	}
}

func outputFormat(format, output string) (tracing.Format, error) {
	switch strings.ToLower(format) {
	case "":
		if strings.HasSuffix(output, ".json") {
			return tracing.JSON, nil
		}
		return tracing.YAML, nil
	case "yaml", "yml":
		return tracing.YAML, nil
	case "json":
		return tracing.JSON, nil
	}
	return "", usagef("--format %q: want yaml or json", format)
}

// RenderBootstrap is meshd bootstrap without the file handling: environment
// in, encoded bootstrap out. Input problems are an error exiting 2.
func RenderBootstrap(lookup tracing.Lookup, readFile func(string) ([]byte, error), f tracing.Format) ([]byte, []string, error) {
	cfg, err := tracing.FromEnv(lookup)
	if err != nil {
		return nil, nil, wrapInput(err)
	}
	b, warnings, err := tracing.Render(cfg, readFile)
	if err != nil {
		return nil, cfg.Warnings, wrapInput(err)
	}
	data, err := tracing.Encode(b, f)
	return data, warnings, err
}

func wrapInput(err error) error {
	if tracing.IsInput(err) {
		return inputError{err}
	}
	return err
}

// printInputError prints each problem on its own line; it reports whether
// err was an input error.
func printInputError(w io.Writer, path string, err error) bool {
	var ie inputError
	if !errors.As(err, &ie) {
		return false
	}
	for _, line := range strings.Split(ie.Error(), "\n") {
		fmt.Fprintf(w, "%s: %s\n", path, line)
	}
	return true
}
