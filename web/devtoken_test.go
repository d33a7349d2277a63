package web

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
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
	f.serve(t, nil, DecisionLogOptions{}, Options{DevAdminToken: func() (string, error) { return minted, nil }})
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

	f.serve(t, nil, DecisionLogOptions{}, Options{DevAdminToken: func() (string, error) { return "", errors.New("disk on fire") }})
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
