package web

import (
	"crypto/sha256"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// ClientTokenHeader carries a caller's credential for the decision API when
// Options.DecisionClients is set. It is not Authorization: that header
// carries the token being decided about, as a proxy forwards it.
const ClientTokenHeader = "Warden-Client-Token"

// maxLimiters bounds the per-client rate limiters kept at once; past it
// they are all forgotten (each starts again with a full burst), so that
// callers from many addresses cannot grow the map without end.
const maxLimiters = 10000

// decisionGuard authenticates and rate-limits callers of the decision API,
// before a body is read: an unauthenticated or flooding caller costs a
// header lookup, not a token verification, a policy evaluation and a
// decision-log entry.
type decisionGuard struct {
	clients map[[sha256.Size]byte]string // token digest -> client name; nil: no authentication
	limit   rate.Limit                   // 0: no rate limit
	burst   int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

func newDecisionGuard(clients map[string]string, limit float64, burst int) *decisionGuard {
	g := &decisionGuard{limit: rate.Limit(limit), burst: burst, limiters: map[string]*rate.Limiter{}}
	if len(clients) > 0 {
		g.clients = make(map[[sha256.Size]byte]string, len(clients))
		for token, name := range clients {
			g.clients[sha256.Sum256([]byte(token))] = name
		}
	}
	if g.burst <= 0 {
		g.burst = max(1, int(limit))
	}
	return g
}

// guardDecisions is the decision routes' middleware.
func (s *server) guardDecisions(c *gin.Context) {
	if s.guard.clients == nil && s.guard.limit == 0 {
		c.Next() // neither configured: nothing to do on the hot path
		return
	}
	s.admitClient(c, c.GetHeader(ClientTokenHeader),
		"decision API: this Warden authenticates its callers; send the client token as "+ClientTokenHeader)
}

// guardStandardAPIs is guardDecisions for the routes of the standard APIs,
// AuthZEN's and OPA's: their clients authenticate the way those APIs
// have it, Authorization: Bearer <client token>, so the client token may
// come there when Warden-Client-Token is absent. Those routes never take a
// token to decide about from that header: AuthZEN's travels in the body,
// and the OPA routes read tokens from the input only (see inputTokens).
func (s *server) guardStandardAPIs(c *gin.Context) {
	if s.guard.clients == nil && s.guard.limit == 0 {
		c.Next()
		return
	}
	credential := c.GetHeader(ClientTokenHeader)
	if credential == "" {
		credential = bearer(c.GetHeader("Authorization"))
	}
	s.admitClient(c, credential, "this Warden authenticates its callers; send the client token as Authorization: Bearer <token> or as "+ClientTokenHeader)
}

// authenticatedClient is the gin context key under which admitClient
// leaves the name of the client that authenticated.
const authenticatedClient = "warden.client"

// admitClient lets the request through when credential is a configured
// client's token (when clients are configured) and the caller is within its
// rate (when one is set); otherwise it answers 401 with unauthorized, or 429.
func (s *server) admitClient(c *gin.Context, credential, unauthorized string) {
	g := s.guard
	// The client is who authenticated, else the connection's address.
	client := ""
	if g.clients != nil {
		// A map lookup by digest: the comparison is of hashes, which
		// tells nothing about a token that does not match.
		name, ok := g.clients[sha256.Sum256([]byte(credential))]
		if !ok {
			s.writeError(c, errorf(codeUnauthorized, unauthorized))
			return
		}
		c.Set(authenticatedClient, name)
		client = "client " + name
	} else {
		host, _, err := net.SplitHostPort(c.Request.RemoteAddr)
		if err != nil {
			host = c.Request.RemoteAddr
		}
		client = "address " + host
	}
	if g.limit > 0 && !g.limiter(client).Allow() {
		c.Header("Retry-After", "1")
		s.writeError(c, errorf(codeRateLimited, fmt.Sprintf("%s sends more than %s decision requests a second; slow down", client, strconv.FormatFloat(float64(g.limit), 'f', -1, 64))))
		return
	}
	c.Next()
}

// limiter is client's rate limiter.
func (g *decisionGuard) limiter(client string) *rate.Limiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.limiters[client]
	if !ok {
		if len(g.limiters) >= maxLimiters {
			clear(g.limiters)
		}
		l = rate.NewLimiter(g.limit, g.burst)
		g.limiters[client] = l
	}
	return l
}
