package web

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/policies"
	"github.com/wardenauthz/warden/policyset"
	"github.com/wardenauthz/warden/web/decisionlog"
)

const (
	testIssuer   = "https://idp.test/"
	testAudience = "orders-api"
)

// fixture is a real verifier and engine behind the real router, with a
// decision log that writes nowhere but keeps its history and serves streams.
type fixture struct {
	handler  http.Handler
	key      *ecdsa.PrivateKey
	pemPath  string // the issuer's public key
	logs     *bytes.Buffer
	verifier *claims.Verifier
	engine   *decision.Engine
	log      *decisionlog.Log
	logger   *slog.Logger     // the server's, writing to logs
	nats     *events.Embedded // the events fixture's NATS server
}

func newFixture(t testing.TB) *fixture { return newFixtureWith(t, decision.Options{}) }

// newFixtureWith builds the fixture with the given engine options.
func newFixtureWith(t testing.TB, opts decision.Options) *fixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemPath := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(pemPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := claims.NewVerifier(ctx, claims.Config{Issuers: []claims.IssuerConfig{{
		Issuer:     testIssuer,
		Audiences:  []string{testAudience},
		PublicKeys: []string{pemPath},
		Algorithms: []string{"ES256"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	e, err := decision.NewEngine(ctx, policies.FS(), opts)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{key: key, pemPath: pemPath, logs: &bytes.Buffer{}, verifier: v, engine: e}
	f.serve(t, nil, decisionlog.Options{}, Options{})
	return f
}

// serve puts a new server with a new decision log (writing to out, if not
// nil) behind f.handler. The log is closed when the test ends.
func (f *fixture) serve(t testing.TB, out io.Writer, logOpts decisionlog.Options, opts Options) {
	t.Helper()
	if logOpts.Replica == "" {
		logOpts.Replica = "test"
	}
	logOpts.Logger = slog.New(slog.DiscardHandler)
	f.log = decisionlog.New(out, logOpts)
	t.Cleanup(func() { f.log.Close() })
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 4096
	}
	if opts.MaxChecks == 0 {
		opts.MaxChecks = 3
	}
	opts.DecisionLog = f.log
	f.logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.handler = NewServer(f.logger, f.verifier, f.engine, opts)
}

func (f *fixture) token(t testing.TB, sub string, roles ...string) string {
	t.Helper()
	now := time.Now()
	return f.sign(t, jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": sub, "roles": roles,
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
}

// sign signs any claims with the test issuer's key.
func (f *fixture) sign(t testing.TB, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(f.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// request sends a request through the router, with header pairs, and
// returns the recorder.
func (f *fixture) request(method, path, contentType, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

// do sends a request through the router and returns status and decoded body.
func (f *fixture) do(t testing.TB, method, path, contentType, body string, header ...string) (int, map[string]any) {
	t.Helper()
	rec := f.request(method, path, contentType, body, header...)
	var out map[string]any
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, rec.Body)
		}
	}
	return rec.Code, out
}

func TestDecision(t *testing.T) {
	f := newFixture(t)
	manager := f.token(t, "alice", "manager")
	staff := f.token(t, "bob", "staff")

	tests := []struct {
		name        string
		body        string
		header      []string
		wantAllow   bool
		wantReason  string
		wantSubject string
	}{
		{"manager approves", `{"token":"` + manager + `","action":"orders:approve","resource":{"type":"order","id":"42"}}`, nil, true, "allowed", "alice"},
		{"staff may not approve", `{"token":"` + staff + `","action":"orders:approve","resource":{"type":"order","id":"42"}}`, nil, false, "policy_denied", "bob"},
		{"owner reads own order", `{"token":"` + f.token(t, "carol") + `","action":"orders:read","resource":{"type":"order","id":"7","owner":"carol"}}`, nil, true, "allowed", "carol"},
		{"token from Authorization header", `{"action":"orders:approve"}`, []string{"Authorization", "Bearer " + manager}, true, "allowed", "alice"},
		{"lower-case bearer scheme", `{"action":"orders:approve"}`, []string{"Authorization", "bearer " + manager}, true, "allowed", "alice"},
		{"no token", `{"action":"orders:read"}`, nil, false, "token_missing", ""},
		{"basic auth is not a token", `{"action":"orders:read"}`, []string{"Authorization", "Basic YTpi"}, false, "token_missing", ""},
		{"garbage token", `{"token":"not.a.jwt","action":"orders:read"}`, nil, false, "token_malformed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := f.do(t, "POST", "/v1/decision", "application/json", tt.body, tt.header...)
			if status != 200 {
				t.Fatalf("status = %d, body %v", status, got)
			}
			if got["allow"] != tt.wantAllow || got["reason"] != tt.wantReason || got["subject"] != tt.wantSubject {
				t.Errorf("got allow=%v reason=%v subject=%v, want %v %v %v", got["allow"], got["reason"], got["subject"], tt.wantAllow, tt.wantReason, tt.wantSubject)
			}
			for _, key := range []string{"decision_id", "policy_revision"} {
				if s, _ := got[key].(string); s == "" {
					t.Errorf("%s is empty: %v", key, got)
				}
			}
			if _, ok := got["reasons"].([]any); !ok {
				t.Errorf("reasons = %#v, want an array", got["reasons"])
			}
			if got["refresh"] != false {
				t.Errorf("refresh = %v, want false", got["refresh"])
			}
		})
	}
}

func TestDecisionIDsAreUnique(t *testing.T) {
	f := newFixture(t)
	body := `{"token":"` + f.token(t, "alice", "manager") + `","action":"orders:read"}`
	seen := map[any]bool{}
	for range 50 {
		_, got := f.do(t, "POST", "/v1/decision", "application/json", body)
		if seen[got["decision_id"]] {
			t.Fatalf("decision_id %v repeated", got["decision_id"])
		}
		seen[got["decision_id"]] = true
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{"malformed JSON", "POST", "/v1/decision", "application/json", `{"action":`, 400, "invalid_request", "truncated"},
		{"syntax error", "POST", "/v1/decision", "application/json", `{"action" "x"}`, 400, "invalid_request", "malformed JSON at byte"},
		{"empty body", "POST", "/v1/decision", "application/json", ``, 400, "invalid_request", "empty"},
		{"array body", "POST", "/v1/decision", "application/json", `[1,2]`, 400, "invalid_request", "JSON object"},
		{"missing action", "POST", "/v1/decision", "application/json", `{"token":"x"}`, 400, "invalid_request", "action is required"},
		{"action of wrong type", "POST", "/v1/decision", "application/json", `{"action":7}`, 400, "invalid_request", `"action" must be a string`},
		{"resource not an object", "POST", "/v1/decision", "application/json", `{"action":"a","resource":"order"}`, 400, "invalid_request", `"resource" must be an object`},
		{"unknown field", "POST", "/v1/decision", "application/json", `{"action":"a","acton":"b"}`, 400, "invalid_request", `unknown field "acton"`},
		{"trailing data", "POST", "/v1/decision", "application/json", `{"action":"a"} {}`, 400, "invalid_request", "data after the JSON value"},
		{"body over limit", "POST", "/v1/decision", "application/json", `{"action":"` + strings.Repeat("a", 5000) + `"}`, 413, "body_too_large", "4096 bytes"},
		{"wrong content type", "POST", "/v1/decision", "text/plain", `{"action":"a"}`, 415, "unsupported_media_type", "application/json"},
		{"no content type", "POST", "/v1/decision", "", `{"action":"a"}`, 415, "unsupported_media_type", "application/json"},
		{"no checks", "POST", "/v1/decisions", "application/json", `{"token":"x","checks":[]}`, 400, "invalid_request", "1 to 3 checks"},
		{"too many checks", "POST", "/v1/decisions", "application/json", `{"checks":[{"action":"a"},{"action":"a"},{"action":"a"},{"action":"a"}]}`, 400, "invalid_request", "not 4"},
		{"check without action", "POST", "/v1/decisions", "application/json", `{"checks":[{"action":"a"},{}]}`, 400, "invalid_request", "checks[1].action"},
		{"unknown route", "GET", "/v1/nothing", "", ``, 404, "not_found", "/v1/nothing"},
		{"wrong method", "GET", "/v1/decision", "", ``, 405, "method_not_allowed", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := f.do(t, tt.method, tt.path, tt.contentType, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d (%v)", status, tt.wantStatus, got)
			}
			e, _ := got["error"].(map[string]any)
			if e["code"] != tt.wantCode {
				t.Errorf("error code = %v, want %v (%v)", e["code"], tt.wantCode, got)
			}
			if msg, _ := e["message"].(string); !strings.Contains(msg, tt.wantMessage) {
				t.Errorf("message %q does not contain %q", msg, tt.wantMessage)
			}
		})
	}
}

func TestDecisions(t *testing.T) {
	f := newFixture(t)
	body := `{"token":"` + f.token(t, "bob", "staff") + `","checks":[
		{"action":"orders:read"},
		{"action":"orders:approve"},
		{"action":"orders:read","resource":{"owner":"bob"}}]}`
	status, got := f.do(t, "POST", "/v1/decisions", "application/json", body)
	if status != 200 {
		t.Fatalf("status %d: %v", status, got)
	}
	var results []string
	for _, r := range got["results"].([]any) {
		m := r.(map[string]any)
		results = append(results, m["reason"].(string))
	}
	if diff := cmp.Diff([]string{"allowed", "policy_denied", "allowed"}, results); diff != "" {
		t.Errorf("reasons in order (-want +got):\n%s", diff)
	}
	if got["subject"] != "bob" {
		t.Errorf("subject = %v", got["subject"])
	}

	// A bad token is one verification failure, reported on every check.
	status, got = f.do(t, "POST", "/v1/decisions", "application/json", `{"token":"x.y.z","checks":[{"action":"a"},{"action":"b"}]}`)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	for _, r := range got["results"].([]any) {
		if m := r.(map[string]any); m["allow"] != false || m["reason"] != "token_malformed" {
			t.Errorf("result %v, want token_malformed", m)
		}
	}
}

func TestHealthAndMetrics(t *testing.T) {
	f := newFixture(t)
	if status, got := f.do(t, "GET", "/healthz", "", ""); status != 200 || got["status"] != "ok" {
		t.Errorf("/healthz = %d %v", status, got)
	}
	if status, got := f.do(t, "GET", "/readyz", "", ""); status != 200 || got["status"] != "ready" {
		t.Errorf("/readyz = %d %v", status, got)
	}
	tok := f.token(t, "alice", "manager")
	for range 2 { // the second is a cache hit
		f.do(t, "POST", "/v1/decision", "application/json", `{"token":"`+tok+`","action":"orders:approve"}`)
	}
	f.do(t, "POST", "/v1/decision", "application/json", `{"action":"orders:approve"}`)

	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`warden_decisions_total{reason="allowed"} 2`,
		`warden_decisions_total{reason="token_missing"} 1`,
		`warden_decision_duration_seconds_count 3`,
		`warden_token_cache_hits_total 1`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// switchReadiness is a part whose readiness the test sets.
type switchReadiness struct{ err atomic.Pointer[error] }

func (r *switchReadiness) Ready() error {
	if p := r.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *switchReadiness) set(err error) { r.err.Store(&err) }

// TestNotReady: while a part is not ready, /readyz and both decision routes
// answer 503 not_ready with Retry-After, naming the part but none of the
// detail (a refused policy set's test output can quote secrets from its
// data); once it is ready, decisions are answered.
func TestNotReady(t *testing.T) {
	f := newFixture(t)
	var part switchReadiness
	f.serve(t, nil, decisionlog.Options{}, Options{Readiness: []Readiness{&part}})
	token := f.token(t, "alice", "manager")
	const secret = "print: db-password=hunter2"
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: %w: replaying (%s)", events.ErrNotReady, events.ErrNoState, secret), "event stream"},
		{fmt.Errorf("%w: refused (%s)", policyset.ErrNotReady, secret), "policy set"},
		{errors.New(secret), "not ready"},
	} {
		part.set(tt.err)
		for _, req := range [][3]string{
			{"GET", "/readyz", ""},
			{"POST", "/v1/decision", `{"token":"` + token + `","action":"orders:read"}`},
			{"POST", "/v1/decisions", `{"token":"` + token + `","checks":[{"action":"orders:read"}]}`},
		} {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(req[0], req[1], strings.NewReader(req[2]))
			r.Header.Set("Content-Type", "application/json")
			f.handler.ServeHTTP(rec, r)
			body := rec.Body.String()
			if rec.Code != 503 || !strings.Contains(body, `"code":"not_ready"`) || !strings.Contains(body, tt.want) {
				t.Errorf("%s %s while %v = %d %s, want 503 not_ready naming the %s", req[0], req[1], tt.err, rec.Code, body, tt.want)
			}
			if strings.Contains(body, "hunter2") {
				t.Errorf("%s %s leaks the detail: %s", req[0], req[1], body)
			}
			if req[0] == "POST" && rec.Header().Get("Retry-After") == "" {
				t.Errorf("%s %s: no Retry-After", req[0], req[1])
			}
		}
	}
	if n := len(f.log.Recent(decisionlog.Filter{}, 10)); n != 0 {
		t.Errorf("%d decisions logged while not ready", n)
	}

	// A replica that has replayed the stream and lost it since is not
	// ready for a load balancer, but decides (events.on_disconnect).
	part.set(fmt.Errorf("%w: NATS connection closed", events.ErrNotReady))
	if status, _ := f.do(t, "GET", "/readyz", "", ""); status != 503 {
		t.Errorf("/readyz while cut off = %d, want 503", status)
	}
	if status, got := f.do(t, "POST", "/v1/decision", "application/json", `{"token":"`+token+`","action":"orders:read"}`); status != 200 || got["allow"] != true {
		t.Errorf("decision while cut off after the replay: %d %v", status, got)
	}

	part.set(nil)
	if status, got := f.do(t, "POST", "/v1/decision", "application/json", `{"token":"`+token+`","action":"orders:read"}`); status != 200 || got["allow"] != true {
		t.Errorf("once ready: %d %v", status, got)
	}
	if status, got := f.do(t, "GET", "/readyz", "", ""); status != 200 || got["status"] != "ready" {
		t.Errorf("/readyz once ready = %d %v", status, got)
	}
}

func writeSecret(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, bytes.Repeat([]byte("s"), 32), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTokensNeverLogged sends tokens good and bad with debug logging on and
// checks that no token reaches the log.
func TestTokensNeverLogged(t *testing.T) {
	f := newFixture(t)
	good := f.token(t, "alice", "manager")
	bad := good[:len(good)-6] + "AAAAAA"
	f.do(t, "POST", "/v1/decision", "application/json", `{"token":"`+good+`","action":"orders:approve"}`)
	f.do(t, "POST", "/v1/decision", "application/json", `{"token":"`+bad+`","action":"orders:approve"}`)
	f.do(t, "POST", "/v1/decision", "application/json", `{"action":"orders:approve"}`, "Authorization", "Bearer "+good)
	if f.logs.Len() == 0 {
		t.Fatal("nothing was logged; the test would prove nothing")
	}
	for _, part := range strings.Split(good, ".") {
		if strings.Contains(f.logs.String(), part) {
			t.Fatalf("a token segment was logged:\n%s", f.logs)
		}
	}
}

// TestDecisionCallers: with client tokens configured, a decision request
// without one of them is refused before anything is verified or logged; a
// caller over the rate limit gets 429 with Retry-After, and other callers
// are not held back by it.
func TestDecisionCallers(t *testing.T) {
	f := newFixture(t)
	const gatewayToken = "gw-0123456789abcdef0123456789abcdef"
	f.serve(t, nil, decisionlog.Options{}, Options{
		DecisionClients: map[string]string{gatewayToken: "gateway", "svc-0123456789abcdef0123456789abcdef": "orders"},
		DecisionRate:    1, DecisionBurst: 3,
	})
	body := `{"token":"` + f.token(t, "alice", "manager") + `","action":"orders:read"}`
	for name, header := range map[string][]string{
		"no client token":    nil,
		"a wrong token":      {ClientTokenHeader, "gw-0123456789abcdef0123456789abcdeX"},
		"the user's token":   {"Authorization", "Bearer " + gatewayToken},
		"a token in another": {"X-Warden-Client-Token", gatewayToken},
	} {
		if status, got := f.do(t, "POST", "/v1/decision", "application/json", body, header...); status != 401 || got["error"].(map[string]any)["code"] != "unauthorized" {
			t.Errorf("%s: %d %v, want 401", name, status, got)
		}
	}
	for i := range 3 {
		if status, got := f.do(t, "POST", "/v1/decision", "application/json", body, ClientTokenHeader, gatewayToken); status != 200 || got["allow"] != true {
			t.Fatalf("request %d within the burst: %d %v", i, status, got)
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/decisions", strings.NewReader(`{"checks":[{"action":"a"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(ClientTokenHeader, gatewayToken)
	f.handler.ServeHTTP(rec, req)
	if rec.Code != 429 || !strings.Contains(rec.Body.String(), `"rate_limited"`) || rec.Header().Get("Retry-After") == "" {
		t.Errorf("over the limit: %d %s %v, want 429 rate_limited with Retry-After", rec.Code, rec.Body, rec.Header())
	}
	if status, _ := f.do(t, "POST", "/v1/decision", "application/json", body, ClientTokenHeader, "svc-0123456789abcdef0123456789abcdef"); status != 200 {
		t.Errorf("another client while the gateway is limited: %d", status)
	}
	f.log.Close() // writes what is queued
	if n := len(f.log.Recent(decisionlog.Filter{}, 100)); n != 4 {
		t.Errorf("%d decisions logged, want the 4 answered", n)
	}
}
