package deploytest

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/meshd/meshd/internal/cli"
	"github.com/meshd/meshd/tracing"
)

// RunDocCommands checks every meshd command of a document's sh blocks: it
// must parse with meshd's command line and use only variables meshd knows.
// The cheap, self-contained ones run in-process: validate (on a directory
// of this repository), bootstrap (in a scratch directory), ca init/show/token
// create (on a scratch state directory). It returns the command paths that
// ran.
func RunDocCommands(t *testing.T, doc string) map[string]int {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, doc))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := ShellCommands(string(data))
	if err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	ran := map[string]int{}
	parsed := 0
	stateDirs := map[string]string{} // a path in the document → scratch directory
	for _, c := range cmds {
		if len(c.Argv) == 0 || !IsMeshd(c.Argv[0]) {
			continue
		}
		parsed++
		where := func() string { return doc + ":" + strconv.Itoa(c.Line) + ": " + c.String() }
		path, fs, err := ParseMeshd(c.Argv)
		if err != nil {
			t.Errorf("%s: %v", where(), err)
			continue
		}
		var names []string
		for k := range c.Env {
			names = append(names, k)
		}
		for _, err := range CheckEnvNames(names, nil) {
			t.Errorf("%s: %v", where(), err)
		}
		sub := strings.Join(path[1:], " ")
		args := slices.Clone(c.Argv[1:])
		switch sub {
		case "validate":
			if fs.NArg() != 1 {
				continue
			}
			if fi, err := os.Stat(filepath.Join(root, fs.Arg(0))); err != nil || !fi.IsDir() {
				continue // a directory of the reader's (mesh/, /etc/meshd/mesh)
			}
			t.Chdir(root)
		case "bootstrap":
			t.Chdir(t.TempDir())
			for _, v := range tracing.Variables {
				if _, ok := c.Env[v.Name]; !ok {
					t.Setenv(v.Name, "") // restored after the test
					os.Unsetenv(v.Name)
				}
			}
			for k, v := range c.Env {
				t.Setenv(k, v)
			}
		case "ca init", "ca show", "ca token create":
			dir := Flag(fs, "state-dir")
			if dir == "" {
				continue
			}
			scratch, ok := stateDirs[dir]
			if !ok {
				scratch = filepath.Join(t.TempDir(), "state")
				stateDirs[dir] = scratch
				if sub != "ca init" {
					// The document's CA exists already: make one in the trust
					// domain the command uses.
					td := "example.org"
					if id := Flag(fs, "spiffe-id"); id != "" {
						td = strings.SplitN(strings.TrimPrefix(id, "spiffe://"), "/", 2)[0]
					}
					if code := cli.Main(context.Background(), []string{"ca", "init", "--state-dir", scratch, "--trust-domain", td}, io.Discard, io.Discard); code != 0 {
						t.Fatalf("ca init for %s: exit %d", where(), code)
					}
				}
			}
			for i, a := range args {
				if a == dir {
					args[i] = scratch
				}
			}
		default:
			continue // long-running or needs the outside world: parsed only
		}
		var stdout, stderr bytes.Buffer
		if code := cli.Main(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Errorf("%s: exit %d\n%s", where(), code, stderr.String())
			continue
		}
		ran[sub]++
		switch sub {
		case "bootstrap":
			if out := Flag(fs, "output"); out != "-" {
				if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
					t.Errorf("%s: no bootstrap written: %v", where(), err)
				}
			}
		case "ca token create":
			if !strings.HasPrefix(stdout.String(), "meshd-jt.") {
				t.Errorf("%s: printed %q, not a join token", where(), stdout.String())
			}
		}
	}
	if parsed == 0 {
		t.Errorf("%s: no meshd command found", doc)
	}
	return ran
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	slugDrop  = regexp.MustCompile(`[^a-z0-9 _-]`)
)

// slug is GitHub's anchor for a heading.
func slug(h string) string {
	return strings.ReplaceAll(slugDrop.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), ""), " ", "-")
}

// CheckLinks checks that every relative link of a Markdown document (from
// the repository root) names a file or directory that exists and, with a
// #fragment into a Markdown file, a heading of it.
func CheckLinks(t *testing.T, doc string) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mdLink.FindAllStringSubmatch(string(data), -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		file, frag, _ := strings.Cut(target, "#")
		p := filepath.Join(root, filepath.Dir(doc), file)
		if file == "" {
			p = filepath.Join(root, doc)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: link %s: %v", doc, target, err)
			continue
		}
		if frag == "" || !strings.HasSuffix(p, ".md") {
			continue
		}
		md, _ := os.ReadFile(p)
		found := false
		for _, h := range mdHeading.FindAllStringSubmatch(string(md), -1) {
			if slug(h[1]) == frag {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: link %s: no such heading", doc, target)
		}
	}
}
