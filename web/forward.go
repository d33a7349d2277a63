package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

// Enforcement at the proxy. A proxy asks whether the request it holds may
// pass, and acts on the status of the answer:
//
//   - 200: let it through, with the policy's headers (identity headers such
//     as x-warden-subject) added upstream;
//   - 401: the token is missing, invalid, revoked or stale, with an RFC 6750
//     Bearer challenge (and a refresh hint when a new token would pass);
//   - 403: the policy denies, or the request is one Warden will not decide
//     on (an ambiguous path, a proxy it does not trust).
//
// A deny is never a 5xx: a proxy reads a 5xx as its authorizer failing.
// Only a replica that cannot decide at all answers 503 (not_ready), which
// a proxy turns into an error for the client: it fails closed.
//
// The routes are /v1/forward-auth for nginx auth_request, Traefik
// forwardAuth and Caddy forward_auth (the original request described by
// X-Forwarded-* or X-Original-* headers), and /v1/envoy/<original path> for
// Envoy's HTTP ext_authz service (the original request itself). Envoy's gRPC
// service (extauthz.go) decides through the same proxyDecide.

// ProxyOptions configures the proxy routes and Envoy's gRPC service.
type ProxyOptions struct {
	// TrustedProxies are the peers allowed to ask the proxy routes: only
	// they are believed about the original request. Default: loopback.
	TrustedProxies []netip.Prefix
	// TokenHeader is the request header that holds the token, as "Bearer
	// <token>". Default "authorization".
	TokenHeader string
	// TokenCookie names a cookie holding the bare token, read when the
	// header holds none. Default: none.
	TokenCookie string
	// RemoveAuthorization asks Envoy to drop the token's header from the
	// request it sends upstream on allow (gRPC service only: nginx, Caddy
	// and Traefik cannot be told so by the answer; see docs/proxies.md).
	RemoveAuthorization bool
}

// DefaultTrustedProxies are the loopback networks.
var DefaultTrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// DefaultTokenHeader is where the original request carries its token.
const DefaultTokenHeader = "authorization"

// envoyPrefix is the path_prefix of Envoy's HTTP ext_authz service: Envoy
// appends the original path and query to it.
const envoyPrefix = "/v1/envoy"

// Headers of the answer to a proxy.
const (
	decisionIDHeader = "X-Warden-Decision-Id"
	reasonHeader     = "X-Warden-Reason"
)

func (o *ProxyOptions) setDefaults() {
	if len(o.TrustedProxies) == 0 {
		o.TrustedProxies = DefaultTrustedProxies
	}
	if o.TokenHeader == "" {
		o.TokenHeader = DefaultTokenHeader
	}
}

// handleForwardAuth answers nginx auth_request, Traefik forwardAuth and
// Caddy forward_auth, whatever the method of the subrequest.
func (s *server) handleForwardAuth() gin.HandlerFunc {
	return func(c *gin.Context) {
		s.answerProxy(c, func() (*decision.Request, error) {
			return forwardedRequest(c.Request.Header, s.opts.Proxy.TokenHeader)
		})
	}
}

// handleEnvoyHTTP answers Envoy's HTTP ext_authz service: the request is
// the original one, its path under envoyPrefix.
func (s *server) handleEnvoyHTTP() gin.HandlerFunc {
	return func(c *gin.Context) {
		s.answerProxy(c, func() (*decision.Request, error) {
			target := strings.TrimPrefix(c.Request.RequestURI, envoyPrefix)
			return newProxyRequest(c.Request.Method, target, c.Request.Host, c.Request.Header, s.opts.Proxy.TokenHeader)
		})
	}
}

