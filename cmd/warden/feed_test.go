package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardenauthz/warden/events"
)

var natsURLLine = regexp.MustCompile(`msg="embedded NATS accepts connections" .*url=(\S+)`)

// TestEventsAcrossReplicas runs three Warden processes' worth of run() on one
// JetStream — the first with the embedded server open on a loopback port,
// the other two connected to it — and publishes permission changes with the
// warden event command. Every replica must deny the affected tokens, tell
// the client to refresh where it should, and accept tokens issued after.
func TestEventsAcrossReplicas(t *testing.T) {
	dataDir := t.TempDir() // one development issuer for all three
	replicas := startReplicas(t, dataDir, 3)
	first, second, third := replicas[0], replicas[1], replicas[2]

	alice := mint(t, dataDir, "--sub", "alice@example.com", "--roles", "manager")
	bob := mint(t, dataDir, "--sub", "bob", "--roles", "manager")
	for _, r := range replicas {
		if d := askDecision(t, r, alice, "orders:approve"); !d.Allow {
			t.Fatalf("%s before any event: %+v", r, d)
		}
	}

	out := warden(t, dataDir, "event", "roles_changed", "--subject", "alice@example.com", "--reason", "demoted", "--server", first, "--wait", "2s")
	if !strings.Contains(out, "enforced on 3/3 replicas") {
		t.Errorf("warden event printed %q, want enforcement on 3/3 replicas", out)
	}
	for _, r := range replicas {
		d := askDecision(t, r, alice, "orders:approve")
		if d.Allow || d.Reason != "token_stale" || !d.Refresh {
			t.Errorf("%s: alice's old token = %+v, want token_stale with refresh", r, d)
		}
		if d := askDecision(t, r, bob, "orders:approve"); !d.Allow {
			t.Errorf("%s: bob was not concerned but got %+v", r, d)
		}
	}
	// iat has one-second resolution: a token minted in the same second as
	// the change counts as older. The client's refresh comes later.
	time.Sleep(1100 * time.Millisecond)
	fresh := mint(t, dataDir, "--sub", "alice@example.com", "--roles", "staff")
	for _, r := range replicas {
		if d := askDecision(t, r, fresh, "orders:read"); !d.Allow {
			t.Errorf("%s: alice's refreshed token = %+v, want allowed", r, d)
		}
	}

	// Read your writes: publish on one replica, decide on another at once.
	seq := publishJSON(t, first, dataDir, `{"type":"subject_disabled","subject":"bob","reason":"left"}`)
	d := decideWithMinSeq(t, third, bob, seq)
	if d.Allow || d.Reason != "subject_disabled" || d.Refresh {
		t.Errorf("with Warden-Min-Seq %d: %+v, want subject_disabled without refresh", seq, d)
	}

	warden(t, dataDir, "event", "subject_enabled", "--subject", "bob", "--server", second)
	waitFor(t, func() (decisionResult, bool) {
		d := askDecision(t, third, bob, "orders:approve")
		return d, d.Allow
	})
}

