package sds

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/status"

	"github.com/meshd/meshd/sds/sdsclient"
)

const (
	helperEnv    = "MESHD_SDS_TEST_CLIENT"
	nobody       = 65534
	helperSocket = "MESHD_SDS_TEST_SOCKET"
)

// TestMain lets the test binary act as an SDS client in another process
// (run as another uid by TestOtherUIDPeer).
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(runClientHelper())
	}
	// Every stream, connection and loop must be gone when the tests end.
	goleak.VerifyTestMain(m)
}

type helperResult struct {
	IDs  []string `json:"ids"`
	Code string   `json:"code"`
	Err  string   `json:"err"`
}

func runClientHelper() int {
	res := helperResult{Code: "OK"}
	conn, err := sdsclient.Dial(os.Getenv(helperSocket))
	if err == nil {
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, ferr := secretv3Client(conn).FetchSecrets(ctx, sdsclient.Request(sdsclient.Node("helper", "1.34.0"), "default", "ROOTCA"))
		err = ferr
		if ferr == nil {
			ss, _ := sdsclient.Secrets(resp)
			for _, s := range ss {
				res.IDs = append(res.IDs, sdsclient.Describe(s))
			}
		}
	}
	if err != nil {
		res.Code, res.Err = status.Code(err).String(), err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// runAs runs the helper client as uid/gid against socket.
func runAs(t *testing.T, bin string, uid, gid uint32, groups []uint32, socket string) helperResult {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperSocket+"="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper as uid %d: %v (%s)", uid, err, out)
	}
	var res helperResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	return res
}

// TestOtherUIDPeer attests real peer credentials of another process running
// as another uid: the identity mapped to uid 65534 is served to it, and a
// uid with no identity gets PermissionDenied. Needs root to switch uid.
func TestOtherUIDPeer(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test must run as root in CI (it starts a client as uid 65534)")
		}
		t.Skip("needs root to run a client as another uid; CI runs it as root")
	}
	// The test binary lives under a root-only build dir; copy it where
	// nobody can execute it.
	bin := copyExecutable(t)
	ids := fmt.Sprintf("- spiffeID: spiffe://example.org/ns/apps/sa/nobody\n  dnsNames: [nobody.apps.local]\n  selectors: [uid:%d, gid:%d]\n", nobody, nobody)
	ts := startServer(t, serverOpts{identities: ids, group: nobody, dirMode: 0o755})
	res := runAs(t, bin, nobody, nobody, nil, ts.socket)
	if res.Code != "OK" || len(res.IDs) != 2 || !strings.Contains(res.IDs[0], "spiffe://example.org/ns/apps/sa/nobody") {
		t.Fatalf("uid %d: %+v", nobody, res)
	}
	// Outside the socket's group: the 0660 socket itself keeps it out.
	res = runAs(t, bin, nobody, nobody-1, nil, ts.socket)
	if res.Code != "Unavailable" || !strings.Contains(res.Err, "permission denied") {
		t.Fatalf("uid %d gid %d without the socket group: %+v", nobody, nobody-1, res)
	}
	// In the socket's group only as a supplementary group: it connects, but
	// its primary gid does not match the gid selector.
	res = runAs(t, bin, nobody, nobody-1, []uint32{nobody}, ts.socket)
	if res.Code != "PermissionDenied" || !strings.Contains(res.Err, fmt.Sprintf("uid=%d gid=%d", nobody, nobody-1)) {
		t.Fatalf("uid %d gid %d: %+v", nobody, nobody-1, res)
	}
}

func copyExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir := shortTempDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := dir + "/client.test"
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
