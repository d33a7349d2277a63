package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Real proxies in front of a real Warden and a small upstream, configured
// with the snippets docs/proxies.md shows (testdata/proxies): what reaches
// the upstream, and what the client sees.

// tool finds a proxy's binary. Without it the test fails under CI, whose
// .ci/run installs it, and is skipped elsewhere.
func tool(t *testing.T, name string, more ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range more {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing; .ci/run must install it", name)
	}
	t.Skipf("needs %s (apt-get install %s)", name, name)
	return ""
}

// upstream is the API behind the proxy: it records what reaches it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

// seenRequest is a request as the upstream read it: its method, its path
// decoded and cleaned (the resource a file server or router would serve),
// the raw request URI, and the subject header.
type seenRequest struct{ Method, Path, URI, Subject string }

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{r.Method, path.Clean(r.URL.Path), r.RequestURI, r.Header.Get("X-Warden-Subject")})
		u.mu.Unlock()
		fmt.Fprintf(w, "hello %s\n", r.Header.Get("X-Warden-Subject"))
	}))
	t.Cleanup(u.Close)
	return u
}

// requests is what has reached the upstream so far.
func (u *upstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// snippet is a file of testdata/proxies with the documented addresses
// replaced: warden:8480 by Warden's, api:8080 by the upstream's.
func snippet(t *testing.T, name, warden, api string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/proxies", name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "warden:8480", warden)
	return strings.ReplaceAll(s, "api:8080", api)
}

// startNginx runs Debian's nginx with the documented server block in a
// configuration of its own (one process in the foreground, every path in a
// temporary directory), listening on a free loopback port.
func startNginx(t *testing.T, bin, warden, api string) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	server := strings.Replace(snippet(t, "nginx.conf", warden, api), "listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port), 1)
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, server)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, bin, "-p", dir, "-c", path, "-e", "stderr")
	return waitListening(t, port)
}

// startCaddy runs Debian's Caddy with the documented site, on a free
// loopback port, its admin API and automatic HTTPS off.
func startCaddy(t *testing.T, bin, warden, api string) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	site := strings.Replace(snippet(t, "Caddyfile", warden, api), ":80 {", fmt.Sprintf(":%d {", port), 1)
	conf := "{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n}\n\n" + site
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcessEnv(t, []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}, bin, "run", "--config", path, "--adapter", "caddyfile")
	return waitListening(t, port)
}

func waitListening(t *testing.T, port int) string {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitForWithin(t, 20*time.Second, func() (string, bool) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err.Error(), false
		}
		c.Close()
		return "", true
	})
	return "http://" + addr
}

// proxies are the real proxies under test, each started by a function of
// the test, Warden's address and the upstream's, that returns the proxy's
// base URL.
func proxies(t *testing.T) []struct {
	name  string
	start func(t *testing.T, warden, api string) string
} {
	nginx := tool(t, "nginx", "/usr/sbin/nginx")
	caddy := tool(t, "caddy")
	return []struct {
		name  string
		start func(t *testing.T, warden, api string) string
	}{
		{"nginx", func(t *testing.T, warden, api string) string { return startNginx(t, nginx, warden, api) }},
		{"caddy", func(t *testing.T, warden, api string) string { return startCaddy(t, caddy, warden, api) }},
	}
}

