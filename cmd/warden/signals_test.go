package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ssfTransmitter is an identity provider's SSF transmitter: it serves its
// configuration metadata and JWKS, and signs SETs with go-jose, a JOSE
// library independent of Warden's.
type ssfTransmitter struct {
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	serial atomic.Int64
}

const (
	ssfAudience = "https://warden.example.com/ssf"
	ssfAuth     = "Bearer s3cr3t-push-credential-0123456789"
)

func newSSFTransmitter(t testing.TB) *ssfTransmitter {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tr := &ssfTransmitter{key: key}
	mux := http.NewServeMux()
	tr.srv = httptest.NewServer(mux)
	t.Cleanup(tr.srv.Close)
	mux.HandleFunc("GET /.well-known/ssf-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"spec_version": "1_0", "issuer": tr.srv.URL, "jwks_uri": tr.srv.URL + "/jwks",
			"delivery_methods_supported": []string{"urn:ietf:rfc:8935", "urn:ietf:rfc:8936"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	return tr
}

// config writes a Warden configuration naming the transmitter as "idp",
// with extra lines appended to its entry, and returns its path.
func (tr *ssfTransmitter) config(t testing.TB, extra string) string {
	t.Helper()
	dir := t.TempDir()
	auth := filepath.Join(dir, "idp.auth")
	if err := os.WriteFile(auth, []byte(ssfAuth+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "warden.yaml")
	yaml := fmt.Sprintf(`signals:
  transmitters:
    - name: idp
      issuer: %s
      audiences: [%s]
      config_url: %s/.well-known/ssf-configuration
      authorization_file: %s
      token_issuers: [warden-dev]
      subjects: {email: sub, opaque: sub}
%s`, tr.srv.URL, ssfAudience, tr.srv.URL, auth, extra)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// set signs a SET whose events claim holds one event of type typ with
// payload, about subject; edit may change the claims and the header
// before signing.
func (tr *ssfTransmitter) set(t testing.TB, typ string, payload, subject map[string]any, edit func(claims map[string]any, opts *jose.SignerOptions)) string {
	t.Helper()
	claims := map[string]any{
		"iss": tr.srv.URL, "aud": ssfAudience, "iat": time.Now().Unix(),
		"jti": fmt.Sprintf("set-%d-%d", time.Now().UnixNano(), tr.serial.Add(1)), "txn": "txn-1",
		"sub_id": subject, "events": map[string]any{typ: payload},
	}
	opts := (&jose.SignerOptions{}).WithType("secevent+jwt").WithHeader("kid", "k1")
	key := tr.key
	if edit != nil {
		edit(claims, opts)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(claims)
	jws, err := signer.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return compact
}

// pushSET posts body to a replica's push endpoint and returns the status
// and the RFC 8935 err code (empty on 202).
func pushSET(t testing.TB, baseURL, auth, contentType, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", baseURL+"/v1/signals/idp", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Err         string `json:"err"`
		Description string `json:"description"`
	}
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		if err := json.Unmarshal(data, &e); err != nil || e.Description == "" {
			t.Errorf("push answered %d %q, not an RFC 8935 error", resp.StatusCode, data)
		}
	}
	return resp.StatusCode, e.Err
}

// awaitReason waits until every replica gives token the reason.
func awaitReason(t *testing.T, replicas []string, token, reason string) {
	t.Helper()
	for _, r := range replicas {
		waitForWithin(t, 5*time.Second, func() (string, bool) {
			got := askDecision(t, r, token, "orders:approve").Reason
			return r + ": " + got, got == reason
		})
	}
}

func issSub(sub string) map[string]any {
	return map[string]any{"format": "iss_sub", "iss": "warden-dev", "sub": sub}
}

// jtiOf reads the jti of a compact token (test-minted, so trusted).
func jtiOf(t *testing.T, token string) string {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ JTI string }
	json.Unmarshal(payload, &c)
	return c.JTI
}

// TestSignalsPushEnforcedOnEveryReplica pushes each CAEP and RISC event
// Warden maps, about each subject format it resolves, to one of three
// replicas and checks that all three deny the user's older token with the
// event's reason code.
func TestSignalsPushEnforcedOnEveryReplica(t *testing.T) {
	tr := newSSFTransmitter(t)
	dataDir := t.TempDir()
	replicas := startReplicas(t, dataDir, 3, "--config", tr.config(t, ""))
	later := func() map[string]any { return map[string]any{"event_timestamp": time.Now().Add(time.Second).Unix()} }

	tests := []struct {
		name, typ string
		subject   func(sub, token string) map[string]any
		want      string
	}{
		{"caep session-revoked", "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
			func(sub, _ string) map[string]any { return issSub(sub) }, "token_revoked"},
		{"caep token-claims-change", "https://schemas.openid.net/secevent/caep/event-type/token-claims-change",
			func(sub, _ string) map[string]any { return issSub(sub) }, "token_stale"},
		{"caep assurance-level-change by email", "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change",
			func(sub, _ string) map[string]any { return map[string]any{"format": "email", "email": sub} }, "token_stale"},
		{"caep credential-change by opaque id", "https://schemas.openid.net/secevent/caep/event-type/credential-change",
			func(sub, _ string) map[string]any { return map[string]any{"format": "opaque", "id": sub} }, "token_revoked"},
		{"risc account-disabled", "https://schemas.openid.net/secevent/risc/event-type/account-disabled",
			func(sub, _ string) map[string]any { return issSub(sub) }, "subject_disabled"},
		{"risc sessions-revoked in a complex subject", "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked",
			func(sub, _ string) map[string]any {
				return map[string]any{"format": "complex", "user": issSub(sub), "tenant": map[string]any{"format": "opaque", "id": "t1"}}
			}, "token_revoked"},
		{"caep session-revoked of one token (jwt_id)", "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
			func(sub, token string) map[string]any {
				return map[string]any{"format": "complex", "user": issSub(sub), "session": map[string]any{"format": "jwt_id", "iss": "warden-dev", "jti": jtiOf(t, token)}}
			}, "token_revoked"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := fmt.Sprintf("user%d@example.com", i)
			token := mint(t, dataDir, "--sub", sub, "--roles", "manager")
			awaitReason(t, replicas, token, "allowed")
			set := tr.set(t, tt.typ, later(), tt.subject(sub, token), nil)
			if status, code := pushSET(t, replicas[i%3], ssfAuth, "application/secevent+jwt", set); status != http.StatusAccepted {
				t.Fatalf("push: %d %s", status, code)
			}
			awaitReason(t, replicas, token, tt.want)
		})
	}

	t.Run("jwt_id revokes that token only", func(t *testing.T) {
		// Another token of user6 (the jwt_id case above), issued before
		// the change took effect, is still allowed: only the named token
		// was revoked, not every session.
		fresh := mint(t, dataDir, "--sub", "user6@example.com", "--roles", "manager")
		awaitReason(t, replicas, fresh, "allowed")
	})

	t.Run("listed and enforced on every replica", func(t *testing.T) {
		waitForWithin(t, 5*time.Second, func() (string, bool) {
			list := listSignals(t, replicas[2], dataDir)
			for _, s := range list {
				if s.Enforced == nil || s.Enforced.Applied != 3 || s.Enforced.Total != 3 || s.Events[0].Outcome != "mapped" || s.TXN != "txn-1" {
					return fmt.Sprintf("%+v", s), false
				}
			}
			return fmt.Sprint(len(list), " signals"), len(list) == len(tests)
		})
	})

	t.Run("risc account-enabled lifts account-disabled", func(t *testing.T) {
		token := mint(t, dataDir, "--sub", "carol", "--roles", "manager")
		disabled := tr.set(t, "https://schemas.openid.net/secevent/risc/event-type/account-disabled", map[string]any{"event_timestamp": time.Now().Add(time.Second).Unix()}, issSub("carol"), nil)
		enabled := tr.set(t, "https://schemas.openid.net/secevent/risc/event-type/account-enabled", map[string]any{"event_timestamp": time.Now().Add(2 * time.Second).Unix()}, issSub("carol"), nil)
		for _, set := range []string{disabled, enabled} {
			if status, code := pushSET(t, replicas[0], ssfAuth, "application/secevent+jwt", set); status != http.StatusAccepted {
				t.Fatalf("push: %d %s", status, code)
			}
		}
		// Both are applied once the admin API lists them; then every
		// replica allows carol again.
		waitForWithin(t, 5*time.Second, func() (int, bool) { n := len(listSignals(t, replicas[1], dataDir)); return n, n >= len(tests)+2 })
		awaitReason(t, replicas, token, "allowed")
	})
}

// signalView is an entry of GET /v1/signals.
type signalView struct {
	Transmitter string `json:"transmitter"`
	JTI         string `json:"jti"`
	TXN         string `json:"txn"`
	Duplicate   bool   `json:"duplicate"`
	Seq         uint64 `json:"seq"`
	Events      []struct {
		Type    string `json:"type"`
		Outcome string `json:"outcome"`
		Detail  string `json:"detail"`
		Event   *struct {
			Type    string `json:"type"`
			Subject string `json:"subject"`
		} `json:"event"`
	} `json:"events"`
	Enforced *struct{ Applied, Total int } `json:"enforced"`
}

func listSignals(t *testing.T, baseURL, dataDir string) []signalView {
	t.Helper()
	var out struct{ Signals []signalView }
	getJSON(t, baseURL+"/v1/signals", mint(t, dataDir, "--sub", "admin", "--roles", "warden-admin"), &out)
	return out.Signals
}

// TestSignalsPushRefused sends every kind of bad push and checks its
// status and RFC 8935 code, and that the user's token is still allowed
// and nothing was recorded.
func TestSignalsPushRefused(t *testing.T) {
	tr := newSSFTransmitter(t)
	dataDir := t.TempDir()
	replicas := startReplicas(t, dataDir, 1, "--config", tr.config(t, ""))
	base := replicas[0]
	token := mint(t, dataDir, "--sub", "dave", "--roles", "manager")
	const revoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := func(edit func(map[string]any, *jose.SignerOptions)) string {
		return tr.set(t, revoked, map[string]any{"event_timestamp": time.Now().Add(time.Second).Unix()}, issSub("dave"), edit)
	}
	tests := []struct {
		name, auth, contentType, body string
		status                        int
		code                          string
	}{
		{"no authorization", "", "application/secevent+jwt", good(nil), 401, "authentication_failed"},
		{"wrong authorization", "Bearer wrong-credential-0123456789", "application/secevent+jwt", good(nil), 401, "authentication_failed"},
		{"wrong content type", ssfAuth, "application/json", good(nil), 400, "invalid_request"},
		{"bad signature", ssfAuth, "application/secevent+jwt", resign(t, good(nil), other), 400, "invalid_key"},
		{"wrong audience", ssfAuth, "application/secevent+jwt", good(func(c map[string]any, _ *jose.SignerOptions) { c["aud"] = "someone-else" }), 400, "invalid_audience"},
		{"wrong issuer", ssfAuth, "application/secevent+jwt", good(func(c map[string]any, _ *jose.SignerOptions) { c["iss"] = "https://evil.example.com" }), 400, "invalid_issuer"},
		{"missing typ", ssfAuth, "application/secevent+jwt", good(func(_ map[string]any, o *jose.SignerOptions) { delete(o.ExtraHeaders, jose.HeaderType) }), 400, "invalid_request"},
		{"missing events", ssfAuth, "application/secevent+jwt", good(func(c map[string]any, _ *jose.SignerOptions) { delete(c, "events") }), 400, "invalid_request"},
		{"oversize body", ssfAuth, "application/secevent+jwt", strings.Repeat("a", 65<<10), 413, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code := pushSET(t, base, tt.auth, tt.contentType, tt.body)
			if status != tt.status || code != tt.code {
				t.Errorf("push = %d %q, want %d %q", status, code, tt.status, tt.code)
			}
		})
	}
	for _, auth := range []string{"", "Bearer " + token, ssfAuth} { // none, a user's token, the transmitter's credential
		if status, _, _ := adminDo(t, "GET", base+"/v1/signals", "", "", "", "Authorization", auth); status != http.StatusUnauthorized && status != http.StatusForbidden {
			t.Errorf("GET /v1/signals with %q: %d, want 401 or 403", auth, status)
		}
	}
	if got := listSignals(t, base, dataDir); len(got) != 0 {
		t.Errorf("refused pushes were recorded: %+v", got)
	}

	t.Run("unknown event and verification are accepted and change nothing", func(t *testing.T) {
		for _, typ := range []string{"https://example.com/event-type/unheard-of", "https://schemas.openid.net/secevent/ssf/event-type/verification"} {
			set := tr.set(t, typ, map[string]any{"state": "x"}, issSub("dave"), nil)
			if status, code := pushSET(t, base, ssfAuth, "application/secevent+jwt", set); status != 202 {
				t.Fatalf("push %s: %d %s", typ, status, code)
			}
		}
		outcomes := map[string]bool{}
		for _, s := range listSignals(t, base, dataDir) {
			for _, e := range s.Events {
				outcomes[e.Outcome] = true
				if e.Event != nil {
					t.Errorf("%s was published as %+v", e.Type, e.Event)
				}
			}
		}
		if !outcomes["unknown_type"] || !outcomes["verification"] {
			t.Errorf("outcomes = %v, want unknown_type and verification", outcomes)
		}
	})

	t.Run("replayed jti changes nothing", func(t *testing.T) {
		jti := "replayed-" + fmt.Sprint(time.Now().UnixNano())
		sameJTI := func(c map[string]any, _ *jose.SignerOptions) { c["jti"] = jti }
		first := tr.set(t, "https://example.com/event-type/unheard-of", map[string]any{}, issSub("dave"), sameJTI)
		replay := good(sameJTI) // another SET with the same jti: a session revocation of dave
		for _, set := range []string{first, replay} {
			if status, code := pushSET(t, base, ssfAuth, "application/secevent+jwt", set); status != 202 {
				t.Fatalf("push: %d %s", status, code)
			}
		}
		time.Sleep(200 * time.Millisecond) // what a replica would need to apply it, were it published
	})

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`warden_signals_total{outcome="authentication_failed",transmitter="idp"} 2`,
		`warden_signals_total{outcome="invalid_key",transmitter="idp"} 1`,
		`warden_signals_total{outcome="invalid_request",transmitter="idp"} 4`,
		`warden_signals_total{outcome="unknown_type",transmitter="idp"} 2`,
		`warden_signals_total{outcome="verification",transmitter="idp"} 1`,
		`warden_signals_total{outcome="duplicate",transmitter="idp"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if reason := askDecision(t, base, token, "orders:approve").Reason; reason != "allowed" {
		t.Errorf("dave's token after the refused and ignored pushes: %s, want allowed", reason)
	}
}

// resign replaces the signature of a compact JWS by one of another key.
func resign(t *testing.T, compact string, key *ecdsa.PrivateKey) string {
	t.Helper()
	parts := strings.Split(compact, ".")
	other, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, _ := other.Sign([]byte(parts[0]))
	sig := strings.Split(must(jws.CompactSerialize()), ".")[2]
	return parts[0] + "." + parts[1] + "." + sig
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// BenchmarkSignalPropagation measures issue 15's promise: from a
// transmitter pushing a SET (CAEP session-revoked) to one of three
// replicas until all three deny the user's older token with
// token_revoked. Run it with:
//
//	go test -run XXX -bench SignalPropagation -benchtime 1000x ./cmd/warden/
//
// It reports p50, p99 and max in milliseconds.
func BenchmarkSignalPropagation(b *testing.B) {
	tr := newSSFTransmitter(b)
	dataDir := b.TempDir()
	replicas := startReplicas(b, dataDir, 3, "--config", tr.config(b, ""))
	dev, _, err := loadDevIssuer(dataDir)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	tokens := make([]string, b.N)
	sets := make([]string, b.N)
	for i := range b.N {
		sub := fmt.Sprintf("user-%d", i)
		// Minted two seconds back and revoked as of now: iat < at.
		tokens[i], _ = dev.mint(sub, []string{"manager"}, 30*time.Minute, nil, time.Now().Add(-2*time.Second))
		sets[i] = tr.set(b, "https://schemas.openid.net/secevent/caep/event-type/session-revoked", map[string]any{}, issSub(sub), nil)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		req, _ := http.NewRequest("POST", replicas[i%3]+"/v1/signals/idp", strings.NewReader(sets[i]))
		req.Header.Set("Content-Type", "application/secevent+jwt")
		req.Header.Set("Authorization", ssfAuth)
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("push: %v %v", err, resp)
		}
		resp.Body.Close()
		awaitAll(b, client, replicas, tokens[i], "token_revoked", start)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, lat)
}
