package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/web/decisionlog"
)

// proxyAsk sends a request to a proxy route from addr (a loopback peer
// unless given), with header pairs, and returns the recorder.
func (f *fixture) proxyAsk(t *testing.T, method, target, peer string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = peer
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

const loopbackPeer = "127.0.0.1:40000"

// forwarded is the headers a forward-auth proxy sends for method and uri
// on api.example.com.
func forwarded(method, uri string, more ...string) []string {
	return append([]string{"X-Forwarded-Method", method, "X-Forwarded-Uri", uri, "X-Forwarded-Host", "api.example.com"}, more...)
}

// TestForwardAuth is the contract nginx, Traefik and Caddy rely on: 200
// with the identity headers on allow, 403 on a policy deny, 401 with an
// RFC 6750 challenge for a missing or bad token, never a 5xx for a deny;
// the decision is logged with the request's method and path.
func TestForwardAuth(t *testing.T) {
	f := newFixture(t)
	manager := f.token(t, "alice", "manager")
	staff := f.token(t, "bob", "staff")
	expired := f.sign(t, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "bob", "roles": []string{"staff"},
		"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()})

	tests := []struct {
		name       string
		method     string // of the subrequest: nginx sends the original's, Caddy GET
		header     []string
		status     int
		reason     string
		subject    string // x-warden-subject expected upstream
		challenge  string
		reasonsHas string
	}{
		{"manager approves", "POST", forwarded("POST", "/orders/42/approve", "Authorization", "Bearer "+manager), 200, "allowed", "alice", "", "role manager grants orders:approve"},
		{"staff reads, Caddy's GET subrequest", "GET", forwarded("GET", "/orders/42?full=1", "Authorization", "Bearer "+staff), 200, "allowed", "bob", "", ""},
		{"a WebDAV subrequest (nginx keeps the method)", "PROPFIND", forwarded("PROPFIND", "/orders/42", "Authorization", "Bearer "+staff), 403, "policy_denied", "", "", "no route matches PROPFIND /orders/42"},
		{"staff may not approve", "POST", forwarded("POST", "/orders/42/approve", "Authorization", "Bearer "+staff), 403, "policy_denied", "", "", "no role grants orders:approve"},
		{"no route", "GET", forwarded("GET", "/admin", "Authorization", "Bearer "+manager), 403, "policy_denied", "", "", "no route matches GET /admin"},
		{"no token", "GET", forwarded("GET", "/orders/42"), 401, "token_missing", "", `Bearer realm="warden"`, ""},
		{"not a bearer token", "GET", forwarded("GET", "/orders/42", "Authorization", "Basic dXNlcjpwdw=="), 401, "token_missing", "", `Bearer realm="warden"`, ""},
		{"garbage token", "GET", forwarded("GET", "/orders/42", "Authorization", "Bearer not.a.token"), 401, "token_malformed", "",
			`Bearer realm="warden", error="invalid_token", error_description="token_malformed"`, ""},
		{"expired token", "GET", forwarded("GET", "/orders/42", "Authorization", "Bearer "+expired), 401, "token_expired", "",
			`Bearer realm="warden", error="invalid_token", error_description="token_expired"`, ""},
		{"nginx's X-Original headers", "GET", []string{"X-Original-Method", "GET", "X-Original-Uri", "/orders/7", "X-Original-Host", "api.example.com", "Authorization", "Bearer " + staff}, 200, "allowed", "bob", "", ""},
		{"dot segments resolved before the policy", "POST", forwarded("POST", "/orders/42/x/../approve", "Authorization", "Bearer "+staff), 403, "policy_denied", "", "", "no role grants orders:approve"},
		{"percent-encoding decoded once", "GET", forwarded("GET", "/%6Frders/42", "Authorization", "Bearer "+staff), 200, "allowed", "bob", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.proxyAsk(t, tt.method, "/v1/forward-auth", loopbackPeer, tt.header...)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			var got decisionResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			if got.Reason != decision.Reason(tt.reason) || got.DecisionID == "" || rec.Header().Get("X-Warden-Decision-Id") != got.DecisionID {
				t.Errorf("decision %+v (id header %q), want reason %s", got, rec.Header().Get("X-Warden-Decision-Id"), tt.reason)
			}
			if s := rec.Header().Get("X-Warden-Subject"); s != tt.subject {
				t.Errorf("X-Warden-Subject %q, want %q", s, tt.subject)
			}
			if c := rec.Header().Get("WWW-Authenticate"); c != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", c, tt.challenge)
			}
			if tt.status != 200 && rec.Header().Get("X-Warden-Reason") != tt.reason {
				t.Errorf("X-Warden-Reason %q, want %s", rec.Header().Get("X-Warden-Reason"), tt.reason)
			}
			if tt.reasonsHas != "" && !strings.Contains(strings.Join(got.Reasons, "|"), tt.reasonsHas) {
				t.Errorf("reasons %q, want one saying %q", got.Reasons, tt.reasonsHas)
			}
		})
	}

	// The decision log (written off the request path) names the request.
	deadline := time.Now().Add(5 * time.Second)
	for {
		recent := f.log.Recent(decisionlog.Filter{Subject: "alice"}, 100)
		if len(recent) > 0 && recent[len(recent)-1].Action == "POST /orders/42/approve" && recent[len(recent)-1].Allow {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision-log entry for alice's POST /orders/42/approve in %+v", recent)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestForwardAuthRefusals: a peer that is not a trusted proxy, a request
// whose original is not described, and a path an upstream could read
// differently from the policy are all refused with 403, never decided.
func TestForwardAuthRefusals(t *testing.T) {
	f := newFixture(t)
	staff := f.token(t, "bob", "staff")
	auth := []string{"Authorization", "Bearer " + staff}
	tests := []struct {
		name   string
		peer   string
		header []string
		says   string
	}{
		{"untrusted peer", "192.0.2.7:5000", forwarded("GET", "/orders/42", auth...), "trusted proxy"},
		{"no forwarded headers", loopbackPeer, auth, "X-Forwarded-Method"},
		{"forwarded URI twice", loopbackPeer, forwarded("GET", "/orders/42", append([]string{"X-Forwarded-Uri", "/orders/43"}, auth...)...), "X-Forwarded"},
		{"encoded slash", loopbackPeer, forwarded("GET", "/orders%2F42", auth...), "%2f"},
		{"encoded backslash", loopbackPeer, forwarded("GET", "/orders/42%5C..", auth...), "%5c"},
		{"path parameter dot-dot", loopbackPeer, forwarded("GET", "/orders/..;/admin", auth...), ";"},
		{"climbs above the root", loopbackPeer, forwarded("GET", "/orders/../../etc/passwd", auth...), "above the root"},
		{"encoded NUL", loopbackPeer, forwarded("GET", "/orders/42%00", auth...), "%00"},
		{"bad escape", loopbackPeer, forwarded("GET", "/orders/%zz", auth...), "invalid URL escape"},
		{"invalid UTF-8", loopbackPeer, forwarded("GET", "/orders/%ff", auth...), "UTF-8"},
		{"relative path", loopbackPeer, forwarded("GET", "orders/42", auth...), "does not start with /"},
		{"not a method", loopbackPeer, forwarded("G T", "/orders/42", auth...), "not an HTTP method"},
		{"bad query", loopbackPeer, forwarded("GET", "/orders/42?a=%zz", auth...), "query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.proxyAsk(t, "GET", "/v1/forward-auth", tt.peer, tt.header...)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), tt.says) || rec.Header().Get("X-Warden-Subject") != "" {
				t.Errorf("%d %s (subject %q), want 403 saying %q", rec.Code, rec.Body, rec.Header().Get("X-Warden-Subject"), tt.says)
			}
		})
	}

	// A configured network is trusted.
	f.serve(t, nil, decisionlog.Options{}, Options{Proxy: ProxyOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}})
	if rec := f.proxyAsk(t, "GET", "/v1/forward-auth", "192.0.2.7:5000", forwarded("GET", "/orders/42", auth...)...); rec.Code != 200 {
		t.Errorf("from a configured trusted network: %d %s", rec.Code, rec.Body)
	}
	if rec := f.proxyAsk(t, "GET", "/v1/forward-auth", loopbackPeer, forwarded("GET", "/orders/42", auth...)...); rec.Code != 403 {
		t.Errorf("from loopback, no longer trusted: %d %s", rec.Code, rec.Body)
	}
}

