package ecs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/moby/buildkit/frontend/dockerfile/command"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/meshd/meshd/deploy/internal/deploytest"
	"github.com/meshd/meshd/internal/cli"
)

type dockerStage struct {
	image, name string
	steps       []*parser.Node
}

// parseDockerfile parses with BuildKit's own parser and splits the result
// into global ARG defaults and stages.
func parseDockerfile(src string) (args map[string]string, stages []dockerStage, err error) {
	res, err := parser.Parse(strings.NewReader(src))
	if err != nil {
		return nil, nil, err
	}
	if len(res.Warnings) > 0 {
		return nil, nil, fmt.Errorf("parser warnings: %+v", res.Warnings)
	}
	args = map[string]string{}
	for _, n := range res.AST.Children {
		n.Value = strings.ToLower(n.Value)
		if _, ok := command.Commands[n.Value]; !ok {
			return nil, nil, fmt.Errorf("line %d: unknown instruction %q", n.StartLine, n.Value)
		}
		switch {
		case n.Value == command.From:
			words := nodeWords(n)
			st := dockerStage{image: expandArgs(words[0], args)}
			if len(words) == 3 && strings.EqualFold(words[1], "AS") {
				st.name = words[2]
			} else if len(words) != 1 {
				return nil, nil, fmt.Errorf("line %d: FROM %q", n.StartLine, words)
			}
			stages = append(stages, st)
		case len(stages) == 0:
			if n.Value != command.Arg {
				return nil, nil, fmt.Errorf("line %d: %s before the first FROM", n.StartLine, n.Value)
			}
			k, v, _ := strings.Cut(nodeWords(n)[0], "=")
			args[k] = v
		default:
			stages[len(stages)-1].steps = append(stages[len(stages)-1].steps, n)
		}
	}
	return args, stages, nil
}

func nodeWords(n *parser.Node) []string {
	var w []string
	for x := n.Next; x != nil; x = x.Next {
		w = append(w, x.Value)
	}
	return w
}

var argRef = regexp.MustCompile(`\$\{(\w+)\}`)

func expandArgs(s string, args map[string]string) string {
	return argRef.ReplaceAllStringFunc(s, func(m string) string { return args[argRef.FindStringSubmatch(m)[1]] })
}

func stageNamed(stages []dockerStage, name string) *dockerStage {
	for i := range stages {
		if stages[i].name == name {
			return &stages[i]
		}
	}
	return nil
}

func instruction(st *dockerStage, cmd string) []*parser.Node {
	var out []*parser.Node
	for _, n := range st.steps {
		if n.Value == cmd {
			out = append(out, n)
		}
	}
	return out
}

