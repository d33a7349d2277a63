package web

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/gin-gonic/gin"
)

// handleDevAdminToken answers POST /v1/dev/admin-token, served only when
// Options.DevAdminToken is set (development mode): a short-lived admin token
// for the UI's one-click sign-in. The development issuer's key never leaves
// the server; only a token does, and only to a client on this machine:
//
//   - the connection must come from a loopback address, and carry no
//     proxy header (Forwarded, X-Forwarded-For, X-Real-IP), since a proxy on
//     this machine would make any client look local;
//   - a browser request must be same-origin (Origin and Sec-Fetch-Site), so
//     another site open in the developer's browser cannot ask for one. It
//     could not read the answer anyway (no CORS), but it should not even
//     make Warden mint a token.
func (s *server) handleDevAdminToken() gin.HandlerFunc {
	return func(c *gin.Context) {
		if why := notLocal(c.Request); why != "" {
			s.writeError(c, errorf(codeForbidden, "development admin tokens are only handed to clients on this machine: "+why))
			return
		}
		tok, err := s.opts.DevAdminToken()
		if err != nil {
			s.writeError(c, err) // logged; the client sees a bare internal error
			return
		}
		s.logger.Warn("development admin token handed out", "remote", c.Request.RemoteAddr)
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, gin.H{"token": tok})
	}
}

// notLocal says why r does not come straight from this machine's own
// browser or tools, or returns "" when it does.
func notLocal(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return "the request comes from " + host + ", not a loopback address"
	}
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-IP"} {
		if r.Header.Get(h) != "" {
			return "the request came through a proxy (" + h + ")"
		}
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return "the request came from another site (Sec-Fetch-Site: " + site + ")"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return "the request came from another origin (" + origin + ")"
		}
	}
	return ""
}
