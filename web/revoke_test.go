package web

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/web/decisionlog"
)

// The revocation clients of the tests: orders-web revokes its own tokens,
// the identity provider any token; "svc:reports" needs the form encoding
// of RFC 6749 §2.3.1 in HTTP Basic.
const (
	ordersSecret  = "orders-web-secret-0123456789abcdef"
	idpSecret     = "idp-secret-0123456789abcdef0123456"
	reportsID     = "svc:reports"
	reportsSecret = "p+ss/w%rd 0123456789abcdef0123456"
)

func revocationClients() []RevocationClient {
	return []RevocationClient{
		{ID: "orders-web", SecretSHA256: sha256.Sum256([]byte(ordersSecret))},
		{ID: "idp", SecretSHA256: sha256.Sum256([]byte(idpSecret)), RevokeAny: true},
		{ID: reportsID, SecretSHA256: sha256.Sum256([]byte(reportsSecret))},
	}
}

func newRevokeFixture(t *testing.T) *fixture {
	t.Helper()
	return newEventsFixtureWith(t, func(o *Options) { o.RevocationClients = revocationClients() })
}

// basic is an Authorization value for id and secret as RFC 6749 §2.3.1
// has it: each form-urlencoded, then base64.
func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// accessToken is a token of alice issued to client with jti (none when
// empty), living ten minutes.
func (f *fixture) accessToken(t *testing.T, client, jti string) (string, time.Time) {
	t.Helper()
	now := time.Now()
	exp := now.Add(10 * time.Minute).Truncate(time.Second)
	c := jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "alice", "roles": []string{"manager"},
		"iat": now.Unix(), "exp": exp.Unix()}
	if client != "" {
		c["client_id"] = client
	}
	if jti != "" {
		c["jti"] = jti
	}
	return f.sign(t, c), exp
}

// revoke posts a form to the revocation endpoint.
func (f *fixture) revoke(contentType, body string, header ...string) *httptest.ResponseRecorder {
	return f.request("POST", RevokePath, contentType, body, header...)
}

// metricsHave checks that /metrics shows every one of the lines want.
func (f *fixture) metricsHave(t *testing.T, want ...string) {
	t.Helper()
	rec := f.request("GET", "/metrics", "", "")
	for _, w := range want {
		if !strings.Contains(rec.Body.String(), w) {
			t.Errorf("metrics lack %s", w)
		}
	}
}

const formType = "application/x-www-form-urlencoded"

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

// revokedSeq is the stream sequence of a revocation answered 200, 0 when
// nothing was published.
func revokedSeq(t *testing.T, rec *httptest.ResponseRecorder) uint64 {
	t.Helper()
	if rec.Code != 200 || rec.Body.Len() != 0 {
		t.Fatalf("revocation = %d %q, want 200 with an empty body", rec.Code, rec.Body)
	}
	if h := rec.Header().Get("Warden-Seq"); h != "" {
		seq, err := strconv.ParseUint(h, 10, 64)
		if err != nil {
			t.Fatalf("Warden-Seq %q: %v", h, err)
		}
		return seq
	}
	return 0
}