// TestForwardAuthTokenSources: a configured header or cookie carries the
// token; the policy sees neither, nor the authorization header.
func TestForwardAuthTokenSources(t *testing.T) {
	f := newFixture(t)
	staff := f.token(t, "bob", "staff")
	f.serve(t, nil, decisionlog.Options{}, Options{Proxy: ProxyOptions{TokenHeader: "X-Api-Token", TokenCookie: "session"}})
	for name, header := range map[string][]string{
		"configured header": forwarded("GET", "/orders/42", "X-Api-Token", "Bearer "+staff),
		"cookie":            forwarded("GET", "/orders/42", "Cookie", "theme=dark; session="+staff),
	} {
		if rec := f.proxyAsk(t, "GET", "/v1/forward-auth", loopbackPeer, header...); rec.Code != 200 || rec.Header().Get("X-Warden-Subject") != "bob" {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
		}
	}
	// The standard header is not read when another is configured.
	if rec := f.proxyAsk(t, "GET", "/v1/forward-auth", loopbackPeer, forwarded("GET", "/orders/42", "Authorization", "Bearer "+staff)...); rec.Code != 401 {
		t.Errorf("Authorization with token_header X-Api-Token: %d %s", rec.Code, rec.Body)
	}
}

// TestProxyRequestInput: the policy's input.request is the original
// request, normalised: method, decoded path, parsed query, lower-cased host
// and header names, with no credentials.
func TestProxyRequestInput(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer secret")
	h.Set("Cookie", "session=secret")
	h.Set("X-Api-Token", "secret")
	h.Add("Accept", "text/html")
	h.Add("Accept", "application/json")
	req, err := newProxyRequest("get", "//orders/./42/?tag=a&tag=b&full", "API.Example.com", h, "x-api-token")
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "GET" || req.Path != "/orders/42/" || req.Host != "api.example.com" ||
		strings.Join(req.Query["tag"], ",") != "a,b" || len(req.Query["full"]) != 1 {
		t.Errorf("request %+v", req)
	}
	if len(req.Headers) != 1 || req.Headers["accept"] != "text/html, application/json" {
		t.Errorf("headers %v, want accept alone (no credentials)", req.Headers)
	}
}

