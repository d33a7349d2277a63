package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/web/decisionlog"
)

// check is one question about a token: may it do action on resource?
type check struct {
	Action   string         `json:"action"`
	Resource map[string]any `json:"resource"`
	Context  map[string]any `json:"context"`
	// request is the HTTP request a proxy asks about (proxy routes only).
	request *decision.Request
	// subject is the subject an authenticated AuthZEN caller asserts, and
	// authzen the AuthZEN request's entities (AuthZEN routes only).
	subject string
	authzen *decision.AuthZEN
}

// decisionRequest is one check with its token. It repeats check's fields
// rather than embedding check, so that decoding errors name "action", not
// "check.action".
type decisionRequest struct {
	Token    string         `json:"token"`
	Action   string         `json:"action"`
	Resource map[string]any `json:"resource"`
	Context  map[string]any `json:"context"`
}

type decisionsRequest struct {
	Token  string  `json:"token"`
	Checks []check `json:"checks"`
}

// decisionResponse is the answer to one check. A token failure is a decision
// too: allow false with the token's reason code.
type decisionResponse struct {
	DecisionID     string          `json:"decision_id"`
	Allow          bool            `json:"allow"`
	Reason         decision.Reason `json:"reason"`
	Reasons        []string        `json:"reasons"`
	Subject        string          `json:"subject"`
	PolicyRevision string          `json:"policy_revision"`
	Refresh        bool            `json:"refresh"`
	// headers are the policy's headers on allow, which a proxy forwards
	// upstream; the decision API does not return them.
	headers map[string]string
}

type decisionsResponse struct {
	Subject        string             `json:"subject"`
	PolicyRevision string             `json:"policy_revision"`
	Results        []decisionResponse `json:"results"`
}

