// Package ui is Warden's admin web UI: static HTML, CSS and JavaScript
// modules embedded in the binary and served under /ui/. The UI holds no
// state of its own and speaks only the public admin API (/v1/...), with the
// admin token it is given as a bearer header, so everything it does can also
// be scripted.
//
// Every response carries a strict Content-Security-Policy: the pages load
// nothing but their own files, run no inline script or style, and may only
// talk to their own origin.
package ui

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response of the UI.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Options are the optional settings of the UI.
type Options struct {
	// DevAdminToken says the server hands out development admin tokens
	// (POST /v1/dev/admin-token), so the sign-in page offers one.
	DevAdminToken bool
	// DevToken says the server mints development tokens for any subject
	// (POST /v1/dev/token), so the policy playground offers to mint one.
	DevToken bool
}

// Files returns the embedded static files, rooted at the UI's top.
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return sub
}

// Handler serves the UI. It expects paths relative to the UI's root: mount
// it with http.StripPrefix("/ui", ...), so that /ui/app.js asks for /app.js.
// /config.json tells the pages what this server offers.
func Handler(opts Options) http.Handler {
	config, _ := json.Marshal(map[string]any{"dev_admin_token": opts.DevAdminToken, "dev_token": opts.DevToken})
	files := http.FileServerFS(Files())
	return secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/config.json" {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.Write(config)
			return
		}
		// The files change with the binary; no-cache makes the browser
		// revalidate (cheaply, by modification time) rather than run an old
		// module against a new API.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
}

// secure adds the security headers to every response, errors included.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}