// askThrough sends a request through the proxy at base, its target sent as
// written (the path tricks below must reach the proxy unchanged), with the
// token as a Bearer credential unless empty, and header pairs.
func askThrough(t *testing.T, base, method, target, token string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(target, "//") {
		// An opaque "//x" would be sent as the absolute-form "http://x".
		req.URL.Path = target
	} else {
		req.URL.Opaque = target
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// deniedBody is what both proxies' deny bodies hold: Warden's decision
// (Caddy) or nginx's own body built from Warden's reason.
type deniedBody struct {
	Reason  string `json:"reason"`
	Refresh bool   `json:"refresh"`
}

// TestProxyNginxCaddy puts nginx and Caddy, configured as docs/proxies.md
// says, in front of an upstream and a real Warden, and asks through them:
// what reaches the upstream, and what the client is told.
func TestProxyNginxCaddy(t *testing.T) {
	real := proxies(t)
	dataDir := t.TempDir()
	base, _, _ := startWarden(t, dataDir)
	waitReady(t, base)
	warden := strings.TrimPrefix(base, "http://")
	admin := mint(t, dataDir, "--sub", "admin", "--roles", "warden-admin")

	for _, p := range real {
		t.Run(p.name, func(t *testing.T) {
			up := newUpstream(t)
			proxy := p.start(t, warden, strings.TrimPrefix(up.URL, "http://"))
			alice := "alice-" + p.name
			manager := mint(t, dataDir, "--sub", alice, "--roles", "manager")
			staff := mint(t, dataDir, "--sub", "bob", "--roles", "staff")
			var want []seenRequest // what the upstream must see, and nothing else

			// Allowed: the upstream sees the subject Warden named, not the
			// one the client sent.
			resp, body := askThrough(t, proxy, "GET", "/orders/42", manager, "X-Warden-Subject", "mallory")
			if resp.StatusCode != 200 || body != "hello "+alice+"\n" {
				t.Errorf("manager GET /orders/42 as mallory: %d %q", resp.StatusCode, body)
			}
			want = append(want, seenRequest{Method: "GET", Path: "/orders/42", Subject: alice})
			if resp, body := askThrough(t, proxy, "POST", "/orders/42/approve", manager); resp.StatusCode != 200 {
				t.Errorf("manager approves: %d %q", resp.StatusCode, body)
			}
			want = append(want, seenRequest{Method: "POST", Path: "/orders/42/approve", Subject: alice})

			// Spellings of an allowed path: Warden decides on the path the
			// upstream reads, and the upstream reads /orders/42.
			for _, target := range []string{"//orders/42", "/%6Frders/42", "/orders/./42"} {
				if resp, body := askThrough(t, proxy, "GET", target, staff); resp.StatusCode != 200 {
					t.Errorf("staff GET %s: %d %q, want 200", target, resp.StatusCode, body)
				}
				want = append(want, seenRequest{Method: "GET", Path: "/orders/42", Subject: "bob"})
			}

			// Denied and unauthenticated requests never reach the upstream.
			for _, tt := range []struct {
				name, method, target, token string
				status                      int
				challenge, reason           string // reason: X-Warden-Reason and the body's
			}{
				{"staff may not approve", "POST", "/orders/42/approve", staff, 403, "", "policy_denied"},
				{"no route", "GET", "/admin", manager, 403, "", "policy_denied"},
				{"no token", "GET", "/orders/42", "", 401, `Bearer realm="warden"`, "token_missing"},
				{"garbage token", "GET", "/orders/42", "not.a.token", 401,
					`Bearer realm="warden", error="invalid_token", error_description="token_malformed"`, "token_malformed"},
				// Path tricks: the policy decides on what the upstream
				// would read, or Warden refuses to decide (403, no reason).
				{"dot segments out of an allowed path", "POST", "/orders/42/x/../approve", staff, 403, "", "policy_denied"},
				{"dot segments to another route", "GET", "/orders/42/../../admin", manager, 403, "", "policy_denied"},
				{"encoded slash", "GET", "/orders%2F42", manager, 403, "", ""},
				{"path parameter dot-dot", "GET", "/orders/..;/admin", manager, 403, "", ""},
				{"encoded backslash", "GET", "/orders/42%5C..%5C..%5Cadmin", manager, 403, "", ""},
			} {
				resp, body := askThrough(t, proxy, tt.method, tt.target, tt.token)
				var got deniedBody
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Errorf("%s: body %q is not JSON: %v", tt.name, body, err)
				}
				if resp.StatusCode != tt.status || resp.Header.Get("WWW-Authenticate") != tt.challenge ||
					resp.Header.Get("X-Warden-Reason") != tt.reason || got.Reason != tt.reason {
					t.Errorf("%s: %d, challenge %q, X-Warden-Reason %q, body %q; want %d, %q, %q", tt.name, resp.StatusCode,
						resp.Header.Get("WWW-Authenticate"), resp.Header.Get("X-Warden-Reason"), body, tt.status, tt.challenge, tt.reason)
				}
			}

			// A permission change: alice's older token is refused as soon as
			// the publish returns, with a challenge and a body that tell the
			// client to refresh it.
			time.Sleep(1100 * time.Millisecond) // iat has whole seconds
			start := time.Now()
			status, out := adminPost(base+"/v1/events?wait=2s", admin, `{"type":"roles_changed","subject":"`+alice+`","reason":"demoted"}`)
			if status != 200 {
				t.Fatalf("publish: %d %s", status, out)
			}
			published := time.Since(start)
			resp, body = askThrough(t, proxy, "GET", "/orders/42", manager)
			elapsed := time.Since(start)
			var got deniedBody
			_ = json.Unmarshal([]byte(body), &got)
			if resp.StatusCode != 401 || resp.Header.Get("X-Warden-Reason") != "token_stale" ||
				resp.Header.Get("WWW-Authenticate") != `Bearer realm="warden", error="invalid_token", error_description="token_stale: permissions changed; refresh the token and retry"` ||
				got != (deniedBody{Reason: "token_stale", Refresh: true}) {
				t.Errorf("alice's old token after the change: %d, challenge %q, body %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
			}
			t.Logf("%s: publish returned in %d ms; the old token refused through the proxy %d ms after the publish began", p.name, published.Milliseconds(), elapsed.Milliseconds())
			t.Logf("%s: the stale token's 401 body: %s", p.name, strings.TrimSpace(body))

			time.Sleep(1100 * time.Millisecond) // a token of the change's own second is stale too
			fresh := mint(t, dataDir, "--sub", alice, "--roles", "staff")
			if resp, body := askThrough(t, proxy, "GET", "/orders/42", fresh); resp.StatusCode != 200 {
				t.Errorf("a token issued after the change: %d %q", resp.StatusCode, body)
			}
			want = append(want, seenRequest{Method: "GET", Path: "/orders/42", Subject: alice})

			seen := up.requests()
			if diff := cmp.Diff(want, seen, cmpopts.IgnoreFields(seenRequest{}, "URI")); diff != "" {
				t.Errorf("what reached the upstream (-want +got):\n%s", diff)
			}
			for _, r := range seen {
				t.Logf("%s: upstream saw %s %s", p.name, r.Method, r.URI)
			}
		})
	}
}

// TestProxyFailsClosed: when Warden cannot answer, the proxies do not let
// the request through, and when an allow carries no identity header, the
// client's own does not reach the upstream. Stand-ins play Warden here
// (one answering as a replica that is not ready does, one allowing with no
// headers, as a policy without headers would); the proxies are real.
func TestProxyFailsClosed(t *testing.T) {
	real := proxies(t)
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"code":"not_ready","message":"not ready"}}`)
	}))
	t.Cleanup(notReady.Close)
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"allow":true}`)
	}))
	t.Cleanup(bare.Close)
	unreachable := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens there

	for _, p := range real {
		t.Run(p.name, func(t *testing.T) {
			for _, tt := range []struct {
				name    string
				warden  string
				status  map[string]int // by proxy
				reaches bool
			}{
				{"warden not ready (503)", strings.TrimPrefix(notReady.URL, "http://"), map[string]int{"nginx": 500, "caddy": 503}, false},
				{"warden unreachable", unreachable, map[string]int{"nginx": 500, "caddy": 502}, false},
				{"allowed with no identity header", strings.TrimPrefix(bare.URL, "http://"), map[string]int{"nginx": 200, "caddy": 200}, true},
			} {
				up := newUpstream(t)
				proxy := p.start(t, tt.warden, strings.TrimPrefix(up.URL, "http://"))
				resp, body := askThrough(t, proxy, "GET", "/orders/42", "some.token", "X-Warden-Subject", "mallory")
				seen := up.requests()
				if resp.StatusCode != tt.status[p.name] || (len(seen) > 0) != tt.reaches {
					t.Errorf("%s: %d %q, upstream saw %+v; want %d", tt.name, resp.StatusCode, body, seen, tt.status[p.name])
				}
				for _, r := range seen {
					if r.Subject == "mallory" {
						t.Errorf("%s: the client's X-Warden-Subject reached the upstream", tt.name)
					}
					t.Logf("%s: %s: upstream saw X-Warden-Subject %q", p.name, tt.name, r.Subject)
				}
			}
		})
	}
}