// goVersion is the go directive of go.mod.
func goVersion(t *testing.T) string {
	root, err := deploytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

// TestDockerfile parses the Dockerfile with BuildKit's parser and checks
// the images against what the task definitions expect of them.
func TestDockerfile(t *testing.T) {
	src, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	args, stages, err := parseDockerfile(string(src))
	if err != nil {
		t.Fatal(err)
	}
	build, meshd, envoy := stageNamed(stages, "build"), stageNamed(stages, "meshd"), stageNamed(stages, "envoy")
	if build == nil || meshd == nil || envoy == nil {
		t.Fatalf("stages %+v; want build, meshd and envoy", stages)
	}
	if want := "golang:" + goVersion(t) + "-bookworm"; build.image != want {
		t.Errorf("build stage FROM %s; want %s (go.mod's go directive)", build.image, want)
	}
	var buildCmd string
	for _, n := range instruction(build, command.Run) {
		if s := strings.Join(nodeWords(n), " "); strings.Contains(s, "go build") {
			buildCmd = s
		}
	}
	// The version stamp must name the variable meshd prints.
	_ = cli.Version
	for _, want := range []string{"CGO_ENABLED=0", "-X github.com/meshd/meshd/internal/cli.Version=", "-o /out/meshd", "./cmd/meshd"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("go build %q lacks %s", buildCmd, want)
		}
	}
	root, _ := deploytest.RepoRoot()
	if _, err := os.Stat(filepath.Join(root, "cmd/meshd/main.go")); err != nil {
		t.Error(err)
	}

	tds := loadTaskDefs(t)
	userOfImage := func(st *dockerStage) string {
		u := instruction(st, command.User)
		if len(u) == 0 {
			return ""
		}
		return nodeWords(u[len(u)-1])[0]
	}
	entrypoint := func(st *dockerStage) []string {
		ep := instruction(st, command.Entrypoint)
		if len(ep) != 1 || !ep[0].Attributes["json"] {
			t.Errorf("stage %s: want one exec-form (JSON) ENTRYPOINT", st.name)
			return nil
		}
		return nodeWords(ep[0])
	}
	for _, st := range []*dockerStage{meshd, envoy} {
		copies := instruction(st, command.Copy)
		if len(copies) != 1 || !slices.Contains(copies[0].Flags, "--from=build") || nodeWords(copies[0])[1] != "/usr/bin/meshd" {
			t.Errorf("stage %s: want COPY --from=build /out/meshd /usr/bin/meshd", st.name)
		}
	}
	if ep := entrypoint(meshd); !slices.Equal(ep, []string{"/usr/bin/meshd"}) {
		t.Errorf("meshd ENTRYPOINT %q", ep)
	}
	ep := entrypoint(envoy)
	if _, fs, err := deploytest.ParseMeshd(ep); err != nil || len(ep) < 2 || ep[1] != "agent" {
		t.Errorf("envoy ENTRYPOINT %q: %v", ep, err)
	} else if deploytest.Flag(fs, "envoy-path") != "/usr/local/bin/envoy" {
		t.Errorf("envoy ENTRYPOINT: --envoy-path %q; envoyproxy/envoy has Envoy at /usr/local/bin/envoy", deploytest.Flag(fs, "envoy-path"))
	}
	if envoy.image != args["ENVOY_IMAGE"] || args["ENVOY_IMAGE"] == "" {
		t.Errorf("envoy stage FROM %q; want the ENVOY_IMAGE argument", envoy.image)
	}

	// The task definitions use these images as built.
	for _, td := range tds {
		for i := range td.in.ContainerDefinitions {
			c := &td.in.ContainerDefinitions[i]
			img := aws.ToString(c.Image)
			switch {
			case strings.Contains(img, "/meshd-envoy:"):
				if aws.ToString(c.User) != userOfImage(envoy) {
					t.Errorf("%s: %s runs as %q, the envoy image as %q", td.file, aws.ToString(c.Name), aws.ToString(c.User), userOfImage(envoy))
				}
				if a := argv(c); len(a) < len(ep) || !slices.Equal(a[:len(ep)], ep) {
					t.Errorf("%s: %s runs %q; the image's entrypoint is %q", td.file, aws.ToString(c.Name), a, ep)
				}
			case strings.Contains(img, "envoyproxy/envoy"):
				if img != args["ENVOY_IMAGE"] {
					t.Errorf("%s: stock Envoy %s; the Dockerfile builds on %s", td.file, img, args["ENVOY_IMAGE"])
				}
			case strings.Contains(img, "/meshd:") && aws.ToString(c.User) == "":
				t.Errorf("%s: %s: say which user a meshd container runs as", td.file, aws.ToString(c.Name))
			}
		}
	}
	for _, td := range tds {
		if c := container(td, "controlplane"); c != nil && aws.ToString(c.User) != userOfImage(meshd) {
			t.Errorf("%s: the control plane runs as %q; the meshd image's user (and the EFS access point's) is %q", td.file, aws.ToString(c.User), userOfImage(meshd))
		}
	}

	// The build context keeps what the build needs.
	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		line = strings.TrimSpace(line)
		for _, needed := range []string{"go.mod", "go.sum", "cmd/meshd/main.go", "internal/cli/cli.go", "examples/apps/mesh.json"} {
			if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "!") {
				if ok, _ := filepath.Match(strings.TrimPrefix(line, "**/"), filepath.Base(needed)); ok || line == needed || strings.HasPrefix(needed, line+"/") {
					t.Errorf("Dockerfile.dockerignore: %q excludes %s", line, needed)
				}
			}
		}
	}

	// The checks can fail.
	for name, bad := range map[string]string{
		"unknown instruction": "FROM x AS build\nRUNN go build\n",
		"bad FROM":            "FROM x AS\n",
		"step before FROM":    "RUN true\nFROM x\n",
	} {
		if _, _, err := parseDockerfile(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := parseDockerfile("FROM x\nENTRYPOINT [\"a\", \"b\"]\n"); err != nil {
		t.Error(err)
	}
}
