package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docCommands returns every meshd command line in the ```sh blocks of a
// Markdown file: continuation lines joined, comments dropped, leading
// VAR=value assignments skipped, `go run ./cmd/meshd` read as meshd.
func docCommands(t *testing.T, path string) [][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	in := false
	var line string
	for _, l := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "```") {
			in = !in && (trimmed == "```sh" || trimmed == "```bash" || trimmed == "```shell")
			continue
		}
		if !in {
			continue
		}
		line += trimmed
		if strings.HasSuffix(line, `\`) {
			line = strings.TrimSuffix(line, `\`) + " "
			continue
		}
		full := line
		line = ""
		if i := strings.Index(full, " #"); i >= 0 {
			full = full[:i]
		}
		words, err := shellWords(full)
		if err != nil {
			t.Errorf("%s: %q: %v", path, full, err)
			continue
		}
		for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
			words = words[1:]
		}
		if len(words) >= 3 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/meshd" {
			words = append([]string{"meshd"}, words[3:]...)
		}
		if len(words) > 0 && (words[0] == "meshd" || strings.HasSuffix(words[0], "/meshd")) {
			// Stop at pipes and redirections.
			for i, w := range words {
				if w == "|" || w == ">" || w == "&&" || w == ";" || strings.HasPrefix(w, ">") || strings.HasPrefix(w, "2>") {
					words = words[:i]
					break
				}
			}
			out = append(out, words[1:])
		}
	}
	return out
}

// shellWords splits a command line into words with sh's quoting rules
// (single and double quotes, backslash escapes).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quote := false, rune(0)
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == '\'':
			cur.WriteRune(c)
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case quote == '"':
			cur.WriteRune(c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errUnterminated
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

type docError string

func (e docError) Error() string { return string(e) }

const errUnterminated = docError("unterminated quote")

// TestDocsCommands: every meshd command shown in the README, docs/ and the
// deployment READMEs names a real command with real flags.
func TestDocsCommands(t *testing.T) {
	root := filepath.Join("..", "..")
	files := []string{filepath.Join(root, "README.md")}
	for _, pattern := range []string{"docs/*.md", "deploy/*/README.md", "deploy/*/*/README.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	total := 0
	for _, f := range files {
		for _, args := range docCommands(t, f) {
			total++
			if _, _, err := Parse(args); err != nil {
				t.Errorf("%s: meshd %s: %v", f, strings.Join(args, " "), err)
			}
		}
	}
	if total < 15 {
		t.Fatalf("found only %d meshd commands in %d files; the scanner is broken", total, len(files))
	}
	t.Logf("%d meshd commands in %d files parse", total, len(files))
}

func TestShellWords(t *testing.T) {
	for in, want := range map[string]string{
		`meshd ca token create --spiffe-id 'spiffe://x/y z'`: `meshd|ca|token|create|--spiffe-id|spiffe://x/y z`,
		`a "b c" d\ e`: `a|b c|d e`,
		`  x  `:        `x`,
	} {
		got, err := shellWords(in)
		if err != nil || strings.Join(got, "|") != want {
			t.Errorf("shellWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := shellWords(`a 'b`); err == nil {
		t.Error("unterminated quote accepted")
	}
}
