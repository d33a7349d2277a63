package ui

import (
	"io/fs"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// TestNoInlineCode walks every embedded HTML file and fails on anything the
// Content-Security-Policy would block or that would need 'unsafe-inline':
// inline scripts, style elements and attributes, inline event handlers,
// javascript: URLs, and assets from another origin.
func TestNoInlineCode(t *testing.T) {
	n := 0
	err := fs.WalkDir(Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".html") {
			return err
		}
		n++
		f, err := Files().Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		doc, err := html.Parse(f)
		if err != nil {
			return err
		}
		var walk func(*html.Node)
		walk = func(node *html.Node) {
			if node.Type == html.ElementNode {
				checkElement(t, path, node)
			}
			for c := node.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(doc)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no HTML file embedded")
	}
}

func checkElement(t *testing.T, path string, n *html.Node) {
	t.Helper()
	attr := map[string]string{}
	for _, a := range n.Attr {
		attr[strings.ToLower(a.Key)] = a.Val
		key := strings.ToLower(a.Key)
		switch {
		case key == "style":
			t.Errorf("%s: <%s style=%q>: inline style; use a class in style.css", path, n.Data, a.Val)
		case strings.HasPrefix(key, "on"):
			t.Errorf("%s: <%s %s=%q>: inline event handler; use addEventListener in a module", path, n.Data, a.Key, a.Val)
		case (key == "href" || key == "src" || key == "action") && strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:"):
			t.Errorf("%s: <%s %s=%q>: javascript: URL", path, n.Data, a.Key, a.Val)
		}
	}
	switch n.Data {
	case "script":
		if attr["src"] == "" {
			t.Errorf("%s: <script> without src: inline script", path)
		}
		if n.FirstChild != nil {
			t.Errorf("%s: <script src=%q> has a body", path, attr["src"])
		}
		checkLocal(t, path, n.Data, attr["src"])
	case "style":
		t.Errorf("%s: <style> element: inline style; use style.css", path)
	case "link":
		if h := attr["href"]; !strings.HasPrefix(h, "data:") {
			checkLocal(t, path, n.Data, h)
		}
	case "img", "iframe", "object", "embed":
		checkLocal(t, path, n.Data, attr["src"])
	}
}

// checkLocal fails when ref points to another origin: the UI ships every
// asset it uses.
func checkLocal(t *testing.T, path, tag, ref string) {
	t.Helper()
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(ref, "//") {
		t.Errorf("%s: <%s> refers to %q: not a file of the UI", path, tag, ref)
	}
}

// TestHeaders checks that every answer of the UI, errors included, carries
// the security headers, and that files come with the right types.
func TestHeaders(t *testing.T) {
	h := Handler(Options{DevAdminToken: true})
	for _, tt := range []struct {
		method, path string
		wantStatus   int
		wantType     string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/app.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/live.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/config.json", 200, "application/json"},
		{"GET", "/nope.js", 404, ""},
		{"POST", "/", 405, ""},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.wantType != "" && rec.Header().Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", rec.Header().Get("Content-Type"), tt.wantType)
			}
			for k, want := range map[string]string{
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if rec.Header().Get("Set-Cookie") != "" {
				t.Error("the UI set a cookie")
			}
		})
	}
	for _, tt := range []struct {
		opts Options
		want string
	}{
		{Options{}, `{"dev_admin_token":false,"dev_token":false}`},
		{Options{DevAdminToken: true, DevToken: true}, `{"dev_admin_token":true,"dev_token":true}`},
	} {
		rec := httptest.NewRecorder()
		Handler(tt.opts).ServeHTTP(rec, httptest.NewRequest("GET", "/config.json", nil))
		if got := strings.TrimSpace(rec.Body.String()); got != tt.want {
			t.Errorf("config.json with %+v = %s, want %s", tt.opts, got, tt.want)
		}
	}
}

// TestCSP pins the policy the brief asks for, directive by directive.
func TestCSP(t *testing.T) {
	want := []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
		"img-src 'self' data:", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"}
	got := strings.Split(ContentSecurityPolicy, "; ")
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("CSP = %q", ContentSecurityPolicy)
	}
}
