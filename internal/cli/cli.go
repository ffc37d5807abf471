// Package cli implements meshd's command line: a tree of subcommands, each
// with its own flag set, documented by --help.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
)

// Version is set at build time (-ldflags "-X github.com/meshd/meshd/internal/cli.Version=…").
var Version = "dev"

// Command is one node of the command tree.
type Command struct {
	Name    string
	Summary string
	// Usage is the argument synopsis after the command path.
	Usage string
	// Long is printed by --help after the synopsis.
	Long string
	// Setup registers flags and returns the action to run after parsing.
	Setup func(fs *flag.FlagSet) Action
	Subs  []*Command
}

// Action runs a parsed command.
type Action func(ctx context.Context, env *Env, args []string) error

// Env is what an action may use of the outside world.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger
}

// usageError is an error in how the command was called (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Root returns meshd's command tree.
func Root() *Command {
	return &Command{
		Name:    "meshd",
		Summary: "Self-hosted workload identity and Envoy tooling for App Mesh-style service meshes.",
		Long: `meshd keeps Envoy sidecars configured "the App Mesh way" running after App Mesh:
it serves short-lived SPIFFE mTLS certificates over SDS from its own CA, and
renders Envoy's bootstrap from the App Mesh environment variables.`,
		Subs: []*Command{sdsCommand(), caCommand(), secretsCommand(), bootstrapCommand(), validateCommand(), controlplaneCommand(), agentCommand(), metricsCommand(), demoCommand(), versionCommand()},
	}
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := Root()
	cmd, path, rest := root, []string{root.Name}, args
	for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		next := cmd.find(rest[0])
		if next == nil {
			if cmd.Setup == nil {
				fmt.Fprintf(stderr, "meshd: unknown command %q\n\n", strings.Join(append(path[1:], rest[0]), " "))
				cmd.printHelp(stderr, path)
				return 2
			}
			break
		}
		cmd, path, rest = next, append(path, next.Name), rest[1:]
	}
	if len(rest) > 0 && rest[0] == "help" && cmd.Setup == nil {
		cmd.printHelp(stdout, path)
		return 0
	}
	if cmd.Setup == nil {
		if len(rest) > 0 && isHelp(rest[0]) {
			cmd.printHelp(stdout, path)
			return 0
		}
		cmd.printHelp(stderr, path)
		return 2
	}
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	action := cmd.Setup(fs)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cmd.printCommandHelp(stdout, path, fs)
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", strings.Join(path, " "), err, strings.Join(path, " "))
		return 2
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", strings.Join(path, " "), err)
		return 2
	}
	err = action(ctx, &Env{Stdout: stdout, Stderr: stderr, Log: log}, fs.Args())
	var ue usageError
	switch {
	case err == nil:
		return 0
	case printInputError(stderr, strings.Join(path, " "), err):
		return 2
	case errors.Is(err, errProblems):
		return 1
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", strings.Join(path, " "), err, strings.Join(path, " "))
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", strings.Join(path, " "), err)
		return 1
	}
}

func isHelp(s string) bool { return s == "-h" || s == "--help" || s == "-help" }

func (c *Command) find(name string) *Command {
	for _, s := range c.Subs {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (c *Command) printHelp(w io.Writer, path []string) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s <command> [flags]\n\n", c.Summary, strings.Join(path, " "))
	if c.Long != "" {
		fmt.Fprintf(w, "%s\n\n", c.Long)
	}
	fmt.Fprintln(w, "Commands:")
	for _, s := range c.Subs {
		fmt.Fprintf(w, "  %-10s %s\n", s.Name, s.Summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> --help' for a command's flags.\n", strings.Join(path, " "))
}

func (c *Command) printCommandHelp(w io.Writer, path []string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s [flags] %s\n", c.Summary, strings.Join(path, " "), c.Usage)
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", c.Long)
	}
	fmt.Fprintln(w, "\nFlags:")
	for _, f := range Flags(fs) {
		fmt.Fprintf(w, "  --%s", f.Name)
		if f.Arg != "" {
			fmt.Fprintf(w, " %s", f.Arg)
		}
		fmt.Fprintf(w, "\n        %s", f.Usage)
		if f.Default != "" {
			fmt.Fprintf(w, " (default %s)", f.Default)
		}
		fmt.Fprintln(w)
	}
}

// FlagDoc describes one flag for help and documentation.
type FlagDoc struct {
	Name, Arg, Usage, Default string
}

// Flags lists a flag set's flags, sorted by name.
func Flags(fs *flag.FlagSet) []FlagDoc {
	var out []FlagDoc
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool {
			arg = ""
		}
		def := f.DefValue
		if def == "false" || def == "[]" {
			def = ""
		}
		if def != "" && arg == "string" || def != "" && strings.ContainsAny(def, " /") {
			def = fmt.Sprintf("%q", def)
		}
		out = append(out, FlagDoc{Name: f.Name, Arg: arg, Usage: usage, Default: def})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Walk calls fn for every runnable command with its path and parsed flag
// set (used by documentation tests).
func Walk(fn func(path []string, c *Command, fs *flag.FlagSet)) {
	var walk func(c *Command, path []string)
	walk = func(c *Command, path []string) {
		if c.Setup != nil {
			fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
			fs.String("log-level", "info", "log level: debug, info, warn or error")
			fs.String("log-format", "text", "log format: text or json")
			c.Setup(fs)
			fn(path, c, fs)
		}
		for _, s := range c.Subs {
			walk(s, append(append([]string(nil), path...), s.Name))
		}
	}
	walk(Root(), []string{"meshd"})
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func versionCommand() *Command {
	return &Command{
		Name: "version", Summary: "Print meshd's version.",
		Setup: func(fs *flag.FlagSet) Action {
			return func(_ context.Context, env *Env, _ []string) error {
				fmt.Fprintf(env.Stdout, "meshd %s\n", Version)
				return nil
			}
		},
	}
}

// Parse checks a meshd command line (the words after "meshd") the way Main
// would, without running it: the subcommand must exist and every flag must
// parse. Deployment tests use it to keep manifests' commands true.
func Parse(args []string) (path []string, fs *flag.FlagSet, err error) {
	cmd, path, rest := Root(), []string{"meshd"}, args
	for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		next := cmd.find(rest[0])
		if next == nil {
			break
		}
		cmd, path, rest = next, append(path, next.Name), rest[1:]
	}
	if cmd.Setup == nil {
		return path, nil, fmt.Errorf("%q is not a runnable meshd command", strings.Join(append(path, rest...), " "))
	}
	fs = flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.String("log-format", "text", "log format: text or json")
	cmd.Setup(fs)
	if err := fs.Parse(rest); err != nil {
		return path, fs, fmt.Errorf("%s: %w", strings.Join(path, " "), err)
	}
	return path, fs, nil
}
