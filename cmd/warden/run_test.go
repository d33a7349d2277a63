package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/web"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine to write while
// the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a getenv over a fixed map, so tests never see the machine's WARDEN_*.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var addrLine = regexp.MustCompile(`msg="warden serving" addr=(\S+)`)

// startWarden runs "warden serve" through run, as main would, and returns
// its base URL and a function that stops it (SIGTERM) and returns run's error.
func startWarden(t testing.TB, dataDir string, extraArgs ...string) (baseURL string, stderr *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = &syncBuffer{}
	done := make(chan error, 1)
	args := append([]string{"warden", "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir}, extraArgs...)
	go func() { done <- run(ctx, args, env(nil), strings.NewReader(""), io.Discard, stderr) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := addrLine.FindStringSubmatch(stderr.String()); m != nil {
			baseURL = "http://" + m[1]
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("warden serve exited early: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("warden serve did not start:\n%s", stderr.String())
		}
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return baseURL, stderr, stop
}

// mint runs "warden token" through run and returns the token it prints.
func mint(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	all := append([]string{"warden", "token", "--data-dir", dataDir}, args...)
	if err := run(context.Background(), all, env(nil), nil, &stdout, &stderr); err != nil {
		t.Fatalf("warden token %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

type decisionResult struct {
	DecisionID     string   `json:"decision_id"`
	Allow          bool     `json:"allow"`
	Reason         string   `json:"reason"`
	Reasons        []string `json:"reasons"`
	Subject        string   `json:"subject"`
	PolicyRevision string   `json:"policy_revision"`
	Refresh        bool     `json:"refresh"`
}

func askDecision(t *testing.T, baseURL, token, action string) decisionResult {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"token": token, "action": action, "resource": map[string]any{"type": "order", "id": "42"}})
	resp, err := http.Post(baseURL+"/v1/decision", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /v1/decision: %d %s", resp.StatusCode, b)
	}
	var d decisionResult
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestWalkthrough follows the README: development mode, a manager and a
// staff token, orders:approve for both.
func TestWalkthrough(t *testing.T) {
	dataDir := t.TempDir()
	baseURL, stderr, stop := startWarden(t, dataDir)

	banner := stderr.String()
	for _, want := range []string{"DEVELOPMENT MODE", "token --data-dir " + dataDir + " --sub alice --roles manager", "/v1/decision", "--sub admin --roles warden-admin --ttl 15m"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	info, err := os.Stat(filepath.Join(dataDir, devKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("development key mode = %v, want 0600", perm)
	}

	manager := mint(t, dataDir, "--sub", "alice", "--roles", "manager")
	staff := mint(t, dataDir, "--sub", "bob", "--roles", "staff")

	got := askDecision(t, baseURL, manager, "orders:approve")
	if !got.Allow || got.Reason != "allowed" || got.Subject != "alice" || got.DecisionID == "" || got.PolicyRevision == "" {
		t.Errorf("manager orders:approve = %+v, want allowed for alice with id and revision", got)
	}
	got = askDecision(t, baseURL, staff, "orders:approve")
	if got.Allow || got.Reason != "policy_denied" || got.Subject != "bob" {
		t.Errorf("staff orders:approve = %+v, want policy_denied for bob", got)
	}
	got = askDecision(t, baseURL, staff, "orders:read")
	if !got.Allow {
		t.Errorf("staff orders:read = %+v, want allowed", got)
	}
	got = askDecision(t, baseURL, manager[:len(manager)-4]+"AAAA", "orders:approve")
	if got.Allow || got.Reason != "token_bad_signature" {
		t.Errorf("tampered token = %+v, want token_bad_signature", got)
	}

	if err := stop(); err != nil {
		t.Fatalf("run returned %v after SIGTERM, want nil", err)
	}
}

// TestDevKeyKeptAcrossRestarts checks that the development key generated on
// first start is reused: a token minted before a restart still verifies.
func TestDevKeyKeptAcrossRestarts(t *testing.T) {
	dataDir := t.TempDir()
	token := mint(t, dataDir, "--sub", "alice", "--roles", "manager")
	for i := range 2 {
		baseURL, _, stop := startWarden(t, dataDir)
		if got := askDecision(t, baseURL, token, "orders:approve"); !got.Allow {
			t.Errorf("start %d: decision = %+v, want allowed", i, got)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTokenCommand(t *testing.T) {
	dataDir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no sub", []string{"--roles", "manager"}, "--sub is required"},
		{"ttl above max lifetime", []string{"--sub", "a", "--ttl", "2h"}, "tokens.max_lifetime"},
		{"bad claim", []string{"--sub", "a", "--claim", "novalue"}, "want key=value"},
		{"unknown flag", []string{"--sub", "a", "--nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), append([]string{"warden", "token", "--data-dir", dataDir}, tt.args...), env(nil), nil, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	err := run(context.Background(), []string{"warden", "frobnicate"}, env(nil), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Errorf("err = %v", err)
	}
}

func TestVersionAndHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"warden", "version"}, env(nil), nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "warden ") {
		t.Errorf("version printed %q", out.String())
	}
	var help bytes.Buffer
	if err := run(context.Background(), []string{"warden", "serve", "--help"}, env(nil), nil, io.Discard, &help); err != nil {
		t.Fatalf("serve --help: %v", err)
	}
	// Every key of the contract (DESIGN §6) and Warden's own, each with
	// its flag and environment variable: a field without a help tag would
	// be a key of the file only.
	for _, key := range []string{
		"listen", "data_dir", "tokens.leeway", "tokens.max_lifetime", "tokens.max_size",
		"policies.source", "policies.dir", "policies.bucket", "policies.poll_interval", "policies.allow_network_builtins",
		"policies.entrypoint", "policies.eval_timeout", "policies.decision_cache",
		"events.nats_url", "events.credentials_file", "events.nkey_seed_file", "events.tls_ca_file", "events.tls_cert_file",
		"events.tls_key_file", "events.embedded_listen", "events.embedded_tls_cert_file", "events.embedded_tls_key_file",
		"events.embedded_allow_plaintext", "events.stream", "events.stream_replicas", "events.grace", "events.on_disconnect",
		"events.fresh_window", "events.replica_id", "events.min_seq_wait", "events.embedded_sync", "decision_log.output", "decision_log.buffer", "decision_log.max_size_mb", "decision_log.max_files", "decision_api.client_tokens_file", "decision_api.rate_limit", "decision_api.rate_burst", "revocation.clients_file", "log.level", "dev.allow_remote", "tracing.otlp_endpoint",
	} {
		for _, want := range []string{"--" + flagName(key) + " ", envName(key), "file key " + key + ","} {
			if !strings.Contains(help.String(), want) {
				t.Errorf("serve --help does not document %q", want)
			}
		}
	}
}

// TestTokenClaims decodes what warden token prints: repeatable flags count
// once per use, and --claim keeps JSON types.
func TestTokenClaims(t *testing.T) {
	dataDir := t.TempDir()
	token := mint(t, dataDir, "--sub", "alice", "--roles", "manager", "--roles", "staff,auditor", "--claim", "pv=7", "--claim", "team=blue", "--ttl", "5m")
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{"manager", "staff", "auditor"}, got["roles"]); diff != "" {
		t.Errorf("roles (-want +got):\n%s", diff)
	}
	if got["pv"] != float64(7) || got["team"] != "blue" || got["sub"] != "alice" || got["iss"] != "warden-dev" || got["aud"] != "warden" {
		t.Errorf("claims = %v", got)
	}
	if exp, iat := got["exp"].(float64), got["iat"].(float64); exp-iat != 300 {
		t.Errorf("exp - iat = %v, want 300 (--ttl 5m)", exp-iat)
	}
}

// TestBusyPort: warden serve on an address already in use fails at once,
// saying which address and which setting to change, before it starts NATS
// or compiles anything.
func TestBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	start := time.Now()
	err = run(context.Background(), []string{"warden", "serve", "--listen", busy.Addr().String(), "--data-dir", dataDir},
		env(nil), strings.NewReader(""), io.Discard, io.Discard)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()+" is in use") || !strings.Contains(err.Error(), "--listen") {
		t.Errorf("serve on a busy port = %v, want it named as in use, with the setting to change", err)
	}
	if took > 2*time.Second {
		t.Errorf("took %v to fail", took)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "nats")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the embedded NATS server was started before the port was checked (%v)", err)
	}
}

// TestQuietStartup: the embedded NATS server's notices (its banner) stay out
// of the default log and appear with log.level debug.
func TestQuietStartup(t *testing.T) {
	const banner = "Starting nats-server"
	_, quiet, stop := startWarden(t, t.TempDir())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(quiet.String(), banner) {
		t.Errorf("the default log shows the NATS banner:\n%s", quiet.String())
	}
	if n := strings.Count(quiet.String(), "\n"); n > 40 {
		t.Errorf("the default startup log has %d lines:\n%s", n, quiet.String())
	}
	_, verbose, stop := startWarden(t, t.TempDir(), "--log-level", "debug")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(verbose.String(), banner) {
		t.Errorf("log.level debug does not show the NATS banner:\n%s", verbose.String())
	}
}

// TestDevModeRefusesForeignHosts: warden serve in development mode answers
// only requests for this machine's names (DNS rebinding).
func TestDevModeRefusesForeignHosts(t *testing.T) {
	base, _, _ := startWarden(t, t.TempDir())
	for host, want := range map[string]int{"rebind.evil.example": 403, "localhost": 200} {
		req, _ := http.NewRequest("POST", base+"/v1/dev/admin-token", strings.NewReader("{}"))
		req.Host = host + ":" + strings.Split(base, ":")[2]
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %s, want %d", req.Host, resp.Status, want)
		}
	}
}

// TestDevModeStaysLocal: development mode refuses a listen address beyond
// loopback unless dev.allow_remote says so, and its banner prints a command
// to mint an admin token, not a token.
func TestDevModeStaysLocal(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		err := run(context.Background(), []string{"warden", "serve", "--listen", addr, "--data-dir", t.TempDir()},
			env(nil), strings.NewReader(""), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "loopback only") || !strings.Contains(err.Error(), "dev.allow_remote") {
			t.Errorf("development mode on %s = %v, want refused", addr, err)
		}
	}
	_, log, _ := startWarden(t, t.TempDir())
	if !strings.Contains(log.String(), "--roles warden-admin --ttl 15m") {
		t.Errorf("the banner does not say how to mint an admin token:\n%s", log)
	}
	if strings.Contains(log.String(), "eyJ") {
		t.Errorf("the banner prints a token:\n%s", log)
	}
}

// TestDecisionClientsFile: warden serve with decision_api.client_tokens_file
// answers decisions only to the callers it lists; a bad file stops it at
// start, naming the line.
func TestDecisionClientsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clients")
	if err := os.WriteFile(file, []byte("# callers\ngateway 0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	base, _, _ := startWarden(t, dataDir, "--decision-api-client-tokens-file", file)
	waitReady(t, base)
	body := `{"token":"` + mint(t, dataDir, "--sub", "alice", "--roles", "staff") + `","action":"orders:read"}`
	for token, want := range map[string]int{"": 401, "0123456789abcdef0123456789abcdeX": 401, "0123456789abcdef0123456789abcdef": 200} {
		req, _ := http.NewRequest("POST", base+"/v1/decision", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Warden-Client-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("client token %q: %s, want %d", token, resp.Status, want)
		}
	}

	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("gateway 0123\n"), 0o600)
	err := run(context.Background(), []string{"warden", "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--decision-api-client-tokens-file", short},
		env(nil), strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), short+":1") {
		t.Errorf("a 4-character token = %v, want refused naming the line", err)
	}
}

// TestHealth: warden health, the container health check, succeeds against
// a ready Warden and fails, saying why, when nothing answers.
func TestHealth(t *testing.T) {
	base, _, _ := startWarden(t, t.TempDir())
	waitReady(t, base)
	var out bytes.Buffer
	listen := strings.TrimPrefix(base, "http://")
	if err := run(context.Background(), []string{"warden", "health", "--listen", listen}, env(nil), nil, &out, io.Discard); err != nil || out.String() != "ready\n" {
		t.Errorf("health of a ready Warden = %v, %q", err, out.String())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if err := run(context.Background(), []string{"warden", "health", "--listen", closed}, env(nil), nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "/readyz") {
		t.Errorf("health with nothing listening = %v, want an error naming /readyz", err)
	}
}

// TestDevIssuerSharedDataDir: replicas sharing one data directory start
// together; none may read another's half-written public key.
func TestDevIssuerSharedDataDir(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := loadDevIssuer(dir); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				d, _, err := loadDevIssuer(dir)
				if err == nil {
					_, err = claims.NewVerifier(context.Background(), claims.Config{Issuers: []claims.IssuerConfig{d.issuerConfig()}})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestTracingExport: with tracing.otlp_endpoint, warden serve exports its
// spans over OTLP/HTTP, here to a receiver that decodes them as the
// protocol's own types. Two replicas share one stream: the decision's span
// carries its id, and an event published on r1 under the caller's
// traceparent shows in that one trace as the publish on r1 and the apply
// on r1 and on r2.
func TestTracingExport(t *testing.T) {
	received := make(chan *collectortrace.ExportTraceServiceRequest, 64)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Error(err)
				return
			}
			body = zr
		}
		raw, _ := io.ReadAll(body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(raw, &req) != nil {
			t.Errorf("the collector got %s %d bytes it cannot read", r.URL.Path, len(raw))
		}
		received <- &req
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(nil)
	}))
	defer collector.Close()

	dataDir := t.TempDir()
	r1, r1Log, stop1 := startWarden(t, dataDir, "--tracing-otlp-endpoint", collector.URL,
		"--events-embedded-listen", "127.0.0.1:0", "--events-replica-id", "r1")
	waitReady(t, r1)
	natsURL := natsURLLine.FindStringSubmatch(r1Log.String())[1]
	r2, _, stop2 := startWarden(t, t.TempDir(), "--tracing-otlp-endpoint", collector.URL, "--data-dir", dataDir,
		"--events-nats-url", natsURL, "--events-nkey-seed-file", replicaSeed(dataDir), "--events-replica-id", "r2")
	waitReady(t, r2)

	d := askDecision(t, r1, mint(t, dataDir, "--sub", "alice", "--roles", "staff"), "orders:read")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("POST", r1+"/v1/events?wait=2s", strings.NewReader(`{"type":"roles_changed","subject":"bob","reason":"demoted"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+mint(t, dataDir, "--sub", "admin", "--roles", "warden-admin"))
	req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pub web.PublishResponse
	json.NewDecoder(resp.Body).Decode(&pub)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || pub.Enforced == nil || pub.Enforced.Applied != 2 {
		t.Fatalf("publish: %d %+v, want enforced on both replicas", resp.StatusCode, pub)
	}
	for _, stop := range []func() error{stop1, stop2} { // shutdown flushes the batch
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}

	// Every span: which replica exported it, its name and trace, and the
	// attributes asked about below.
	type span struct{ replica, name, trace, decisionID, eventID string }
	var spans []span
	for len(received) > 0 {
		for _, rs := range (<-received).ResourceSpans {
			replica := ""
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.instance.id" {
					replica = kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					sp := span{replica: replica, name: s.Name, trace: hex.EncodeToString(s.TraceId)}
					for _, kv := range s.Attributes {
						switch kv.Key {
						case "warden.decision_id":
							sp.decisionID = kv.Value.GetStringValue()
						case "warden.event_id":
							sp.eventID = kv.Value.GetStringValue()
						}
					}
					spans = append(spans, sp)
				}
			}
		}
	}
	want := []span{
		{replica: "r1", name: "warden.decision", decisionID: d.DecisionID},
		{replica: "r1", name: "POST /v1/events", trace: traceID},
		{replica: "r1", name: events.SpanPublish, trace: traceID, eventID: pub.ID},
		{replica: "r1", name: events.SpanApply, trace: traceID, eventID: pub.ID},
		{replica: "r2", name: events.SpanApply, trace: traceID, eventID: pub.ID},
	}
	for _, w := range want {
		if !slices.ContainsFunc(spans, func(s span) bool {
			return s.replica == w.replica && s.name == w.name && (w.trace == "" || s.trace == w.trace) &&
				s.decisionID == w.decisionID && s.eventID == w.eventID
		}) {
			t.Errorf("no span %+v reached the collector; it got %+v", w, spans)
		}
	}
}
