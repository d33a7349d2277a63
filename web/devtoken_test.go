package web

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/web/decisionlog"
)

func TestDevAdminToken(t *testing.T) {
	f := newFixture(t)
	if status, _ := f.do(t, "POST", "/v1/dev/admin-token", "application/json", "{}"); status != 404 {
		t.Errorf("without Options.DevAdminToken: status %d, want 404 (no route)", status)
	}
	if status, cfg := f.do(t, "GET", "/ui/config.json", "", ""); status != 200 || cfg["dev_admin_token"] != false {
		t.Errorf("/ui/config.json without a development token = %d %v", status, cfg)
	}

	minted := f.token(t, "dev-admin", "warden-admin")
	f.serve(t, nil, decisionlog.Options{}, Options{DevAdminToken: func() (string, error) { return minted, nil }})
	if status, cfg := f.do(t, "GET", "/ui/config.json", "", ""); status != 200 || cfg["dev_admin_token"] != true {
		t.Errorf("/ui/config.json with a development token = %d %v", status, cfg)
	}
	for _, tt := range []struct {
		name       string
		remote     string
		header     []string
		wantStatus int
		wantMsg    string
	}{
		{"loopback", "127.0.0.1:40000", nil, 200, ""},
		{"loopback IPv6", "[::1]:40000", nil, 200, ""},
		{"same-origin browser", "127.0.0.1:40000", []string{"Origin", "http://example.com", "Sec-Fetch-Site", "same-origin"}, 200, ""},
		{"another machine", "192.0.2.1:40000", nil, 403, "192.0.2.1"},
		{"through a local proxy", "127.0.0.1:40000", []string{"X-Forwarded-For", "192.0.2.1"}, 403, "X-Forwarded-For"},
		{"another site", "127.0.0.1:40000", []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-site"},
		{"another origin", "127.0.0.1:40000", []string{"Origin", "http://evil.test"}, 403, "evil.test"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "http://example.com/v1/dev/admin-token", strings.NewReader("{}"))
			req.RemoteAddr = tt.remote
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			var got map[string]any
			json.Unmarshal(rec.Body.Bytes(), &got)
			if rec.Code != tt.wantStatus {
				t.Fatalf("= %d %v, want %d", rec.Code, got, tt.wantStatus)
			}
			if tt.wantStatus == 200 {
				if got["token"] != minted || rec.Header().Get("Cache-Control") != "no-store" {
					t.Errorf("= %v (Cache-Control %q), want the minted token, no-store", got, rec.Header().Get("Cache-Control"))
				}
				return
			}
			e, _ := got["error"].(map[string]any)
			if msg, _ := e["message"].(string); e["code"] != "forbidden" || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error %v, want forbidden mentioning %q", e, tt.wantMsg)
			}
		})
	}

	f.serve(t, nil, decisionlog.Options{}, Options{DevAdminToken: func() (string, error) { return "", errors.New("disk on fire") }})
	req := httptest.NewRequest("POST", "/v1/dev/admin-token", nil)
	req.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "disk on fire") {
		t.Errorf("failing mint = %d %s, want a bare 500", rec.Code, rec.Body)
	}
}

// TestUIRoutes checks the UI is mounted on the real router with its
// security headers, and that /ui leads to /ui/.
func TestUIRoutes(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		path         string
		wantStatus   int
		wantLocation string
	}{
		{"/ui", 301, "/ui/"},
		{"/ui/", 200, ""},
		{"/ui/app.js", 200, ""},
		{"/ui/style.css", 200, ""},
		{"/ui/missing.js", 404, ""},
	} {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			if rec.Code != tt.wantStatus || rec.Header().Get("Location") != tt.wantLocation {
				t.Fatalf("= %d Location %q, want %d %q", rec.Code, rec.Header().Get("Location"), tt.wantStatus, tt.wantLocation)
			}
			if tt.wantStatus != 301 && !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
				t.Errorf("no strict Content-Security-Policy: %q", rec.Header().Get("Content-Security-Policy"))
			}
		})
	}
}