// TestTraefikForwardAuthContract asks Warden as Traefik's forwardAuth
// middleware does: the original request in X-Forwarded-Method, -Proto,
// -Host, -Uri and -For, its headers (Authorization among them) copied.
// Traefik is not packaged here: this is its protocol, not Traefik itself.
func TestTraefikForwardAuthContract(t *testing.T) {
	dataDir := t.TempDir()
	base, _, _ := startWarden(t, dataDir)
	waitReady(t, base)
	ask := func(method, uri, token string) *http.Response {
		req, _ := http.NewRequest(method, base+"/v1/forward-auth", nil)
		req.Header.Set("X-Forwarded-Method", method)
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "api.example.com")
		req.Header.Set("X-Forwarded-Uri", uri)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		req.Header.Set("Accept", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	manager := mint(t, dataDir, "--sub", "alice", "--roles", "manager")
	staff := mint(t, dataDir, "--sub", "bob", "--roles", "staff")
	if resp := ask("POST", "/orders/42/approve", manager); resp.StatusCode != 200 || resp.Header.Get("X-Warden-Subject") != "alice" {
		t.Errorf("manager approves: %d, X-Warden-Subject %q", resp.StatusCode, resp.Header.Get("X-Warden-Subject"))
	}
	if resp := ask("POST", "/orders/42/approve", staff); resp.StatusCode != 403 || resp.Header.Get("X-Warden-Subject") != "" {
		t.Errorf("staff approves: %d", resp.StatusCode)
	}
	if resp := ask("GET", "/orders/42", ""); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="warden"` {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := ask("GET", "/orders/42", "not.a.token"); resp.StatusCode != 401 ||
		resp.Header.Get("WWW-Authenticate") != `Bearer realm="warden", error="invalid_token", error_description="token_malformed"` {
		t.Errorf("garbage token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := ask("GET", "/orders%2F42", manager); resp.StatusCode != 403 || resp.Header.Get("X-Warden-Subject") != "" {
		t.Errorf("encoded slash: %d", resp.StatusCode)
	}
}

// TestProxyRoutesAsData: a route added to data.warden.routes with
// PUT /v1/data/warden/routes (the whole array) is enforced at the proxy
// routes; before it, the request matches no route and is denied.
func TestProxyRoutesAsData(t *testing.T) {
	dataDir := t.TempDir()
	base, _, _ := startWarden(t, dataDir)
	waitReady(t, base)
	admin := mint(t, dataDir, "--sub", "admin", "--roles", "warden-admin")
	staff := mint(t, dataDir, "--sub", "bob", "--roles", "staff")
	ask := func() int {
		req, _ := http.NewRequest("GET", base+"/v1/forward-auth", nil)
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Host", "api.example.com")
		req.Header.Set("X-Forwarded-Uri", "/invoices/7")
		req.Header.Set("Authorization", "Bearer "+staff)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := ask(); status != 403 {
		t.Fatalf("GET /invoices/7 before the route: %d, want 403", status)
	}
	routes := `[
		{"method": "GET", "path": "/orders", "action": "orders:read", "resource": {"type": "order"}},
		{"method": "GET", "path": "/orders/{id}", "action": "orders:read", "resource": {"type": "order", "id": "{id}"}},
		{"method": "POST", "path": "/orders/{id}/approve", "action": "orders:approve", "resource": {"type": "order", "id": "{id}"}},
		{"method": "GET", "path": "/invoices/{id}", "action": "orders:read", "resource": {"type": "invoice", "id": "{id}"}}
	]`
	if status, body, _ := adminDo(t, "PUT", base+"/v1/data/warden/routes", admin, "application/json", routes); status != 200 {
		t.Fatalf("PUT /v1/data/warden/routes: %d %s", status, body)
	}
	waitForWithin(t, 10*time.Second, func() (int, bool) {
		status := ask()
		return status, status == 200
	})
}

// TestProxyDocsShowTheTestedConfigs: docs/proxies.md shows the nginx and
// Caddy configurations the tests above run, verbatim.
func TestProxyDocsShowTheTestedConfigs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/proxies.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nginx.conf", "Caddyfile"} {
		b, err := os.ReadFile(filepath.Join("../../testdata/proxies", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(doc, b) {
			t.Errorf("docs/proxies.md does not show testdata/proxies/%s verbatim", name)
		}
	}
}
