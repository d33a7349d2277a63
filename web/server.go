// Package web is everything HTTP in Warden: the Gin router (all routes in
// routes.go), the decision API, health and metrics, and the one mapping from
// errors to statuses.
//
// A decision request reads straight through: web decodes the JSON body,
// Verifier.Verify turns the token into claims, Engine.Decide evaluates the
// policy, and web encodes the answer. The package declares the small
// interfaces it needs of claims and decision so tests can drive the real
// implementations through the real router.
package web

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/web/decisionlog"
)

// Verifier turns a compact JWT into verified claims. Its errors are
// *claims.Error values carrying the reason code.
type Verifier interface {
	Verify(ctx context.Context, token string) (*claims.Claims, error)
	CacheStats() (hits, misses uint64)
}

// Engine decides over verified claims with the active policy set.
type Engine interface {
	Decide(ctx context.Context, in decision.Input) decision.Decision
	Admit(ctx context.Context, c *claims.Claims, action string, resource map[string]any) (decision.Reason, error)
	Revision() string
	DecisionCacheStats() (hits, misses uint64)
	// Query answers OPA's Data API: any document of the active set.
	Query(ctx context.Context, q decision.Query) (decision.QueryResult, error)
}

// Readiness is a part whose state /readyz reports: Ready returns nil when the
// part can serve, or an error saying why not.
type Readiness interface {
	Ready() error
}

var (
	_ Verifier = (*claims.Verifier)(nil)
	_ Engine   = (*decision.Engine)(nil)
)

// Options are the optional settings of the HTTP server.
type Options struct {
	// Signals, when set, receives Security Event Tokens: POST
	// /v1/signals/{transmitter} and the admin's GET /v1/signals.
	Signals Signals
	// MaxBodyBytes bounds a request body; larger bodies get 413. Default 64 KiB.
	MaxBodyBytes int64
	// Proxy configures the routes proxies ask (forward auth, Envoy).
	Proxy ProxyOptions
	// GRPCServer, when set, gets Envoy's ext_authz service
	// (envoy.service.auth.v3.Authorization), deciding as the proxy routes
	// do. The caller serves it on its own listener (proxy.grpc_listen).
	GRPCServer grpc.ServiceRegistrar
	// DefaultDecision is the path below data that OPA's POST / evaluates,
	// e.g. "warden/authz/allow". Default: DefaultDecision.
	DefaultDecision string
	// MaxChecks bounds the checks of one POST /v1/decisions. Default 100.
	MaxChecks int
	// Registerer receives Warden's metrics; /metrics serves Gatherer.
	// Default: a new registry used for both.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Readiness lists parts besides the engine and the event stream that
	// /readyz consults.
	Readiness []Readiness
	// MaxPolicyBytes bounds the bodies that carry policy text: one file sent
	// to PUT /v1/policies/{id}, and a whole set (JSON) sent to
	// PUT /v1/policies, POST /v1/policies/test and POST /v1/explain.
	// Default 1 MiB.
	MaxPolicyBytes int64
	// Policies is the policy lifecycle behind /v1/policies; without it those
	// routes are not served.
	Policies Policies
	// Drafts checks and explains policy sets that are not active (usually
	// the engine itself): with it, POST /v1/policies/test and POST
	// /v1/explain are served and GET /v1/policies names the entrypoint;
	// without it those routes are not served.
	Drafts Drafts
	// Events is the permission-change feed. Without it the admin event
	// routes are not served and Warden-Min-Seq is always behind.
	Events *Events
	// DecisionLog receives an entry for every decision answered. With it,
	// the decision stream, its tickets and the recent decisions are served
	// to admins; without it, decisions are not logged.
	DecisionLog *decisionlog.Log
	// MaxStreams bounds the decision streams open at once; one more gets
	// 503. Default 32.
	MaxStreams int
	// StreamHeartbeat is how often an idle decision stream sends a comment,
	// so proxies and clients see it alive. Default 15s.
	StreamHeartbeat time.Duration
	// Now is the clock for decision timing, decision-log times and stream
	// tickets. Default time.Now.
	Now func() time.Time
	// DevAdminToken mints a short-lived admin token in development mode.
	// With it, POST /v1/dev/admin-token hands one to clients on this
	// machine (loopback) and the UI's sign-in page offers it; nil, as in
	// production, and the route does not exist.
	DevAdminToken func() (string, error)
	// DecisionClients, when set, are the callers the decision API answers:
	// client token -> client name. A decision request must carry one of
	// the tokens as Warden-Client-Token (401 otherwise). Production
	// deployments set it (decision_api.client_tokens_file) so that nobody
	// else can make Warden verify, evaluate and log.
	DecisionClients map[string]string
	// DecisionRate limits decision requests per second per client (the
	// authenticated client, else the connection's address), with bursts of
	// DecisionBurst; over it, 429 rate_limited. 0: no limit.
	DecisionRate  float64
	DecisionBurst int
	// TracerProvider, when set, traces every request: a server span per
	// request (continuing the caller's W3C traceparent) and, on the
	// decision routes, a span per decision with its id, reason, policy
	// revision and replica. Nil, the default, adds nothing to a request.
	TracerProvider trace.TracerProvider
	// Hosts, when set, are the only host names (of the Host header, any
	// port) the server answers; a request for another name gets 403 on
	// every route. Development mode sets it to this machine's names, so
	// that a web page whose DNS name is rebound to 127.0.0.1 cannot reach
	// the development admin token or the UI through the developer's
	// browser: its requests carry its own name.
	Hosts []string
	// DevToken mints a short-lived development token for any subject, with
	// the given roles and extra claims, in development mode. With it, POST
	// /v1/dev/token hands one to an admin on this machine (loopback), for
	// the policy playground of the UI; nil, as in production, and the route
	// does not exist.
	DevToken func(sub string, roles []string, extra map[string]any) (string, error)
	// RevocationClients are the OAuth clients that may revoke single tokens
	// at POST /oauth2/revoke (RFC 7009, docs/revocation.md), publishing
	// token_revoked through Events. Without any, or without Events, the
	// route does not exist: nothing reachable without credentials revokes.
	RevocationClients []RevocationClient
}

