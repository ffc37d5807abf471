// Package deploytest holds what the tests of deploy/ecs and deploy/ec2
// share: which environment variables meshd knows, how a meshd command line
// in a deployment file is checked, and how the shell commands of a Markdown
// document are found.
package deploytest

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/meshd/meshd/controlplane"
	"github.com/meshd/meshd/internal/agent"
	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/internal/cli"
	"github.com/meshd/meshd/tracing"
)

// RepoRoot is the module root, found from the working directory (a test
// runs in its package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// ExampleMesh is examples/apps, the mesh every deployment example belongs
// to, loaded and checked as `meshd controlplane` would (once per test
// binary).
var ExampleMesh = sync.OnceValues(func() (*model.Config, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	u, err := controlplane.LoadDir(filepath.Join(root, "examples", "apps"), load.Options{})
	if err != nil {
		return nil, err
	}
	if u.Config == nil {
		return nil, fmt.Errorf("examples/apps: %v", u.Problems)
	}
	return u.Config, nil
})

// ExampleNode returns the virtual node of examples/apps that res names, or
// an error saying it has none.
func ExampleNode(res appmesh.Resource) (*model.VirtualNode, error) {
	cfg, err := ExampleMesh()
	if err != nil {
		return nil, err
	}
	if m := cfg.Meshes[res.Mesh]; m != nil && m.VirtualNodes[res.Name] != nil {
		return m.VirtualNodes[res.Name], nil
	}
	return nil, fmt.Errorf("%s names no virtual node of examples/apps", res)
}

// KnownEnv maps every environment variable a meshd command reads to who
// reads it: "bootstrap" (tracing.Variables: meshd bootstrap and meshd
// agent), "agent" (agent.Variables) or "sds" (the join token).
func KnownEnv() map[string]string {
	known := map[string]string{cli.JoinTokenEnv: "sds"}
	for _, v := range agent.Variables {
		for _, name := range strings.Split(v.Name, ", ") {
			known[name] = "agent"
		}
	}
	for _, v := range tracing.Variables {
		known[v.Name] = "bootstrap"
	}
	return known
}

// meshdPrefixes are the prefixes of variables that must be ones meshd knows
// wherever they appear in a deployment file.
var meshdPrefixes = []string{"APPMESH_", "ENVOY_", "MESHD_", "APPNET_"}

