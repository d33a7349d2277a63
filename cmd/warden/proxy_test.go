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
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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

type seenRequest struct{ method, uri, subject string }

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{r.Method, r.RequestURI, r.Header.Get("X-Warden-Subject")})
		u.mu.Unlock()
		fmt.Fprintf(w, "hello %s\n", r.Header.Get("X-Warden-Subject"))
	}))
	t.Cleanup(u.Close)
	return u
}

// last is the last request that reached the upstream, and how many did.
func (u *upstream) last() (seenRequest, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return seenRequest{}, 0
	}
	return u.seen[len(u.seen)-1], len(u.seen)
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
	dir := t.TempDir()
	port := freePort(t)
	site := strings.Replace(snippet(t, "Caddyfile", warden, api), ":80 {", fmt.Sprintf("http://127.0.0.1:%d {", port), 1)
	conf := "{\n\tadmin off\n\tauto_https off\n}\n\n" + site
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

// TestRealProxies puts nginx and Caddy, configured as docs/proxies.md
// says, in front of an upstream and a real Warden, and asks through them.
func TestRealProxies(t *testing.T) {
	nginx := tool(t, "nginx", "/usr/sbin/nginx")
	caddy := tool(t, "caddy")
	dataDir := t.TempDir()
	base, _, _ := startWarden(t, dataDir)
	waitReady(t, base)
	warden := strings.TrimPrefix(base, "http://")
	admin := mint(t, dataDir, "--sub", "admin", "--roles", "warden-admin")

	for _, p := range []struct {
		name  string
		start func(t *testing.T, bin, warden, api string) string
		bin   string
	}{{"nginx", startNginx, nginx}, {"caddy", startCaddy, caddy}} {
		t.Run(p.name, func(t *testing.T) {
			up := newUpstream(t)
			proxy := p.start(t, p.bin, warden, strings.TrimPrefix(up.URL, "http://"))
			alice := "alice-" + p.name
			manager := mint(t, dataDir, "--sub", alice, "--roles", "manager")
			staff := mint(t, dataDir, "--sub", "bob", "--roles", "staff")
			ask := func(method, uri, token string, header ...string) (*http.Response, string) {
				t.Helper()
				req, _ := http.NewRequest(method, proxy+uri, nil)
				req.URL.Opaque = uri // sent as written: the tricks below must reach the proxy unchanged
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

			// Allowed: the upstream sees the subject Warden named, not the
			// one the client sent.
			resp, body := ask("GET", "/orders/42", manager, "X-Warden-Subject", "mallory")
			got, n := up.last()
			if resp.StatusCode != 200 || n != 1 || got.subject != alice || got.uri != "/orders/42" || !strings.Contains(body, alice) {
				t.Errorf("manager GET /orders/42: %d %q; upstream saw %+v (%d requests)", resp.StatusCode, body, got, n)
			}
			if resp, _ := ask("POST", "/orders/42/approve", manager); resp.StatusCode != 200 {
				t.Errorf("manager approves: %d", resp.StatusCode)
			}
			_, reached := up.last()

			// Denied and unauthenticated requests never reach the upstream.
			for _, tt := range []struct {
				name, method, uri, token string
				status                   int
				challenge, reason        string
			}{
				{"staff may not approve", "POST", "/orders/42/approve", staff, 403, "", "policy_denied"},
				{"no route", "GET", "/admin", manager, 403, "", "policy_denied"},
				{"no token", "GET", "/orders/42", "", 401, `Bearer realm="warden"`, "token_missing"},
				{"bad token", "GET", "/orders/42", "not.a.token", 401, `error="invalid_token"`, "token_malformed"},
				{"dot segments out of an allowed path", "POST", "/orders/42/x/../approve", staff, 403, "", "policy_denied"},
				{"dot segments to another route", "GET", "/orders/42/../../admin", manager, 403, "", ""},
				{"encoded slash", "GET", "/orders%2F42", manager, 403, "", ""},
				{"path parameter dot-dot", "GET", "/orders/..;/admin", manager, 403, "", ""},
			} {
				resp, body := ask(tt.method, tt.uri, tt.token)
				if resp.StatusCode != tt.status || !strings.Contains(resp.Header.Get("WWW-Authenticate"), tt.challenge) ||
					!strings.Contains(resp.Header.Get("X-Warden-Reason"), tt.reason) {
					t.Errorf("%s: %d, challenge %q, reason %q, body %q; want %d", tt.name, resp.StatusCode,
						resp.Header.Get("WWW-Authenticate"), resp.Header.Get("X-Warden-Reason"), body, tt.status)
				}
				if _, n := up.last(); n != reached {
					t.Errorf("%s reached the upstream", tt.name)
				}
			}

			// Percent-encoding is decoded once: the policy and the
			// upstream both read /orders/42.
			if resp, _ := ask("GET", "/%6Frders/42", manager); resp.StatusCode != 200 {
				t.Errorf("GET /%%6Frders/42: %d, want 200", resp.StatusCode)
			}

			// A permission change: alice's older token is refused at once,
			// with a challenge that tells the client to refresh it.
			time.Sleep(1100 * time.Millisecond) // iat has whole seconds
			start := time.Now()
			status, out := adminPost(base+"/v1/events?wait=2s", admin, `{"type":"roles_changed","subject":"`+alice+`","reason":"demoted"}`)
			if status != 200 {
				t.Fatalf("publish: %d %s", status, out)
			}
			resp, body = ask("GET", "/orders/42", manager)
			elapsed := time.Since(start)
			challenge := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != 401 || !strings.Contains(challenge, `error_description="token_stale: permissions changed; refresh the token and retry"`) ||
				!strings.Contains(body, "token_stale") {
				t.Errorf("alice's old token after the change: %d, challenge %q, body %q", resp.StatusCode, challenge, body)
			}
			if p.name == "caddy" {
				// Caddy hands Warden's own answer to the client.
				var d struct{ Refresh bool }
				if json.Unmarshal([]byte(body), &d) != nil || !d.Refresh {
					t.Errorf("Caddy's body %q lacks Warden's refresh: true", body)
				}
			}
			t.Logf("%s: the change published and the old token refused through the proxy in %d ms", p.name, elapsed.Milliseconds())
			time.Sleep(1100 * time.Millisecond) // a token of the change's own second is stale too
			fresh := mint(t, dataDir, "--sub", alice, "--roles", "staff")
			if resp, _ := ask("GET", "/orders/42", fresh); resp.StatusCode != 200 {
				t.Errorf("a token issued after the change: %d", resp.StatusCode)
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