// answerProxy writes the answer to a proxy about the request original
// reads, once the peer is known to be a trusted proxy: nothing an
// untrusted peer sends is parsed.
func (s *server) answerProxy(c *gin.Context, original func() (*decision.Request, error)) {
	if !s.trustedPeer(c.Request.RemoteAddr) {
		s.untrustedProxy(c.Request.Context(), c.Request.RemoteAddr)
		s.writeError(c, errorf(codeForbidden, "this address is not a trusted proxy (proxy.trusted_proxies)"))
		return
	}
	req, reqErr := original()
	if reqErr != nil {
		// The client's request, not the proxy's configuration: logged at
		// debug, so that hostile paths cannot flood the log.
		s.logger.DebugContext(c.Request.Context(), "proxy request refused", "err", reqErr)
		s.writeError(c, errorf(codeForbidden, reqErr.Error()))
		return
	}
	token := s.proxyToken(c.Request.Header)
	v, err := s.proxyDecide(c.Request.Context(), token, req, c.Writer.Header().Get(requestIDHeader))
	if err != nil {
		c.Header("Retry-After", "1")
		s.writeError(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set(decisionIDHeader, v.resp.DecisionID)
	if v.resp.Allow {
		for name, value := range v.resp.headers {
			h.Set(name, value)
		}
	} else {
		h.Set(reasonHeader, string(v.resp.Reason))
	}
	if v.challenge != "" {
		h.Set("WWW-Authenticate", v.challenge)
	}
	c.JSON(v.status, v.resp)
}

// proxyVerdict is a decision as a proxy acts on it.
type proxyVerdict struct {
	resp      decisionResponse
	status    int    // 200, 401 or 403
	challenge string // WWW-Authenticate, on 401
}

// proxyDecide decides req with token, as the decision API does (the same
// verification, revocation check, policy, metrics, trace and decision
// log), and maps the decision to what a proxy acts on. The error is
// not_ready when the replica cannot decide.
func (s *server) proxyDecide(ctx context.Context, token string, req *decision.Request, requestID string) (proxyVerdict, error) {
	if err := s.canDecide(); err != nil {
		return proxyVerdict{}, errorf(codeNotReady, notReadyMessage(err))
	}
	start := s.opts.Now()
	cl, verifyErr := s.verifier.Verify(ctx, token)
	resp := s.decide(ctx, cl, verifyErr, check{request: req})
	end := s.opts.Now()
	latency := end.Sub(start)
	s.metrics.latency.Observe(latency.Seconds())
	results := [1]decisionResponse{resp}
	s.traceDecisions(ctx, results[:])
	s.logDecision(&resp, req.Method+" "+req.Path, nil, requestID, end, latency)

	v := proxyVerdict{resp: resp, status: http.StatusOK}
	switch {
	case resp.Allow:
	case resp.Reason == decision.Reason(claims.CodeMissing):
		// RFC 6750 3.1: a request without credentials gets no error code.
		v.status, v.challenge = http.StatusUnauthorized, `Bearer realm="warden"`
	case resp.Refresh:
		v.status = http.StatusUnauthorized
		v.challenge = fmt.Sprintf(`Bearer realm="warden", error="invalid_token", error_description="%s: permissions changed; refresh the token and retry"`, resp.Reason)
	case isTokenReason(resp.Reason):
		v.status = http.StatusUnauthorized
		v.challenge = fmt.Sprintf(`Bearer realm="warden", error="invalid_token", error_description="%s"`, resp.Reason)
	default:
		v.status = http.StatusForbidden
	}
	return v, nil
}

// isTokenReason says whether r is about the token itself (a new token could
// pass): every token_ code, revoked and stale included.
func isTokenReason(r decision.Reason) bool {
	return strings.HasPrefix(string(r), "token_")
}

// trustedPeer says whether the TCP peer at remoteAddr is a trusted proxy.
func (s *server) trustedPeer(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	return slices.ContainsFunc(s.opts.Proxy.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(addr) })
}

// proxyToken is the token of the original request: the configured header's
// Bearer credentials, or else the configured cookie; "" when neither holds
// one.
func (s *server) proxyToken(h http.Header) string {
	if v := h.Get(s.opts.Proxy.TokenHeader); v != "" {
		return bearer(v)
	}
	if name := s.opts.Proxy.TokenCookie; name != "" {
		r := http.Request{Header: http.Header{"Cookie": h.Values("Cookie")}}
		if ck, err := r.Cookie(name); err == nil && ck.Value != "" {
			return ck.Value
		}
	}
	return ""
}

// untrustedProxy warns, at most once a second, that a peer outside
// proxy.trusted_proxies asked a proxy route: a misconfiguration, or a
// probe.
func (s *server) untrustedProxy(ctx context.Context, peer string) {
	if s.proxyWarn.Allow() {
		s.logger.WarnContext(ctx, "proxy route asked by an untrusted peer; add it to proxy.trusted_proxies if it is your proxy", "peer", peer)
	}
}

// forwardedRequest reads the original request from the headers a
// forward-auth proxy sets: X-Forwarded-Method, X-Forwarded-Uri and
// X-Forwarded-Host (Traefik, Caddy; nginx by configuration), or
// X-Original-Method, X-Original-URI and X-Original-Host.
func forwardedRequest(h http.Header, tokenHeader string) (*decision.Request, error) {
	var repeated []string
	pick := func(names ...string) string {
		for _, n := range names {
			switch vs := h.Values(n); len(vs) {
			case 0:
				continue
			case 1:
				return vs[0]
			default:
				repeated = append(repeated, n)
				return ""
			}
		}
		return ""
	}
	method := pick("X-Forwarded-Method", "X-Original-Method")
	uri := pick("X-Forwarded-Uri", "X-Original-Uri")
	host := pick("X-Forwarded-Host", "X-Original-Host")
	if len(repeated) > 0 {
		return nil, fmt.Errorf("%s sent more than once: which one the upstream sees is unknown", strings.Join(repeated, ", "))
	}
	if method == "" || uri == "" || host == "" {
		return nil, errors.New("forward auth needs the original request's method, URI and host in X-Forwarded-Method, X-Forwarded-Uri and X-Forwarded-Host (or X-Original-*); see docs/proxies.md")
	}
	return newProxyRequest(method, uri, host, h, tokenHeader)
}

// newProxyRequest is the policy's input.request for the request target
// (path and query, as sent on the wire) of a request with method and host.
// The path is decoded exactly once and normalised (see cleanPath), so that
// the policy sees the resource the upstream serves, not a spelling of it.
// Header names are lower-cased; the token's header (tokenHeader),
// authorization, cookie and proxy-authorization are left out.
func newProxyRequest(method, target, host string, h http.Header, tokenHeader string) (*decision.Request, error) {
	if !validToken(method) {
		return nil, fmt.Errorf("method %q is not an HTTP method", method)
	}
	if host == "" || strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == '\\' || r == '@' }) {
		return nil, fmt.Errorf("host %q is not a host name", host)
	}
	rawPath, rawQuery, _ := strings.Cut(target, "?")
	if i := strings.IndexByte(rawQuery, '#'); i >= 0 {
		return nil, errors.New("the request target holds a fragment (#)")
	}
	p, err := cleanPath(rawPath)
	if err != nil {
		return nil, err
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("query: %v", err)
	}
	headers := make(map[string]string, len(h))
	for name, values := range h {
		lower := strings.ToLower(name)
		switch lower {
		case "authorization", "cookie", "proxy-authorization", strings.ToLower(tokenHeader):
			continue
		}
		headers[lower] = strings.Join(values, ", ")
	}
	return &decision.Request{Method: strings.ToUpper(method), Path: p, Query: query, Host: strings.ToLower(host), Headers: headers}, nil
}

