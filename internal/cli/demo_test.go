package cli

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestREADMEDemo runs the README's "see it work" command as written, from
// the checkout's root (so it serves ./examples/apps), with three test-only
// flags: a free metrics port, a fast redraw and a fixed duration. The
// frames must show the 75/25 split, the three certificates and the
// extension metrics, and the demo must stop cleanly.
func TestREADMEDemo(t *testing.T) {
	cmd := readmeCommand(t, "run-command")
	if strings.Join(cmd, " ") != "go run ./cmd/meshd demo" {
		t.Fatalf("README run-command is %q; this test runs go run ./cmd/meshd demo", cmd)
	}
	t.Chdir("../..")
	args := append(cmd[3:], "--metrics-listen", "127.0.0.1:0", "--refresh", "500ms", "--duration", "6s", "--rps", "200")
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("meshd demo exited %d\n%s\n%s", code, out, errOut)
	}
	if errOut != "" {
		t.Errorf("meshd demo wrote to stderr (only errors go there without --log):\n%s", errOut)
	}
	frames := strings.Split(out, "meshd demo — ")
	last := frames[len(frames)-1]
	for _, want := range []string{
		`mesh "apps" on loopback`, "config  examples/apps",
		"spiffe://meshd.local/mesh/apps/virtualNode/serviceA  dns=servicea.apps.local",
		"spiffe://meshd.local/mesh/apps/virtualNode/serviceB  dns=serviceb.apps.local",
		"spiffe://meshd.local/mesh/apps/virtualNode/serviceBv2 dns=servicebv2.apps.local",
		"Prometheus: http://127.0.0.1:",
		"RequestCount         VirtualNode=serviceB ",
		"TargetResponseTime   TargetVirtualNode=serviceBv2",
		"meshd demo: stopped.",
	} {
		if !strings.Contains(last, want) {
			t.Errorf("last frame lacks %q:\n%s", want, last)
		}
	}
	totals := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^  (serviceBv?2?) +(\d+)% +\d+ +[\d.]+% +(\d+)$`).FindAllStringSubmatch(last, -1) {
		n, _ := strconv.Atoi(m[3])
		totals[m[1]] = n
		if w := map[string]string{"serviceB": "75", "serviceBv2": "25"}[m[1]]; m[2] != w {
			t.Errorf("%s weight %s%%, want %s%%", m[1], m[2], w)
		}
	}
	sum := totals["serviceB"] + totals["serviceBv2"]
	if sum < 300 {
		t.Fatalf("only %d answers in 6 s at 200 req/s:\n%s", sum, last)
	}
	if share := 100 * float64(totals["serviceB"]) / float64(sum); share < 68 || share > 82 {
		t.Errorf("serviceB share %.1f %% of %d, want 75 ± 7", share, sum)
	}
}

func TestParseWeights(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		err  string
	}{
		{"0/100", "0 100", ""},
		{"75/25", "75 25", ""},
		{"100", "100", ""},
		{"0/0", "", "add up to 0"},
		{"50/101", "", "want 0–100"},
		{"a/b", "", "want 0–100"},
		{"-1/5", "", "want 0–100"},
		{"1/1/1/1/1/1/1/1/1/1/1", "", "1–10 weights"},
	} {
		got, err := parseWeights(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseWeights(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || fmtInts(got) != tc.want {
			t.Errorf("parseWeights(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	code, _, errOut := runCLI(t, "demo", "--shift", "7")
	if code != 2 || !strings.Contains(errOut, "--shift") {
		t.Errorf("demo --shift 7 on a 2-target route: exit %d, %s", code, errOut)
	}
}

func fmtInts(v []int64) string {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatInt(x, 10))
	}
	return b.String()
}