// IsMeshdNamespace reports whether a variable name is in a namespace meshd
// (or App Mesh's Envoy image) owns.
func IsMeshdNamespace(name string) bool {
	for _, p := range meshdPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// CheckEnvNames returns one error per variable in meshd's namespaces that
// neither meshd nor extra (other readers in the same deployment, such as
// the EC2 iptables script) reads.
func CheckEnvNames(names []string, extra map[string]bool) []error {
	known := KnownEnv()
	var errs []error
	for _, n := range names {
		if !IsMeshdNamespace(n) {
			continue
		}
		if _, ok := known[n]; !ok && !extra[n] {
			errs = append(errs, fmt.Errorf("environment variable %s is not read by meshd", n))
		}
	}
	return errs
}

// IsMeshd reports whether argv0 runs meshd.
func IsMeshd(argv0 string) bool {
	return argv0 == "meshd" || argv0 == "/usr/bin/meshd" || argv0 == "/usr/local/bin/meshd"
}

// ParseMeshd checks a meshd command line (argv[0] is the binary) with
// meshd's own command tree and flag sets, as meshd would parse it.
func ParseMeshd(argv []string) (path []string, fs *flag.FlagSet, err error) {
	if len(argv) == 0 || !IsMeshd(argv[0]) {
		return nil, nil, fmt.Errorf("%q is not a meshd command line", argv)
	}
	path, fs, err = cli.Parse(argv[1:])
	if err != nil {
		return path, fs, err
	}
	if len(path) < 2 {
		return path, fs, fmt.Errorf("%q names no meshd command", argv)
	}
	return path, fs, nil
}

// Flag returns a parsed flag's value as a string ("" if the flag set has
// no such flag).
func Flag(fs *flag.FlagSet, name string) string {
	f := fs.Lookup(name)
	if f == nil {
		return ""
	}
	return f.Value.String()
}

// RenderBootstrap renders the Envoy bootstrap meshd would produce from env,
// as `meshd bootstrap` does, reading no file.
func RenderBootstrap(env map[string]string) (data []byte, warnings []string, err error) {
	noFiles := func(name string) ([]byte, error) {
		return nil, fmt.Errorf("%s: the test renders without files", name)
	}
	return cli.RenderBootstrap(tracing.MapLookup(env), noFiles, tracing.JSON)
}

// Command is one command of a shell snippet.
type Command struct {
	Line int               // 1-based line in the document where its snippet line starts
	Env  map[string]string // leading VAR=value assignments
	Argv []string
}

func (c Command) String() string {
	var b strings.Builder
	for _, k := range sortedKeys(c.Env) {
		fmt.Fprintf(&b, "%s=%s ", k, c.Env[k])
	}
	b.WriteString(strings.Join(c.Argv, " "))
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var fence = regexp.MustCompile("^\\s*```\\s*([A-Za-z0-9_-]*)\\s*$")

// ShellCommands returns every command in the ```sh (or bash, shell) blocks
// of a Markdown document: lines joined at backslash-newlines, split at ;,
// &&, || and |, leading VAR=value assignments taken as the environment, a
// leading `sudo -u USER` dropped, `go run ./cmd/meshd` read as meshd. A
// command that is the quoted argument of --command (aws ecs
// execute-command), or follows -- in kubectl exec, is returned as a command
// of its own.
func ShellCommands(md string) ([]Command, error) {
	var out []Command
	lines := strings.Split(md, "\n")
	in := false
	for i := 0; i < len(lines); i++ {
		m := fence.FindStringSubmatch(lines[i])
		if m != nil {
			if in {
				in = false
			} else {
				in = m[1] == "sh" || m[1] == "bash" || m[1] == "shell"
			}
			continue
		}
		if !in {
			continue
		}
		start := i
		line := lines[i]
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
		}
		cmds, err := splitShell(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", start+1, err)
		}
		for _, words := range cmds {
			c := command(words, start+1)
			if len(c.Argv) == 0 {
				continue
			}
			out = append(out, c)
			if c.Argv[0] == "kubectl" && slices.Contains(c.Argv, "exec") {
				if j := slices.Index(c.Argv, "--"); j >= 0 && j+1 < len(c.Argv) {
					out = append(out, command(c.Argv[j+1:], start+1))
				}
			}
			for j, w := range c.Argv {
				if w == "--command" && j+1 < len(c.Argv) {
					inner, err := splitShell(c.Argv[j+1])
					if err != nil {
						return nil, fmt.Errorf("line %d: --command: %w", start+1, err)
					}
					for _, iw := range inner {
						out = append(out, command(iw, start+1))
					}
				}
			}
		}
	}
	if in {
		return nil, errors.New("unterminated code block")
	}
	return out, nil
}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func command(words []string, line int) Command {
	c := Command{Line: line, Env: map[string]string{}}
	for len(words) > 0 && assignment.MatchString(words[0]) {
		k, v, _ := strings.Cut(words[0], "=")
		c.Env[k] = v
		words = words[1:]
	}
	for len(words) > 0 && shellKeywords[words[0]] {
		words = words[1:]
	}
	if len(words) >= 3 && words[0] == "sudo" && words[1] == "-u" {
		words = words[3:]
	}
	if len(words) >= 3 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/meshd" {
		words = append([]string{"meshd"}, words[3:]...) // the README's form, from a checkout
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		op := strings.TrimLeft(w, "0123456789&")
		switch {
		case op == ">" || op == ">>" || op == "<":
			i++ // the redirection's target
		case strings.HasPrefix(op, ">") || strings.HasPrefix(op, "<"):
		default:
			c.Argv = append(c.Argv, w)
		}
	}
	return c
}

var shellKeywords = map[string]bool{"do": true, "then": true, "else": true, "!": true, "time": true, "exec": true}

// splitShell splits one shell line into commands and their words. It
// understands the quoting a documentation snippet uses: single quotes,
// double quotes with backslash escapes, $(…) (kept as one word), # comments,
// and the separators ; && || | (a lone & is refused).
func splitShell(line string) ([][]string, error) {
	var (
		cmds  [][]string
		words []string
		word  strings.Builder
		has   bool
	)
	endWord := func() {
		if has {
			words = append(words, word.String())
		}
		word.Reset()
		has = false
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			word.WriteString(line[i+1 : i+1+j])
			has = true
			i += j + 1
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				}
				word.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, errors.New("unterminated double quote")
			}
			has = true
		case c == '$' && i+1 < len(line) && line[i+1] == '(':
			depth, j := 0, i
			for ; j < len(line); j++ {
				if line[j] == '(' {
					depth++
				} else if line[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if j >= len(line) {
				return nil, errors.New("unterminated $(")
			}
			word.WriteString(line[i : j+1])
			has = true
			i = j
		case c == '\\' && i+1 < len(line):
			i++
			word.WriteByte(line[i])
			has = true
		case c == ' ' || c == '\t':
			endWord()
		case c == '#' && !has:
			endCmd()
			return cmds, nil
		case c == ';':
			endCmd()
		case c == '|' || c == '&':
			if i+1 < len(line) && line[i+1] == c {
				i++
			} else if c == '&' {
				return nil, errors.New("background & in a documented command")
			}
			endCmd()
		default:
			word.WriteByte(c)
			has = true
		}
	}
	endCmd()
	return cmds, nil
}