// TestDevToken checks POST /v1/dev/token, the policy playground's minting of
// development tokens: only in development mode, only for an admin on this
// machine, and never with claims the issuer sets itself.
func TestDevToken(t *testing.T) {
	f := newFixture(t)
	admin := f.token(t, "root", "warden-admin")
	if status, _ := f.do(t, "POST", "/v1/dev/token", "application/json", `{"sub":"alice"}`, "Authorization", "Bearer "+admin); status != 404 {
		t.Errorf("without Options.DevToken: status %d, want 404 (no route)", status)
	}
	if _, cfg := f.do(t, "GET", "/ui/config.json", "", ""); cfg["dev_token"] != false {
		t.Errorf("/ui/config.json without development tokens = %v", cfg)
	}

	type minted struct {
		sub   string
		roles []string
		extra map[string]any
	}
	var got []minted
	f.serve(t, nil, decisionlog.Options{}, Options{DevToken: func(sub string, roles []string, extra map[string]any) (string, error) {
		got = append(got, minted{sub, roles, extra})
		return "token-for-" + sub, nil
	}})
	if _, cfg := f.do(t, "GET", "/ui/config.json", "", ""); cfg["dev_token"] != true {
		t.Errorf("/ui/config.json with development tokens = %v", cfg)
	}
	for _, tt := range []struct {
		name       string
		remote     string
		body       string
		header     []string
		wantStatus int
		wantCode   string
		wantMsg    string
		want       *minted
	}{
		{name: "subject and roles", body: `{"sub":"alice","roles":["manager"]}`, wantStatus: 200,
			want: &minted{"alice", []string{"manager"}, nil}},
		{name: "extra claims", body: `{"sub":"bob","roles":["staff","auditor"],"claims":{"department":"sales","level":3}}`, wantStatus: 200,
			want: &minted{"bob", []string{"staff", "auditor"}, map[string]any{"department": "sales", "level": json.Number("3")}}},
		{name: "no roles is an empty roles claim", body: `{"sub":"carol"}`, wantStatus: 200,
			want: &minted{"carol", []string{}, nil}},
		{name: "same-origin browser", body: `{"sub":"alice"}`, header: []string{"Origin", "http://example.com", "Sec-Fetch-Site", "same-origin"}, wantStatus: 200,
			want: &minted{"alice", []string{}, nil}},
		{name: "no subject", body: `{"roles":["manager"]}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "sub is required"},
		{name: "issuer claim", body: `{"sub":"alice","claims":{"exp":99999999999}}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `"exp"`},
		{name: "roles as a claim", body: `{"sub":"alice","claims":{"roles":["warden-admin"]}}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `"roles"`},
		{name: "unknown field", body: `{"sub":"alice","ttl":"1h"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "ttl"},
		{name: "not an admin", body: `{"sub":"alice"}`, header: []string{"Authorization", "Bearer " + f.token(t, "bob", "staff")}, wantStatus: 403, wantCode: "forbidden"},
		{name: "no admin token", body: `{"sub":"alice"}`, header: []string{"Authorization", ""}, wantStatus: 401, wantCode: "unauthorized"},
		{name: "another machine", remote: "192.0.2.1:40000", body: `{"sub":"alice"}`, wantStatus: 403, wantCode: "forbidden", wantMsg: "192.0.2.1"},
		{name: "through a local proxy", body: `{"sub":"alice"}`, header: []string{"X-Forwarded-For", "192.0.2.1"}, wantStatus: 403, wantCode: "forbidden", wantMsg: "X-Forwarded-For"},
		{name: "another site", body: `{"sub":"alice"}`, header: []string{"Sec-Fetch-Site", "cross-site"}, wantStatus: 403, wantCode: "forbidden", wantMsg: "cross-site"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			req := httptest.NewRequest("POST", "http://example.com/v1/dev/token", strings.NewReader(tt.body))
			req.RemoteAddr = "127.0.0.1:40000"
			if tt.remote != "" {
				req.RemoteAddr = tt.remote
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+admin)
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			var body map[string]any
			json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != tt.wantStatus {
				t.Fatalf("= %d %v, want %d", rec.Code, body, tt.wantStatus)
			}
			if tt.want == nil {
				e, _ := body["error"].(map[string]any)
				if msg, _ := e["message"].(string); e["code"] != tt.wantCode || !strings.Contains(msg, tt.wantMsg) {
					t.Errorf("error %v, want %s mentioning %q", e, tt.wantCode, tt.wantMsg)
				}
				if len(got) != 0 {
					t.Errorf("a refused request minted %+v", got)
				}
				return
			}
			if body["token"] != "token-for-"+tt.want.sub || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("= %v (Cache-Control %q), want the minted token, no-store", body, rec.Header().Get("Cache-Control"))
			}
			if diff := cmp.Diff([]minted{*tt.want}, got, cmp.AllowUnexported(minted{})); diff != "" {
				t.Errorf("minted (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDNSRebinding replays the attack: a page at rebind.evil.example, its
// name rebound to 127.0.0.1, asks the development-mode server for an admin
// token from the developer's browser. The request is local, same-origin and
// carries no proxy header, so only its Host gives it away: it is refused on
// every route, the UI included, and this machine's names still work.
func TestDNSRebinding(t *testing.T) {
	f := newFixture(t)
	minted := f.token(t, "dev-admin", "warden-admin")
	f.serve(t, nil, decisionlog.Options{}, Options{
		DevAdminToken: func() (string, error) { return minted, nil },
		Hosts:         []string{"localhost", "127.0.0.1", "::1"},
	})
	for _, tt := range []struct {
		host, method, path string
		want               int
	}{
		{"rebind.evil.example:8480", "POST", "/v1/dev/admin-token", 403},
		{"rebind.evil.example", "GET", "/ui/", 403},
		{"rebind.evil.example:8480", "GET", "/healthz", 403},
		{"127.0.0.1.evil.example:8480", "POST", "/v1/dev/admin-token", 403},
		{"localhost:8480", "POST", "/v1/dev/admin-token", 200},
		{"LOCALHOST:8480", "GET", "/healthz", 200},
		{"127.0.0.1:8480", "GET", "/ui/", 200},
		{"[::1]:8480", "POST", "/v1/dev/admin-token", 200},
	} {
		req := httptest.NewRequest(tt.method, "http://"+tt.host+tt.path, strings.NewReader("{}"))
		req.Host = tt.host
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Origin", "http://"+tt.host)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%s %s with Host %s = %d, want %d: %s", tt.method, tt.path, tt.host, rec.Code, tt.want, rec.Body)
		}
		if tt.want == 403 && (strings.Contains(rec.Body.String(), minted) || !strings.Contains(rec.Body.String(), "DNS-rebinding")) {
			t.Errorf("Host %s: %s", tt.host, rec.Body)
		}
	}
}
