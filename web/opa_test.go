package web

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wardenauthz/warden/web/decisionlog"
)

// TestOPARoutesGuarded: the OPA routes are decision routes. With client
// tokens configured, a caller must authenticate, by Warden-Client-Token or,
// as OPA's token authentication sends it, Authorization: Bearer; that
// header is the caller's credential there, never a token to decide about.
func TestOPARoutesGuarded(t *testing.T) {
	f := newFixture(t)
	const gatewayToken = "gw-0123456789abcdef0123456789abcdef"
	f.serve(t, nil, decisionlog.Options{}, Options{DecisionClients: map[string]string{gatewayToken: "kong"}})
	// (Not the whole data document: the shipped set's includes its tests,
	// slow to evaluate under the race detector.)
	for _, path := range []string{"/v1/data/warden/roles", "/"} {
		for name, header := range map[string][]string{
			"no client token":       nil,
			"a wrong bearer":        {"Authorization", "Bearer gw-0123456789abcdef0123456789abcdeX"},
			"the token, no scheme":  {"Authorization", gatewayToken},
			"a wrong client header": {ClientTokenHeader, "nope"},
		} {
			if status, _ := f.do(t, "POST", path, "application/json", `{}`, header...); status != 401 {
				t.Errorf("%s %s: %d, want 401", path, name, status)
			}
		}
		for _, header := range [][]string{{ClientTokenHeader, gatewayToken}, {"Authorization", "Bearer " + gatewayToken}} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", path, strings.NewReader(`{}`))
			req.Header.Set(header[0], header[1])
			f.handler.ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Errorf("%s with %s: %d %s", path, header[0], rec.Code, rec.Body)
			}
		}
	}
	// GET /health needs no credentials, like /readyz.
	if status, got := f.do(t, "GET", "/health", "", ""); status != 200 || len(got) != 0 {
		t.Errorf("GET /health: %d %v, want 200 {}", status, got)
	}
}

// TestOPADataInput: what POST /v1/data reads, and the tokens it verifies.
func TestOPADataInput(t *testing.T) {
	f := newFixture(t)
	alice := f.token(t, "alice", "manager")
	for _, tt := range []struct {
		name, contentType, body string
		status                  int
		code                    string // OPA's error code, or the warning's
		result                  bool
	}{
		{"JSON", "application/json", `{"input":{}}`, 200, "", true},
		{"no content type", "", `{"input":{}}`, 200, "", true},
		{"YAML", "application/x-yaml", "input: {}\n", 415, "invalid_parameter", false},
		{"another media type", "text/html", `{"input":{}}`, 415, "invalid_parameter", false},
		{"over the limit", "application/json", `{"input":"` + strings.Repeat("x", 5000) + `"}`, 413, "invalid_parameter", false},
		{"explain", "application/json", `{"input":{}}`, 400, "invalid_parameter", false},
		{"a verified token", "application/json", `{"input":{"token":"` + alice + `"}}`, 200, "", true},
		{"a bearer in APISIX's place", "application/json", `{"input":{"request":{"headers":{"authorization":"Bearer x.y.z"}}}}`, 200, "token_malformed", false},
		{"a repeated header in Kong's place", "application/json", `{"input":{"request":{"http":{"headers":{"authorization":["Bearer ` + alice + `","Bearer x"]}}}}}`, 200, "token_malformed", false},
		{"another scheme is the policy's", "application/json", `{"input":{"attributes":{"request":{"http":{"headers":{"authorization":"Basic YTpi"}}}}}}`, 200, "", true},
		{"a token that is not a string is the policy's", "application/json", `{"input":{"token":{"claims":{}}}}`, 200, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := "/v1/data/warden/roles/staff"
			if tt.name == "explain" {
				path += "?explain=full"
			}
			status, got := f.do(t, "POST", path, tt.contentType, tt.body)
			if status != tt.status {
				t.Fatalf("%d %v, want %d", status, got, tt.status)
			}
			code, _ := got["code"].(string)
			if w, ok := got["warning"].(map[string]any); ok {
				code, _ = w["code"].(string)
			}
			if _, result := got["result"]; code != tt.code || result != tt.result {
				t.Errorf("code %q, result %v; want %q, %v: %v", code, result, tt.code, tt.result, got)
			}
		})
	}
}
