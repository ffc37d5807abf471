package grafana

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/meshd/meshd/internal/promtool"
	"github.com/meshd/meshd/metrics"
)

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func load(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile("meshd-appmesh.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("meshd-appmesh.json: %v", err)
	}
	return d
}

// TestDashboardLayout: unique ids, panels inside Grafana's 24-column grid
// and not overlapping, every query on the dashboard's data source variable.
func TestDashboardLayout(t *testing.T) {
	d := load(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 || len(d.Panels) < 8 {
		t.Fatalf("dashboard header: uid %q title %q schema %d panels %d", d.UID, d.Title, d.SchemaVersion, len(d.Panels))
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, want := range []string{"datasource", "mesh", "virtual_node"} {
		if !vars[want] {
			t.Errorf("no template variable %q", want)
		}
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]int{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps panel %d at (%d,%d)", p.Title, other, x, y)
				}
				used[cell{x, y}] = p.ID
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %+v, %d targets", p.Title, p.Datasource, len(p.Targets))
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] || tg.Expr == "" {
				t.Errorf("panel %q: refId %q repeated or empty expression", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
		}
	}
}

// grafanaVars replaces Grafana's variables with what they expand to, so the
// expressions are plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$mesh", ".*", "$virtual_node", ".*")

// TestDashboardQueries: every expression is valid PromQL (promtool check
// rules) and uses only metrics meshd exports.
func TestDashboardQueries(t *testing.T) {
	d := load(t)
	exported := exportedNames(t)
	var rules bytes.Buffer
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	nameRe := regexp.MustCompile(`\b(envoy_appmesh_[A-Za-z0-9_]+|meshd_[a-z0-9_]+)\b`)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			expr := grafanaVars.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q %s: unknown variable in %s", p.Title, tg.RefID, tg.Expr)
			}
			names := nameRe.FindAllString(expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q %s: no meshd or App Mesh metric in %s", p.Title, tg.RefID, tg.Expr)
			}
			for _, name := range names {
				if !exported[name] {
					t.Errorf("panel %q %s: %s is not a metric meshd exports", p.Title, tg.RefID, name)
				}
			}
			n++
			quoted, _ := json.Marshal(expr)
			fmt.Fprintf(&rules, "  - record: dashboard:panel%d:%s\n    expr: %s\n", p.ID, strings.ToLower(tg.RefID), quoted)
		}
	}
	t.Logf("%d expressions", n)
	promtool.CheckRules(t, rules.Bytes())
}

// exportedNames lists the Prometheus names meshd exports: the extension's
// envoy_appmesh_<Metric> (histograms with _bucket, _sum and _count) and the
// meshd_* metrics registered in its code.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range []string{metrics.ActiveConnectionCount, metrics.NewConnectionCount, metrics.ProcessedBytes, metrics.RequestCount,
		metrics.GrpcRequestCount, metrics.TargetProcessedBytes, metrics.HTTPCodeTarget2XXCount, metrics.HTTPCodeTarget3XXCount,
		metrics.HTTPCodeTarget4XXCount, metrics.HTTPCodeTarget5XXCount, metrics.RequestCountPerTarget} {
		out[metrics.PrometheusPrefix+m] = true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		out[metrics.PrometheusPrefix+metrics.TargetResponseTime+suffix] = true
	}
	lit := regexp.MustCompile(`Name: +"(meshd_[a-z0-9_]+)"`)
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && (e.Name() == ".git" || e.Name() == "testdata" || e.Name() == "bench") {
			return filepath.SkipDir
		}
		if e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllSubmatch(data, -1) {
			name := string(m[1])
			out[name] = true
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				out[name+suffix] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !out["meshd_sds_svid_expiry_timestamp_seconds"] {
		t.Fatal("did not find meshd's metric registrations in the source")
	}
	return out
}