// TestEventCommandErrors checks that the CLI reports what went wrong.
func TestEventCommandErrors(t *testing.T) {
	dataDir := t.TempDir()
	baseURL, _, _ := startWarden(t, dataDir)
	waitReady(t, baseURL)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no type", []string{"event"}, "usage: warden event <type>"},
		{"unknown type", []string{"event", "roles_exploded", "--subject", "a", "--server", baseURL}, "invalid_request"},
		{"token_revoked without jti", []string{"event", "token_revoked", "--subject", "a", "--server", baseURL}, "jti"},
		{"not an admin", []string{"event", "roles_changed", "--subject", "a", "--server", baseURL, "--token", mint(t, dataDir, "--sub", "eve", "--roles", "staff")}, "forbidden"},
		{"nobody listening", []string{"event", "roles_changed", "--subject", "a", "--server", "http://127.0.0.1:1"}, "is Warden running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"warden"}, tt.args...)
			args = append(args, "--data-dir", dataDir)
			err := run(context.Background(), args, env(nil), nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// warden runs a command through run and returns what it printed.
func warden(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	all := append(append([]string{"warden"}, args...), "--data-dir", dataDir)
	if err := run(context.Background(), all, env(nil), nil, &stdout, &stderr); err != nil {
		t.Fatalf("warden %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

func waitReady(t testing.TB, baseURL string) {
	t.Helper()
	waitReadyWithin(t, baseURL, 10*time.Second)
}

// waitReadyWithin is waitReady with its own deadline.
func waitReadyWithin(t testing.TB, baseURL string, within time.Duration) {
	t.Helper()
	waitForWithin(t, within, func() (int, bool) {
		resp, err := http.Get(baseURL + "/readyz")
		if err != nil {
			return 0, false
		}
		resp.Body.Close()
		return resp.StatusCode, resp.StatusCode == 200
	})
}

// publishJSON posts an event with a development admin token and returns its
// stream sequence.
func publishJSON(t *testing.T, baseURL, dataDir, body string) uint64 {
	t.Helper()
	req, _ := http.NewRequest("POST", baseURL+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+mint(t, dataDir, "--sub", "admin", "--roles", "warden-admin"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Seq == 0 {
		t.Fatalf("POST /v1/events: %d %v %+v", resp.StatusCode, err, out)
	}
	return out.Seq
}

func decideWithMinSeq(t *testing.T, baseURL, token string, seq uint64) decisionResult {
	t.Helper()
	req, _ := http.NewRequest("POST", baseURL+"/v1/decision", strings.NewReader(`{"action":"orders:approve"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Warden-Min-Seq", strconv.FormatUint(seq, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d decisionResult
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("decision with Warden-Min-Seq: %d %s", resp.StatusCode, b)
	}
	json.NewDecoder(resp.Body).Decode(&d)
	return d
}

// TestExternalPublisherJS publishes a permission change with the NATS
// JavaScript client straight to the documented subject and JSON, as an
// identity provider hook in another language would, and checks that Warden
// enforces it. .ci/run installs the client (npm ci in testdata/publisher-js).
func TestExternalPublisherJS(t *testing.T) {
	node, dir := jsClient(t)
	dataDir := t.TempDir()
	baseURL, log, _ := startWarden(t, dataDir, "--events-embedded-listen", "127.0.0.1:0")
	waitReady(t, baseURL)
	natsURL := natsURLLine.FindStringSubmatch(log.String())[1]
	token := mint(t, dataDir, "--sub", "José <jose@example.com>", "--roles", "manager")

	cmd := exec.Command(node, "publish.mjs", natsURL, "sessions_revoked", "José <jose@example.com>", "logged out everywhere")
	cmd.Dir = dir
	// The publisher's own key: it may publish events and nothing else.
	cmd.Env = append(os.Environ(), "NKEY_SEED_FILE="+filepath.Join(dataDir, "nats-auth", events.PublisherUser+".nk"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node publish.mjs: %v\n%s", err, out)
	}
	var ack struct{ Seq uint64 }
	if err := json.Unmarshal(out, &ack); err != nil || ack.Seq == 0 {
		t.Fatalf("publish.mjs printed %q", out)
	}
	d := decideWithMinSeq(t, baseURL, token, ack.Seq)
	if d.Allow || d.Reason != "token_revoked" || d.Refresh {
		t.Errorf("token after sessions_revoked from JavaScript = %+v, want token_revoked without refresh", d)
	}
}

// jsClient is node and the directory of the JavaScript publishers
// (testdata/publisher-js). Without them the test fails under CI, whose
// .ci/run installs them, and is skipped elsewhere.
func jsClient(t *testing.T) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	dir, _ = filepath.Abs("../../testdata/publisher-js")
	if _, statErr := os.Stat(filepath.Join(dir, "node_modules", "nats")); err != nil || statErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node or the NATS JavaScript client is missing (node: %v, client: %v); .ci/run must install them", err, statErr)
		}
		t.Skip("needs node and `npm ci` in testdata/publisher-js")
	}
	return node, dir
}

// replicaSeed is the nkey seed with which other replicas join the embedded
// NATS server of the replica whose data directory is dataDir.
func replicaSeed(dataDir string) string {
	return filepath.Join(dataDir, "nats-auth", events.ReplicaUser+".nk")
}

// startReplicas starts n replicas (r1, r2, ...) sharing one JetStream: the
// first runs the embedded server, open on a loopback port, with its data in
// dataDir; the others join it with its replica key, and share its
// development issuer. Every replica also gets extra as arguments. It
// returns their base URLs once all are ready.
func startReplicas(t testing.TB, dataDir string, n int, extra ...string) []string {
	t.Helper()
	first, firstLog, _ := startWarden(t, dataDir, append([]string{"--events-embedded-listen", "127.0.0.1:0", "--events-replica-id", "r1"}, extra...)...)
	m := natsURLLine.FindStringSubmatch(firstLog.String())
	if m == nil {
		t.Fatalf("no NATS URL in the log:\n%s", firstLog)
	}
	urls := []string{first}
	for i := 2; i <= n; i++ {
		url, _, _ := startWarden(t, t.TempDir(), append([]string{"--events-nats-url", m[1], "--events-nkey-seed-file", replicaSeed(dataDir),
			"--events-replica-id", fmt.Sprint("r", i), "--data-dir", dataDir}, extra...)...)
		urls = append(urls, url)
	}
	for _, u := range urls {
		waitReady(t, u)
	}
	return urls
}
