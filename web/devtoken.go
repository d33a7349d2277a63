package web

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

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

// devTokenRequest asks for a development token for Sub with Roles and
// extra Claims.
type devTokenRequest struct {
	Sub    string         `json:"sub"`
	Roles  []string       `json:"roles"`
	Claims map[string]any `json:"claims"`
}

// issuerClaims are set by the development issuer itself (or by the request's
// own fields); a request's extra claims may not set them, so that a minted
// token always verifies as a current token of that issuer.
var issuerClaims = []string{"iss", "aud", "iat", "exp", "nbf", "jti", "sub", "roles"}

// handleDevToken answers POST /v1/dev/token, served only when
// Options.DevToken is set (development mode): a short-lived token of the
// development issuer for any subject, roles and extra claims, for the policy
// playground of the UI. It is an admin route, and like
// /v1/dev/admin-token it answers only clients on this machine.
func (s *server) handleDevToken() gin.HandlerFunc {
	return func(c *gin.Context) {
		if why := notLocal(c.Request); why != "" {
			s.writeError(c, errorf(codeForbidden, "development tokens are only handed to clients on this machine: "+why))
			return
		}
		var req devTokenRequest
		if err := s.decodeJSON(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
		if strings.TrimSpace(req.Sub) == "" {
			s.writeError(c, errorf(codeInvalidRequest, "sub is required: the subject the token is for"))
			return
		}
		for _, name := range issuerClaims {
			if _, ok := req.Claims[name]; ok {
				s.writeError(c, errorf(codeInvalidRequest, fmt.Sprintf("claims may not set %q: the development issuer sets it (sub and roles have their own fields)", name)))
				return
			}
		}
		if req.Roles == nil {
			req.Roles = []string{} // a roles claim that is an empty array, not null
		}
		tok, err := s.opts.DevToken(req.Sub, req.Roles, req.Claims)
		if err != nil {
			s.writeError(c, err) // logged; the client sees a bare internal error
			return
		}
		s.logger.Warn("development token handed out", "subject", req.Sub, "admin", admin(c).Subject, "remote", c.Request.RemoteAddr)
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
