package web

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wardenauthz/warden/web/ui"
)

// routes is the one place every route of Warden is registered.
func (s *server) routes() http.Handler {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(s.recoverPanics, s.logRequests, s.requestID)
	if len(s.opts.Hosts) > 0 {
		r.Use(s.checkHost)
	}
	if s.tracer != nil {
		r.Use(s.traceRequest)
	}

	r.GET("/healthz", s.handleHealthz())
	r.GET("/readyz", s.handleReadyz())
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{})))

	// OPA's REST API for clients written for OPA (opa.go, docs/compat.md).
	r.GET("/health", s.handleOPAHealth())
	r.POST("/", s.guardStandardAPIs, s.handleOPADefault())

	// The admin UI: static files that use only the API below.
	uiFiles := gin.WrapH(http.StripPrefix("/ui", ui.Handler(ui.Options{
		DevAdminToken: s.opts.DevAdminToken != nil,
		DevToken:      s.opts.DevToken != nil,
	})))
	r.GET("/ui", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/ui/") })
	r.GET("/ui/*path", uiFiles)
	r.HEAD("/ui/*path", uiFiles)

	v1 := r.Group("/v1")
	if s.opts.DevAdminToken != nil {
		v1.POST("/dev/admin-token", s.handleDevAdminToken())
	}
	if s.opts.DevToken != nil {
		v1.POST("/dev/token", s.requireAdmin, s.handleDevToken())
	}
	v1.Any("/forward-auth", s.handleForwardAuth())
	r.Any(envoyPrefix+"/*path", s.handleEnvoyHTTP())
	az := r.Group("", authzenErrors)
	az.GET(authzenMetadata, s.handleAuthZENMetadata())
	az.POST(authzenEvaluation, s.guardStandardAPIs, s.handleAuthZENEvaluation())
	az.POST(authzenEvaluations, s.guardStandardAPIs, s.handleAuthZENEvaluations())
	v1.POST("/decision", s.guardDecisions, s.handleDecision())
	v1.POST("/decisions", s.guardDecisions, s.handleDecisions())
	v1.POST("/data", s.guardStandardAPIs, s.handleOPAData())
	v1.POST("/data/*path", s.guardStandardAPIs, s.handleOPAData())
	if s.decisionLog != nil {
		v1.POST("/decisions/stream/tickets", s.requireAdmin, s.handleStreamTicket())
		v1.GET("/decisions/stream", s.streamAuth, s.handleStream())
		v1.GET("/decisions/recent", s.requireAdmin, s.handleRecentDecisions())
	}

	if s.events != nil && s.revokers != nil {
		// RFC 7009 token revocation for OAuth clients (revoke.go).
		r.POST(RevokePath, s.handleRevoke())
	}
	if s.events != nil {
		adm := v1.Group("", s.requireAdmin)
		adm.POST("/events", s.handlePublishEvent())
		adm.GET("/revocations", s.handleRevocations())
		adm.GET("/status", s.handleStatus())
		adm.GET("/replicas", s.handleReplicas())
	}
	if s.signals != nil {
		// Transmitters authenticate with their own Authorization header
		// (signals.authorization_file), not an admin token.
		v1.POST("/signals/:transmitter", s.handlePushSignal())
		v1.GET("/signals", s.requireAdmin, s.handleListSignals())
	}
	if s.policies != nil {
		adm := v1.Group("", s.requireAdmin)
		adm.GET("/policies", s.handleListPolicies())
		adm.PUT("/policies", s.handlePutPolicySet())
		adm.GET("/policies/*id", s.handleGetPolicy())
		adm.PUT("/policies/*id", s.handlePutPolicy())
		adm.DELETE("/policies/*id", s.handleDeletePolicy())
		adm.GET("/data/*path", s.handleGetData())
		adm.PUT("/data/*path", s.handlePutData())
		adm.PATCH("/data/*path", s.handlePatchData())
		if s.drafts != nil {
			adm.POST("/policies/test", s.handleTestPolicies())
			adm.POST("/explain", s.handleExplain())
		}
	}

	r.NoRoute(func(c *gin.Context) {
		s.writeError(c, errorf(codeNotFound, "no route "+c.Request.Method+" "+c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		// The proxy routes answer every method, WebDAV's and custom ones
		// too, not only the nine Any registers: the method is the
		// original request's (nginx, Envoy's HTTP service).
		switch p := c.Request.URL.Path; {
		case p == "/v1/forward-auth":
			s.handleForwardAuth()(c)
			return
		case strings.HasPrefix(p, envoyPrefix+"/"):
			s.handleEnvoyHTTP()(c)
			return
		}
		s.writeError(c, errorf(codeMethodNotAllowed, "method "+c.Request.Method+" is not allowed here"))
	})
	return r
}