// TestCleanPath: decoded once, normalised, or refused.
func TestCleanPath(t *testing.T) {
	for raw, want := range map[string]string{
		"/":                    "/",
		"/orders/42":           "/orders/42",
		"/orders//42/":         "/orders/42/",
		"/orders/./42":         "/orders/42",
		"/public/../admin":     "/admin",
		"/orders/42/..":        "/orders/",
		"/%6Frders/%34%32":     "/orders/42",
		"/caf%C3%A9":           "/café",
		"/a%2520b":             "/a%20b", // decoded once: %25 is "%"
		"/%2e%2e/x":            "",       // an encoded ".." that climbs above the root
		"/a/%2E%2E/b":          "/b",
		"/orders%2F42":         "",
		"/orders;jsessionid=1": "",
		"/a\\b":                "",
		"/a%5cb":               "",
		"/a%00":                "",
		"/a%0d%0aX: y":         "",
		"/%":                   "",
		"/%C3":                 "",
		"relative":             "",
		"":                     "",
	} {
		got, err := cleanPath(raw)
		if want == "" && err == nil {
			t.Errorf("cleanPath(%q) = %q, want it refused", raw, got)
		}
		if want != "" && (err != nil || got != want) {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}

// TestForwardAuthStaleToken: after a permission change, the subject's older
// token gets 401 with a challenge and a body that tell the client to
// refresh it; a token issued after the change passes.
func TestForwardAuthStaleToken(t *testing.T) {
	f := newEventsFixture(t)
	now := time.Now()
	old := f.sign(t, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "bob", "roles": []string{"manager"},
		"iat": now.Add(-5 * time.Second).Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	ask := forwarded("POST", "/orders/42/approve", "Authorization", "Bearer "+old)
	if rec := f.proxyAsk(t, "POST", "/v1/forward-auth", loopbackPeer, ask...); rec.Code != 200 {
		t.Fatalf("before the change: %d %s", rec.Code, rec.Body)
	}
	status, body := f.do(t, "POST", "/v1/events?wait=2s", "application/json", `{"type":"roles_changed","subject":"bob","reason":"demoted"}`,
		"Authorization", "Bearer "+f.token(t, "root", "warden-admin"))
	if status != 200 {
		t.Fatalf("publish: %d %v", status, body)
	}
	rec := f.proxyAsk(t, "POST", "/v1/forward-auth", loopbackPeer, ask...)
	var got decisionResponse
	json.Unmarshal(rec.Body.Bytes(), &got)
	challenge := rec.Header().Get("WWW-Authenticate")
	if rec.Code != 401 || got.Reason != decision.ReasonTokenStale || !got.Refresh ||
		challenge != `Bearer realm="warden", error="invalid_token", error_description="token_stale: permissions changed; refresh the token and retry"` {
		t.Errorf("old token after the change: %d %s, challenge %q", rec.Code, rec.Body, challenge)
	}
	// iat has whole seconds: a token of the change's own second is stale
	// too, so the fresh one is issued a second later.
	fresh := f.sign(t, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "bob", "roles": []string{"staff"},
		"iat": time.Now().Add(time.Second).Unix(), "exp": time.Now().Add(10 * time.Minute).Unix()})
	if rec := f.proxyAsk(t, "GET", "/v1/forward-auth", loopbackPeer, forwarded("GET", "/orders/42", "Authorization", "Bearer "+fresh)...); rec.Code != 200 {
		t.Errorf("a token issued after the change: %d %s", rec.Code, rec.Body)
	}
}

// TestEnvoyHTTPService: Envoy's HTTP ext_authz service sends the original
// request itself under path_prefix /v1/envoy: its method, path, query and
// Host decide; only a 200 lets it through.
func TestEnvoyHTTPService(t *testing.T) {
	f := newFixture(t)
	staff := f.token(t, "bob", "staff")
	for _, tt := range []struct {
		method, target string
		status         int
		subject        string
	}{
		{"GET", "/v1/envoy/orders/42?full=1", 200, "bob"},
		{"HEAD", "/v1/envoy/orders/42", 403, ""}, // no route for HEAD in the shipped table
		{"POST", "/v1/envoy/orders/42/approve", 403, ""},
		{"GET", "/v1/envoy/orders%2F42", 403, ""},
		{"GET", "/v1/envoy/orders/42/../../admin", 403, ""},
		{"DELETE", "/v1/envoy/orders/42", 403, ""},
		{"PROPFIND", "/v1/envoy/orders/42", 403, ""}, // any method, WebDAV's too: no route for it
	} {
		req := httptest.NewRequest(tt.method, tt.target, nil)
		req.RemoteAddr = loopbackPeer
		req.Host = "api.example.com"
		req.Header.Set("Authorization", "Bearer "+staff)
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		if rec.Code != tt.status || rec.Header().Get("X-Warden-Subject") != tt.subject {
			t.Errorf("%s %s: %d (subject %q) %s, want %d", tt.method, tt.target, rec.Code, rec.Header().Get("X-Warden-Subject"), rec.Body, tt.status)
		}
	}
	// Without a token: 401 with the challenge.
	if rec := f.proxyAsk(t, "GET", "/v1/envoy/orders/42", loopbackPeer); rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Bearer realm="warden"` {
		t.Errorf("no token: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}