// cleanPath decodes an absolute request path exactly once and normalises
// it: repeated slashes merged, "." and ".." segments resolved (a path that
// climbs above the root is refused), a trailing slash kept. It refuses what
// an upstream could read differently from the policy: an encoded slash or
// backslash (%2F, %5C), a backslash, a ";" (path parameters, which some
// servers strip), NUL and control characters, bad escapes and invalid
// UTF-8.
func cleanPath(raw string) (string, error) {
	if !strings.HasPrefix(raw, "/") {
		return "", fmt.Errorf("path %q does not start with /", clip(raw))
	}
	lower := strings.ToLower(raw)
	for _, bad := range []string{"%2f", "%5c", "\\", ";", "%00"} {
		if strings.Contains(lower, bad) {
			return "", fmt.Errorf("path %q holds %q, which servers read differently; refused", clip(raw), bad)
		}
	}
	decoded, err := url.PathUnescape(raw)
	if err != nil {
		return "", fmt.Errorf("path %q: %v", clip(raw), err)
	}
	if !utf8.ValidString(decoded) || strings.ContainsFunc(decoded, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", fmt.Errorf("path %q decodes to invalid UTF-8 or control characters", clip(raw))
	}
	var out []string
	for _, seg := range strings.Split(decoded, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) == 0 {
				return "", fmt.Errorf("path %q climbs above the root", clip(raw))
			}
			out = out[:len(out)-1]
		default:
			out = append(out, seg)
		}
	}
	p := "/" + strings.Join(out, "/")
	if len(out) > 0 && (strings.HasSuffix(decoded, "/") || strings.HasSuffix(decoded, "/.") || strings.HasSuffix(decoded, "/..")) {
		p += "/"
	}
	return p, nil
}

// validToken says whether s is an RFC 9110 token, as a method is.
func validToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}