func TestRevokeToken(t *testing.T) {
	f := newRevokeFixture(t)
	admin := []string{"Authorization", "Bearer " + f.token(t, "root", "warden-admin")}
	revoked, exp := f.accessToken(t, "orders-web", "jti-1")
	other, _ := f.accessToken(t, "orders-web", "jti-2")

	rec := f.revoke(formType, form("token", revoked, "token_type_hint", "access_token"), "Authorization", basic("orders-web", ordersSecret))
	seq := revokedSeq(t, rec)
	if seq != 1 {
		t.Fatalf("Warden-Seq = %d, want 1 (the stream's first event)", seq)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	minSeq := strconv.FormatUint(seq, 10)
	for _, tt := range []struct {
		name, token, want string
	}{{"revoked token", revoked, "token_revoked"}, {"the user's other token", other, "allowed"}} {
		status, got := f.do(t, "POST", "/v1/decision", "application/json", `{"token":"`+tt.token+`","action":"orders:approve"}`, "Warden-Min-Seq", minSeq)
		if status != 200 || got["reason"] != tt.want {
			t.Errorf("%s: = %d %v, want %s", tt.name, status, got, tt.want)
		}
	}

	status, got := f.do(t, "GET", "/v1/revocations", "", "", admin...)
	entries, _ := got["entries"].([]any)
	if status != 200 || len(entries) != 1 {
		t.Fatalf("/v1/revocations = %d %v, want one entry", status, got)
	}
	// The entry lasts while the token would be accepted, exp + leeway, and
	// names who revoked it.
	entry := entries[0].(map[string]any)
	until, _ := time.Parse(time.RFC3339, str(entry["expires_at"]))
	if entry["type"] != "token_revoked" || entry["jti"] != "jti-1" || entry["subject"] != "alice" || entry["issuer"] != testIssuer ||
		!until.Equal(exp.Add(claims.DefaultLeeway)) || entry["actor"] != "oauth2-revoke:orders-web" || !strings.Contains(str(entry["reason"]), "RFC 7009") {
		t.Errorf("ledger entry %v, want token_revoked of alice's jti-1 until %s by oauth2-revoke:orders-web", entry, exp.Add(claims.DefaultLeeway).UTC().Format(time.RFC3339))
	}

	// Revoking again is the same event: stored once, same sequence.
	if again := revokedSeq(t, f.revoke(formType, form("token", revoked), "Authorization", basic("orders-web", ordersSecret))); again != seq {
		t.Errorf("second revocation: Warden-Seq %d, want the original %d", again, seq)
	}

	// Credentials in the body (client_secret_post) and a form-encoded Basic
	// user and password work too.
	posted, _ := f.accessToken(t, "orders-web", "jti-3")
	if revokedSeq(t, f.revoke(formType+"; charset=UTF-8", form("token", posted, "client_id", "orders-web", "client_secret", ordersSecret))) == 0 {
		t.Error("client_secret_post: nothing published")
	}
	reports, _ := f.accessToken(t, reportsID, "jti-4")
	if revokedSeq(t, f.revoke(formType, form("token", reports), "Authorization", basic(reportsID, reportsSecret))) == 0 {
		t.Error("form-encoded HTTP Basic: nothing published")
	}
	// Basic with a matching client_id in the body is one authentication.
	matching, _ := f.accessToken(t, "orders-web", "jti-5")
	if revokedSeq(t, f.revoke(formType, form("token", matching, "client_id", "orders-web"), "Authorization", basic("orders-web", ordersSecret))) == 0 {
		t.Error("Basic with the same client_id in the body: nothing published")
	}

	// The identity provider revokes any client's token; the event names it.
	foreign, _ := f.accessToken(t, "billing", "jti-6")
	seq = revokedSeq(t, f.revoke(formType, form("token", foreign, "token_type_hint", "refresh_token"), "Authorization", basic("idp", idpSecret)))
	status, got = f.do(t, "POST", "/v1/decision", "application/json", `{"token":"`+foreign+`","action":"orders:read"}`, "Warden-Min-Seq", strconv.FormatUint(seq, 10))
	if status != 200 || got["reason"] != "token_revoked" {
		t.Errorf("billing's token after the IdP revoked it = %d %v", status, got)
	}

	f.metricsHave(t,
		`warden_revocation_requests_total{client="orders-web",outcome="revoked"} 4`,
		`warden_revocation_requests_total{client="idp",outcome="revoked"} 1`,
		`warden_revocation_requests_total{client="svc:reports",outcome="revoked"} 1`,
	)
}

// TestRevokeInvalidTokens: a token Warden does not accept is answered 200
// and nothing is published (RFC 7009 §2.2): the first real revocation
// afterwards is the stream's first event.
func TestRevokeInvalidTokens(t *testing.T) {
	f := newRevokeFixture(t)
	auth := []string{"Authorization", basic("orders-web", ordersSecret)}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	valid := jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "alice", "client_id": "orders-web", "jti": "x", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodES256, valid).SignedString(otherKey)
	with := func(k string, v any) string {
		c := jwt.MapClaims{}
		for key, val := range valid {
			c[key] = val
		}
		c[k] = v
		return f.sign(t, c)
	}
	for name, token := range map[string]string{
		"garbage":        "not-a-token",
		"opaque refresh": "8xLOxBtZp8",
		"bad signature":  forged,
		"expired":        with("exp", now.Add(-time.Hour).Unix()),
		"other audience": with("aud", "another-api"),
		"other issuer":   with("iss", "https://elsewhere.test/"),
	} {
		t.Run(name, func(t *testing.T) {
			if seq := revokedSeq(t, f.revoke(formType, form("token", token), auth...)); seq != 0 {
				t.Errorf("published as sequence %d", seq)
			}
		})
	}
	good, _ := f.accessToken(t, "orders-web", "jti-good")
	if seq := revokedSeq(t, f.revoke(formType, form("token", good), auth...)); seq != 1 {
		t.Errorf("the first real revocation is sequence %d, want 1: something was published before", seq)
	}
}