// handleDecision answers POST /v1/decision.
func (s *server) handleDecision() gin.HandlerFunc {
	return func(c *gin.Context) {
		var req decisionRequest
		if err := s.decodeJSON(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
		if err := requireAction(req.Action); err != nil {
			s.writeError(c, err)
			return
		}
		checks := [1]check{{Action: req.Action, Resource: req.Resource, Context: req.Context}}
		var results [1]decisionResponse
		if err := s.answer(c, req.Token, checks[:], results[:]); err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(200, results[0])
	}
}

// handleDecisions answers POST /v1/decisions: one token verification, many
// checks, results in the order of the checks.
func (s *server) handleDecisions() gin.HandlerFunc {
	return func(c *gin.Context) {
		var req decisionsRequest
		if err := s.decodeJSON(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
		if len(req.Checks) == 0 || len(req.Checks) > s.opts.MaxChecks {
			s.writeError(c, errorf(codeInvalidRequest, fmt.Sprintf("checks must hold 1 to %d checks, not %d", s.opts.MaxChecks, len(req.Checks))))
			return
		}
		for i, ch := range req.Checks {
			if ch.Action == "" {
				s.writeError(c, errorf(codeInvalidRequest, fmt.Sprintf("checks[%d].action is required", i)))
				return
			}
		}
		results := make([]decisionResponse, len(req.Checks))
		if err := s.answer(c, req.Token, req.Checks, results); err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(200, decisionsResponse{Subject: results[0].Subject, PolicyRevision: results[0].PolicyRevision, Results: results})
	}
}

// answer is the decision path both decision routes share, once a request
// is read: it refuses while the replica cannot decide (503 not_ready, so a
// client or proxy retries another replica; see canDecide), waits for
// Warden-Min-Seq, verifies the token once, decides each check, and records
// the latency and the decision log. results[i] answers checks[i].
//
// A token that fails verification is logged once for the request (its
// first check), not once per check: an unauthenticated caller with a
// garbage token must not turn one request into a hundred log entries. The
// decision metrics count every check.
func (s *server) answer(c *gin.Context, token string, checks []check, results []decisionResponse) error {
	if err := s.canDecide(); err != nil {
		c.Header("Retry-After", "1")
		return errorf(codeNotReady, notReadyMessage(err))
	}
	if err := s.awaitMinSeq(c); err != nil {
		return err
	}
	ctx := c.Request.Context()
	start := s.opts.Now()
	cl, verifyErr := s.verifier.Verify(ctx, s.token(c, token))
	for i := range checks {
		results[i] = s.decide(ctx, cl, verifyErr, checks[i])
	}
	end := s.opts.Now()
	latency := end.Sub(start)
	s.metrics.latency.Observe(latency.Seconds())
	logged := checks
	if verifyErr != nil {
		logged = checks[:1]
	}
	s.traceDecisions(ctx, results)
	requestID := c.Writer.Header().Get(requestIDHeader) // echoed by requestID when valid
	for i := range logged {
		s.logDecision(&results[i], logged[i].Action, logged[i].Resource, requestID, end, latency)
	}
	return nil
}

// token is the token a request asks about: the body's, or else the request's
// own Authorization: Bearer header.
func (s *server) token(c *gin.Context, fromBody string) string {
	if fromBody != "" {
		return fromBody
	}
	return bearer(c.GetHeader("Authorization"))
}

// bearer is the token of an "Authorization: Bearer <token>" value, or ""
// for any other scheme.
func bearer(value string) string {
	scheme, token, ok := strings.Cut(value, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// decide turns a verification result and one check into the response. A
// failed verification denies with the token's reason code.
func (s *server) decide(ctx context.Context, cl *claims.Claims, verifyErr error, ch check) decisionResponse {
	var d decision.Decision
	if verifyErr != nil {
		d = decision.Decision{Reason: s.tokenReason(ctx, verifyErr), Revision: s.engine.Revision()}
	} else {
		d = s.engine.Decide(ctx, decision.Input{
			Claims:   cl,
			Subject:  ch.subject,
			Action:   ch.Action,
			Resource: ch.Resource,
			Context:  ch.Context,
			Request:  ch.request,
			AuthZEN:  ch.authzen,
		})
	}
	s.metrics.decisions.WithLabelValues(string(d.Reason)).Inc()

	resp := decisionResponse{
		DecisionID:     newDecisionID(),
		Allow:          d.Allow,
		Reason:         d.Reason,
		Reasons:        d.Reasons,
		PolicyRevision: d.Revision,
		Refresh:        d.Refresh,
		headers:        d.Headers,
	}
	if resp.Reasons == nil {
		resp.Reasons = []string{}
	}
	if cl != nil {
		resp.Subject = cl.Subject
	} else {
		resp.Subject = ch.subject
	}
	return resp
}

// logDecision hands the decision log an entry for one answered check. It
// runs on the request path, so it only fills a struct from strings that
// already exist and queues it; encoding happens on the log's goroutine.
func (s *server) logDecision(resp *decisionResponse, action string, resource map[string]any, requestID string, at time.Time, latency time.Duration) {
	if s.decisionLog == nil {
		return
	}
	s.decisionLog.Record(decisionlog.Entry{
		DecisionID:     resp.DecisionID,
		Time:           at,
		Subject:        clip(resp.Subject),
		Action:         clip(action),
		ResourceType:   resourceField(resource, "type"),
		ResourceID:     resourceField(resource, "id"),
		Allow:          resp.Allow,
		Reason:         resp.Reason,
		PolicyRevision: resp.PolicyRevision,
		LatencyMicros:  latency.Microseconds(),
		RequestID:      requestID,
	})
}

// resourceField is resource[key] for the decision log when it is a string
// or a number, and "" otherwise: the log names the resource, it does not
// copy it.
func resourceField(resource map[string]any, key string) string {
	switch v := resource[key].(type) {
	case string:
		return clip(v)
	case json.Number: // how decodeJSON reads every number
		return clip(string(v))
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return ""
	}
}

// maxLoggedField bounds each caller-chosen string in a decision-log entry.
// The body limit alone would let every entry of the queue and the history
// hold tens of kilobytes.
const maxLoggedField = 256

// clip returns s, or its first maxLoggedField bytes (ending on a whole
// UTF-8 sequence) copied, so that the entry does not keep the request's
// whole string alive.
func clip(s string) string {
	if len(s) <= maxLoggedField {
		return s
	}
	cut := maxLoggedField
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.Clone(s[:cut])
}

// tokenReason is the reason code of a failed verification. The cause goes to
// the log at debug level; the client sees only the code.
func (s *server) tokenReason(ctx context.Context, err error) decision.Reason {
	var ce *claims.Error
	if !errors.As(err, &ce) {
		// Verify promises *claims.Error; anything else still denies.
		s.logger.ErrorContext(ctx, "token verification failed unexpectedly", "err", err)
		return decision.Reason(claims.CodeMalformed)
	}
	s.logger.DebugContext(ctx, "token rejected", "reason", ce.Code, "err", ce)
	return decision.Reason(ce.Code)
}

// newDecisionID returns a time-ordered unique id (UUIDv7), so decision logs
// sort by time. NewV7 fails only when crypto/rand does, which since Go 1.24
// crashes the process instead of returning an error.
func newDecisionID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// requireAction refuses a check without an action.
func requireAction(action string) error {
	if action == "" {
		return errorf(codeInvalidRequest, "action is required, e.g. \"orders:read\"")
	}
	return nil
}