type server struct {
	logger    *slog.Logger
	verifier  Verifier
	engine    Engine
	opts      Options
	metrics   *metrics
	readiness []Readiness
	events    *Events
	policies  Policies
	drafts    Drafts
	signals   Signals // nil: no transmitter configured

	decisionLog *decisionlog.Log // nil: decisions are not logged
	tickets     *ticketStore     // stream tickets; with decisionLog
	streams     chan struct{}    // a slot per open stream; with decisionLog
	guard       *decisionGuard
	revokers    revokers      // nil: no revocation endpoint
	proxyWarn   *rate.Limiter // untrusted peers asking proxy routes: at most one warning a second
	tracer      trace.Tracer  // nil: no tracing
	streamsMu   sync.Mutex
	streamsBy   map[string]int // open streams per admin (issuer and subject)
}

// Defaults of Options and Events.
const (
	DefaultMaxBodyBytes   = 64 << 10
	DefaultMaxPolicyBytes = 1 << 20
	DefaultMaxChecks      = 100
	DefaultMinSeqWait     = 250 * time.Millisecond
	// DefaultDecision is the allow rule of the default entrypoint
	// (decision.DefaultEntrypoint).
	DefaultDecision = decision.DefaultEntrypoint + "/allow"
)

// NewServer returns Warden's HTTP handler.
func NewServer(logger *slog.Logger, verifier Verifier, engine Engine, opts Options) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxPolicyBytes <= 0 {
		opts.MaxPolicyBytes = DefaultMaxPolicyBytes
	}
	if opts.DefaultDecision == "" {
		opts.DefaultDecision = DefaultDecision
	}
	opts.DefaultDecision = strings.Trim(opts.DefaultDecision, "/")
	if opts.MaxChecks <= 0 {
		opts.MaxChecks = DefaultMaxChecks
	}
	if opts.Registerer == nil || opts.Gatherer == nil {
		reg := prometheus.NewRegistry()
		opts.Registerer, opts.Gatherer = reg, reg
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 32
	}
	if opts.StreamHeartbeat <= 0 {
		opts.StreamHeartbeat = 15 * time.Second
	}
	opts.Proxy.setDefaults()
	if opts.Events != nil {
		ev := *opts.Events
		if ev.MinSeqWait <= 0 {
			ev.MinSeqWait = DefaultMinSeqWait
		}
		opts.Events = &ev
		opts.Readiness = append([]Readiness{ev.Stream}, opts.Readiness...)
	}
	s := &server{
		logger:    logger,
		verifier:  verifier,
		engine:    engine,
		opts:      opts,
		metrics:   newMetrics(opts.Registerer, verifier, engine),
		readiness: opts.Readiness,
		events:    opts.Events,
		policies:  opts.Policies,
		drafts:    opts.Drafts,
		signals:   opts.Signals,
		guard:     newDecisionGuard(opts.DecisionClients, opts.DecisionRate, opts.DecisionBurst),
		revokers:  newRevokers(opts.RevocationClients),
		proxyWarn: rate.NewLimiter(1, 1),
	}
	if opts.TracerProvider != nil {
		s.tracer = opts.TracerProvider.Tracer("github.com/wardenauthz/warden/web")
	}
	if s.events != nil {
		s.metrics.registerEvents(opts.Registerer, s.events.Stream)
	}
	if s.policies != nil {
		s.metrics.registerPolicies(opts.Registerer, s.policies)
	}
	if s.signals != nil {
		s.metrics.registerSignals(opts.Registerer, s.signals)
	}
	if opts.GRPCServer != nil {
		authv3.RegisterAuthorizationServer(opts.GRPCServer, extAuthz{s: s})
	}
	if opts.DecisionLog != nil {
		s.decisionLog = opts.DecisionLog
		s.tickets = newTicketStore(opts.Now)
		s.streams = make(chan struct{}, opts.MaxStreams)
		s.streamsBy = map[string]int{}
		s.metrics.registerDecisionLog(opts.Registerer, s.decisionLog, s.streams)
	}
	return s.routes()
}