func TestRevokeRefusals(t *testing.T) {
	f := newRevokeFixture(t)
	orders := basic("orders-web", ordersSecret)
	mine, _ := f.accessToken(t, "orders-web", "jti-mine")
	billing, _ := f.accessToken(t, "billing", "jti-billing")
	noClient, _ := f.accessToken(t, "", "jti-none")
	noJTI, _ := f.accessToken(t, "orders-web", "")
	now := time.Now()
	claimsOf := func(extra jwt.MapClaims) string {
		c := jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "alice", "jti": "j", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return f.sign(t, c)
	}
	azpOther := claimsOf(jwt.MapClaims{"azp": "billing"})
	azpMine := claimsOf(jwt.MapClaims{"azp": "orders-web"})
	disagree := claimsOf(jwt.MapClaims{"client_id": "orders-web", "azp": "billing"})
	longJTI := claimsOf(jwt.MapClaims{"client_id": "orders-web", "jti": strings.Repeat("j", 600)})

	tests := []struct {
		name, contentType, body string
		header                  []string
		wantStatus              int
		wantError, wantDesc     string
	}{
		{"wrong secret", formType, form("token", mine), []string{"Authorization", basic("orders-web", "wrong")}, 401, "invalid_client", "failed"},
		{"unknown client", formType, form("token", mine), []string{"Authorization", basic("nobody", ordersSecret)}, 401, "invalid_client", "failed"},
		{"no credentials", formType, form("token", mine), nil, 401, "invalid_client", "required"},
		{"client_id without secret", formType, form("token", mine, "client_id", "orders-web"), nil, 401, "invalid_client", "required"},
		{"wrong secret in the body", formType, form("token", mine, "client_id", "orders-web", "client_secret", "nope"), nil, 401, "invalid_client", "failed"},
		{"bearer is no client authentication", formType, form("token", mine), []string{"Authorization", "Bearer " + mine}, 401, "invalid_client", "scheme"},
		{"basic not base64", formType, form("token", mine), []string{"Authorization", "Basic %%%"}, 401, "invalid_client", "base64"},
		{"basic without colon", formType, form("token", mine), []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("orders-web"))}, 401, "invalid_client", "colon"},
		{"basic and client_secret", formType, form("token", mine, "client_secret", ordersSecret), []string{"Authorization", orders}, 400, "invalid_request", "at once"},
		{"basic and another client_id", formType, form("token", mine, "client_id", "idp"), []string{"Authorization", orders}, 400, "invalid_request", "differs"},
		{"JSON body", "application/json", `{"token":"` + mine + `"}`, []string{"Authorization", orders}, 400, "invalid_request", "Content-Type"},
		{"no content type", "", form("token", mine), []string{"Authorization", orders}, 400, "invalid_request", "Content-Type"},
		{"multipart", "multipart/form-data; boundary=x", "--x--", []string{"Authorization", orders}, 400, "invalid_request", "Content-Type"},
		{"missing token", formType, form("token_type_hint", "access_token"), []string{"Authorization", orders}, 400, "invalid_request", "token parameter is required"},
		{"empty token", formType, "token=", []string{"Authorization", orders}, 400, "invalid_request", "token parameter is required"},
		{"empty body", formType, "", []string{"Authorization", orders}, 400, "invalid_request", "empty"},
		{"token twice", formType, "token=" + mine + "&token=" + billing, []string{"Authorization", orders}, 400, "invalid_request", "token is sent 2 times"},
		{"client_id twice", formType, "token=" + mine + "&client_id=orders-web&client_id=orders-web&client_secret=" + url.QueryEscape(ordersSecret), nil, 400, "invalid_request", "client_id is sent 2 times"},
		{"token in the URL", formType, "", []string{"Authorization", orders}, 400, "invalid_request", "not in the URL"},
		{"malformed form", formType, "token=%zz", []string{"Authorization", orders}, 400, "invalid_request", "not a valid"},
		{"too large", formType, form("token", strings.Repeat("a", DefaultMaxBodyBytes)), []string{"Authorization", orders}, 400, "invalid_request", "larger than"},
		{"another client's token", formType, form("token", billing), []string{"Authorization", orders}, 400, "unauthorized_client", "not issued to client orders-web"},
		{"another client's azp", formType, form("token", azpOther), []string{"Authorization", orders}, 400, "unauthorized_client", "not issued"},
		{"client_id and azp disagree", formType, form("token", disagree), []string{"Authorization", orders}, 400, "unauthorized_client", "not issued"},
		{"a token naming no client", formType, form("token", noClient), []string{"Authorization", orders}, 400, "unauthorized_client", "not issued"},
		{"no jti", formType, form("token", noJTI), []string{"Authorization", orders}, 400, "unsupported_token_type", "no jti"},
		{"jti too long for an event", formType, form("token", longJTI), []string{"Authorization", orders}, 400, "unsupported_token_type", "jti"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := RevokePath
			if tt.name == "token in the URL" {
				path += "?token=" + mine
			}
			rec := f.request("POST", path, tt.contentType, tt.body, tt.header...)
			var got oauthErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("= %d %q: not OAuth's error JSON: %v", rec.Code, rec.Body, err)
			}
			if rec.Code != tt.wantStatus || got.Error != tt.wantError || !strings.Contains(got.ErrorDescription, tt.wantDesc) {
				t.Errorf("= %d %+v, want %d %s mentioning %q", rec.Code, got, tt.wantStatus, tt.wantError, tt.wantDesc)
			}
			if strings.ContainsAny(got.ErrorDescription, "\"\\") {
				t.Errorf("error_description %q has characters RFC 6749 does not allow", got.ErrorDescription)
			}
			challenge := rec.Header().Get("WWW-Authenticate")
			if (tt.wantError == "invalid_client") != strings.HasPrefix(challenge, "Basic ") {
				t.Errorf("WWW-Authenticate = %q for %s", challenge, tt.wantError)
			}
		})
	}

	// The same tokens the refusals are about, revoked by the right client
	// or the identity provider, are accepted: the refusals were about the
	// client, not the token.
	if revokedSeq(t, f.revoke(formType, form("token", azpMine), "Authorization", orders)) == 0 {
		t.Error("own token named by azp: nothing published")
	}
	if revokedSeq(t, f.revoke(formType, form("token", noClient, "token_type_hint", "id_token"), "Authorization", basic("idp", idpSecret))) == 0 {
		t.Error("the identity provider, with an unknown token_type_hint: nothing published")
	}

	if rec := f.request("GET", RevokePath, "", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET %s = %d, want 405", RevokePath, rec.Code)
	}

	f.metricsHave(t,
		`warden_revocation_requests_total{client="",outcome="invalid_client"} 6`,
		`warden_revocation_requests_total{client="orders-web",outcome="invalid_client"} 2`,
		`warden_revocation_requests_total{client="orders-web",outcome="unauthorized_client"} 4`,
		`warden_revocation_requests_total{client="orders-web",outcome="unsupported_token_type"} 2`,
	)
}

