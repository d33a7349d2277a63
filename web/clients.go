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
	s.guardCaller(c, ClientTokenHeader)
}

// guardOPA is guardDecisions for the OPA routes (opa.go). A client written
// for OPA authenticates the way OPA's token authentication asks,
// "Authorization: Bearer <token>", so the client token may come there
// when Warden-Client-Token is absent. Those routes never read a token to
// decide about from that header (see inputTokens).
func (s *server) guardOPA(c *gin.Context) {
	if c.GetHeader(ClientTokenHeader) == "" {
		s.guardCaller(c, "Authorization")
		return
	}
	s.guardCaller(c, ClientTokenHeader)
}

// guardCaller authenticates the caller by the client token in header (a
// bare token in Warden-Client-Token, "Bearer <token>" in Authorization)
// and applies its rate limit.
func (s *server) guardCaller(c *gin.Context, header string) {
	g := s.guard
	if g.clients == nil && g.limit == 0 {
		c.Next() // neither configured: nothing to do on the hot path
		return
	}
	// The client is who authenticated, else the connection's address.
	client := ""
	if g.clients != nil {
		// A map lookup by digest: the comparison is of hashes, which
		// tells nothing about a token that does not match.
		token := c.GetHeader(header)
		if header != ClientTokenHeader {
			token = bearer(token)
		}
		name, ok := g.clients[sha256.Sum256([]byte(token))]
		if !ok {
			s.writeError(c, errorf(codeUnauthorized, "decision API: this Warden authenticates its callers; send the client token as "+ClientTokenHeader+guardHint(header)))
			return
		}
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

// guardHint adds the OPA routes' second way to send the client token.
func guardHint(header string) string {
	if header == ClientTokenHeader {
		return ""
	}
	return " or as Authorization: Bearer <token>, as OPA's token authentication sends it"
}