func init() {
	// Release mode silences Gin's debug route dump; requests are logged by
	// logRequests through slog instead of Gin's own logger.
	gin.SetMode(gin.ReleaseMode)
}

// logRequests logs every request through slog. It logs the route pattern, not
// the raw URL, and never a header or body, so tokens never reach the log.
func (s *server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	level := slog.LevelDebug
	if c.Writer.Status() >= 500 {
		level = slog.LevelError
	}
	// Asked first, so that a request logged at no level (the decision
	// API's, at debug) costs no boxed arguments.
	if ctx := c.Request.Context(); s.logger.Enabled(ctx, level) {
		s.logger.Log(ctx, level, "http request",
			"method", c.Request.Method,
			"route", c.FullPath(),
			"status", c.Writer.Status(),
			"duration", time.Since(start),
		)
	}
}

// checkHost refuses, on every route, a request for a host name that is not
// in Options.Hosts (when set). It compares names: "localhost:8480" and
// "[::1]:9000" are the hosts localhost and ::1.
func (s *server) checkHost(c *gin.Context) {
	host := c.Request.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	for _, allowed := range s.opts.Hosts {
		if strings.EqualFold(host, allowed) {
			c.Next()
			return
		}
	}
	s.writeError(c, errorf(codeForbidden, fmt.Sprintf(
		"this development-mode Warden answers only requests for %s, not for host %q (a DNS-rebinding page would use its own name); open it as http://localhost or http://127.0.0.1",
		strings.Join(s.opts.Hosts, ", "), c.Request.Host)))
}

// requestIDHeader correlates a request across a gateway, Warden's answer
// and its decision log.
const requestIDHeader = "X-Request-Id" // canonical: header lookups do not allocate

// requestID echoes the caller's X-Request-ID, when it is one Warden can
// put in a log line (1 to 128 printable ASCII characters, no space); the
// decision log records it. Warden makes none up: a caller that sends none
// correlates by decision_id.
func (s *server) requestID(c *gin.Context) {
	if id := validRequestID(c.GetHeader(requestIDHeader)); id != "" {
		c.Header(requestIDHeader, id)
	}
	c.Next()
}

// validRequestID is id when it is a request id Warden echoes and logs (up
// to 128 printable ASCII characters without spaces), else "".
func validRequestID(id string) string {
	if len(id) > 128 || strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return ""
	}
	return id
}

// recoverPanics turns a panic in a handler into a logged 500 with the error
// shape, so one bad request never takes the process down.
func (s *server) recoverPanics(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.logger.ErrorContext(c.Request.Context(), "panic in handler", "route", c.FullPath(), "panic", r)
			c.AbortWithStatusJSON(http.StatusInternalServerError,
				gin.H{"error": errorf(codeInternal, "internal error")})
		}
	}()
	c.Next()
}