// TestRevokeEndpointOff: without configured clients, or without the event
// feed, the route does not exist.
func TestRevokeEndpointOff(t *testing.T) {
	noClients := newEventsFixture(t)
	noFeed := newFixture(t)
	noFeed.serve(t, nil, decisionlog.Options{}, Options{RevocationClients: revocationClients()})
	for name, f := range map[string]*fixture{"no clients": noClients, "no event feed": noFeed} {
		token, _ := f.accessToken(t, "orders-web", "j")
		if rec := f.revoke(formType, form("token", token), "Authorization", basic("orders-web", ordersSecret)); rec.Code != http.StatusNotFound {
			t.Errorf("%s: = %d %s, want 404", name, rec.Code, rec.Body)
		}
	}
}

// TestRevokeWithoutNATS: when the stream cannot store the event the client
// hears 503 with Retry-After, never a 200 that lost the revocation.
func TestRevokeWithoutNATS(t *testing.T) {
	f := newRevokeFixture(t)
	token, _ := f.accessToken(t, "orders-web", "jti-lost")
	f.nats.Shutdown()
	rec := f.revoke(formType, form("token", token), "Authorization", basic("orders-web", ordersSecret))
	var got oauthErrorBody
	json.Unmarshal(rec.Body.Bytes(), &got)
	if rec.Code != 503 || got.Error != "temporarily_unavailable" || rec.Header().Get("Retry-After") == "" || !strings.Contains(got.ErrorDescription, "as not revoked and retry") {
		t.Errorf("= %d %+v (Retry-After %q), want 503 temporarily_unavailable with Retry-After", rec.Code, got, rec.Header().Get("Retry-After"))
	}
}
