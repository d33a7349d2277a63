package web

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

// The OpenID AuthZEN Authorization API 1.0 (docs/authzen.md): access
// evaluation, access evaluations and the PDP metadata, on the decision
// engine the decision API uses, with the same revocation check, decision
// log and metrics.
const (
	authzenEvaluation  = "/access/v1/evaluation"
	authzenEvaluations = "/access/v1/evaluations"
	authzenMetadata    = "/.well-known/authzen-configuration"
)

// authzenJSON reads AuthZEN bodies: strictJSON's rules (exact member names,
// a name twice refused, numbers kept as their text), except that unknown
// members are ignored, as the specification requires for forward
// compatibility.
var authzenJSON = json.JoinOptions(strictJSON, json.RejectUnknownMembers(false))

// plainErrors marks a request whose errors are answered as the AuthZEN
// specification has them: the status, and a message string as the body.
const plainErrors = "warden.plain-errors"

// The AuthZEN request's entities. An entity is a pointer, so that a batch
// item without one takes the default; an identifier missing, null or ""
// is the same mistake (a 400), so it is a plain string.
type (
	azEntity struct {
		Type       string         `json:"type"`
		ID         string         `json:"id"`
		Properties map[string]any `json:"properties"`
	}
	azAction struct {
		Name       string         `json:"name"`
		Properties map[string]any `json:"properties"`
	}
	azEvaluation struct {
		Subject  *azEntity      `json:"subject"`
		Action   *azAction      `json:"action"`
		Resource *azEntity      `json:"resource"`
		Context  map[string]any `json:"context"`
	}
	azEvaluations struct {
		azEvaluation
		Evaluations []azEvaluation `json:"evaluations"`
		Options     struct {
			Semantic string `json:"evaluations_semantic"`
		} `json:"options"`
	}
)

// The evaluations semantics of AuthZEN §"Evaluations semantics".
const (
	executeAll          = "execute_all"
	denyOnFirstDeny     = "deny_on_first_deny"
	permitOnFirstPermit = "permit_on_first_permit"
)

// azDecision is one AuthZEN decision. Its context is there only when the
// caller must act on it, so that a plain permit or deny is exactly
// {"decision": …}, which interoperating PEPs compare byte for byte, and a
// PEP that rejects permits with a context it does not understand (as the
// specification allows) is never given one: the reason code of a decision
// the token decided (token_stale with refresh, token_expired, …), and the
// error of an evaluation that could not be made. A caller that sends
// Warden-Decision-Context: full gets Warden's whole explanation on every
// decision: its id, reason code, the policy's reasons and revision.
type azDecision struct {
	Decision bool       `json:"decision"`
	Context  *azContext `json:"context,omitempty"`
}

// fullContextHeader asks for the whole context on every decision.
const fullContextHeader = "Warden-Decision-Context"

type azContext struct {
	DecisionID     string          `json:"decision_id,omitempty"`
	ReasonCode     decision.Reason `json:"reason_code,omitempty"`
	Reasons        []string        `json:"reasons,omitempty"`
	PolicyRevision string          `json:"policy_revision,omitempty"`
	Refresh        bool            `json:"refresh,omitempty"`
	Error          *azError        `json:"error,omitempty"`
}

type azError struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

type azEvaluationsResponse struct {
	Evaluations []azDecision `json:"evaluations"`
}

// handleAuthZENEvaluation answers POST /access/v1/evaluation.
func (s *server) handleAuthZENEvaluation() gin.HandlerFunc {
	return func(c *gin.Context) {
		var req azEvaluation
		if err := s.decodeAuthZEN(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
		ch, token, err := s.authzenCheck(c, req)
		if err != nil {
			s.writeError(c, err)
			return
		}
		results, err := s.answerAuthZEN(c, []check{ch}, []string{token}, executeAll)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, results[0])
	}
}

// handleAuthZENEvaluations answers POST /access/v1/evaluations. Without
// evaluations it is the single evaluation; with them, the top-level
// entities are each evaluation's defaults. An evaluation that misses a
// required entity, or whose token's sub is not its subject, is denied with
// an error in its context; the others are answered.
func (s *server) handleAuthZENEvaluations() gin.HandlerFunc {
	return func(c *gin.Context) {
		var req azEvaluations
		if err := s.decodeAuthZEN(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
		semantic := req.Options.Semantic
		switch semantic {
		case "":
			semantic = executeAll
		case executeAll, denyOnFirstDeny, permitOnFirstPermit:
		default:
			s.writeError(c, errorf(codeInvalidRequest, fmt.Sprintf("options.evaluations_semantic must be %s, %s or %s, not %q", executeAll, denyOnFirstDeny, permitOnFirstPermit, semantic)))
			return
		}
		if len(req.Evaluations) == 0 {
			ch, token, err := s.authzenCheck(c, req.azEvaluation)
			if err != nil {
				s.writeError(c, err)
				return
			}
			results, err := s.answerAuthZEN(c, []check{ch}, []string{token}, executeAll)
			if err != nil {
				s.writeError(c, err)
				return
			}
			c.JSON(http.StatusOK, results[0])
			return
		}
		if len(req.Evaluations) > s.opts.MaxChecks {
			s.writeError(c, errorf(codeInvalidRequest, fmt.Sprintf("evaluations must hold at most %d evaluations, not %d", s.opts.MaxChecks, len(req.Evaluations))))
			return
		}
		checks := make([]check, len(req.Evaluations))
		tokens := make([]string, len(req.Evaluations))
		failed := make([]error, len(req.Evaluations))
		for i, item := range req.Evaluations {
			checks[i], tokens[i], failed[i] = s.authzenCheck(c, withDefaults(item, req.azEvaluation))
			var ae *APIError
			if failed[i] != nil && errors.As(failed[i], &ae) && ae.Code == codeUnauthorized {
				s.writeError(c, failed[i]) // the caller failed, not one evaluation
				return
			}
		}
		results, err := s.answerAuthZEN(c, checks, tokens, semantic, failed...)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, azEvaluationsResponse{Evaluations: results})
	}
}

// withDefaults is item with each entity it lacks taken from the request's
// top level.
func withDefaults(item, defaults azEvaluation) azEvaluation {
	if item.Subject == nil {
		item.Subject = defaults.Subject
	}
	if item.Action == nil {
		item.Action = defaults.Action
	}
	if item.Resource == nil {
		item.Resource = defaults.Resource
	}
	if item.Context == nil {
		item.Context = defaults.Context
	}
	return item
}

// decodeAuthZEN reads an AuthZEN body. Every way it can be wrong is a 400
// (a 413 when too large), as the specification has it.
func (s *server) decodeAuthZEN(c *gin.Context, v any) error {
	data, err := s.readBody(c, s.opts.MaxBodyBytes, "application/json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v, authzenJSON); err != nil {
		return s.decodeError(data, err)
	}
	return nil
}

// authzenCheck turns one evaluation into a check and the end user's token,
// if it carries one in subject.properties.token. Without a token the
// subject is asserted, which only an authenticated caller may do.
func (s *server) authzenCheck(c *gin.Context, ev azEvaluation) (check, string, error) {
	if err := ev.validate(); err != nil {
		return check{}, "", errorf(codeInvalidRequest, err.Error())
	}
	subjectProps := ev.Subject.Properties
	token := ""
	if t, present := subjectProps["token"]; present {
		str, ok := t.(string)
		if !ok || str == "" {
			return check{}, "", errorf(codeInvalidRequest, "subject.properties.token must be a non-empty string, the user's JWT")
		}
		token = str
		subjectProps = maps.Clone(subjectProps)
		delete(subjectProps, "token") // the policy sees the claims, never the token
	}
	if token == "" {
		if _, ok := c.Get(authenticatedClient); !ok {
			return check{}, "", errorf(codeUnauthorized, "a subject without subject.properties.token is asserted by its caller; only an authenticated caller may assert one (configure client tokens, send yours as Authorization: Bearer)")
		}
	}
	resource := make(map[string]any, len(ev.Resource.Properties)+2)
	maps.Copy(resource, ev.Resource.Properties)
	resource["type"], resource["id"] = ev.Resource.Type, ev.Resource.ID
	ch := check{
		Action:   ev.Action.Name,
		Resource: resource,
		Context:  ev.Context,
		authzen: &decision.AuthZEN{
			Subject:  decision.Entity{Type: ev.Subject.Type, ID: ev.Subject.ID, Properties: subjectProps},
			Action:   decision.Action{Name: ev.Action.Name, Properties: ev.Action.Properties},
			Resource: decision.Entity{Type: ev.Resource.Type, ID: ev.Resource.ID, Properties: ev.Resource.Properties},
		},
	}
	if token == "" {
		ch.subject = ev.Subject.ID
	}
	return ch, token, nil
}

// validate checks that the entities AuthZEN requires are there, each
// identifier a non-empty string.
func (ev azEvaluation) validate() error {
	var missing []string
	switch {
	case ev.Subject == nil:
		missing = append(missing, "subject")
	case ev.Subject.Type == "":
		missing = append(missing, "subject.type")
	case ev.Subject.ID == "":
		missing = append(missing, "subject.id")
	}
	switch {
	case ev.Action == nil:
		missing = append(missing, "action")
	case ev.Action.Name == "":
		missing = append(missing, "action.name")
	}
	switch {
	case ev.Resource == nil:
		missing = append(missing, "resource")
	case ev.Resource.Type == "":
		missing = append(missing, "resource.type")
	case ev.Resource.ID == "":
		missing = append(missing, "resource.id")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s required (a non-empty string for identifiers)", strings.Join(missing, ", "))
	}
	return nil
}

// answerAuthZEN decides checks in order under semantic, as answer does for
// the decision API: it refuses while the replica cannot decide, waits for
// Warden-Min-Seq, verifies each distinct token once, and records the
// latency, the metrics and the decision log. failed[i], when given and not
// nil, is why checks[i] could not be made: it is denied with that error.
// Under a short-circuiting semantic the answer ends at the evaluation that
// decides it.
func (s *server) answerAuthZEN(c *gin.Context, checks []check, tokens []string, semantic string, failed ...error) ([]azDecision, error) {
	if err := s.canDecide(); err != nil {
		c.Header("Retry-After", "1")
		return nil, errorf(codeNotReady, notReadyMessage(err))
	}
	if err := s.awaitMinSeq(c); err != nil {
		return nil, err
	}
	ctx := c.Request.Context()
	start := s.opts.Now()
	var v verifications // made at the first token
	full := c.GetHeader(fullContextHeader) == "full"
	results := make([]azDecision, 0, len(checks))
	answered := make([]decisionResponse, 0, len(checks))
	logged := make([]*check, 0, len(checks))
	for i := range checks {
		var d azDecision
		if i < len(failed) && failed[i] != nil {
			d.Context = &azContext{Error: &azError{Status: http.StatusBadRequest, Message: classify(failed[i]).Message}}
		} else {
			resp, mismatch := s.decideAuthZEN(ctx, checks[i], tokens[i], &v)
			answered = append(answered, resp)
			logged = append(logged, &checks[i])
			d.Decision = resp.Allow
			switch {
			case full:
				d.Context = &azContext{DecisionID: resp.DecisionID, ReasonCode: resp.Reason, Reasons: resp.Reasons,
					PolicyRevision: resp.PolicyRevision, Refresh: resp.Refresh, Error: mismatch}
			case resp.Reason != decision.ReasonAllowed && resp.Reason != decision.ReasonPolicyDenied:
				d.Context = &azContext{ReasonCode: resp.Reason, Refresh: resp.Refresh, Error: mismatch}
			}
		}
		results = append(results, d)
		if (semantic == denyOnFirstDeny && !d.Decision) || (semantic == permitOnFirstPermit && d.Decision) {
			break
		}
	}
	end := s.opts.Now()
	latency := end.Sub(start)
	s.metrics.latency.Observe(latency.Seconds())
	s.traceDecisions(ctx, answered)
	requestID := c.Writer.Header().Get(requestIDHeader)
	for i := range answered {
		s.logDecision(&answered[i], logged[i].Action, logged[i].Resource, requestID, end, latency)
	}
	return results, nil
}

// verifications remembers, within one request, each token's verification.
type verifications map[string]verification

type verification struct {
	claims *claims.Claims
	err    error
}

// decideAuthZEN decides one check: an asserted subject as it is, a token
// once verified. A token whose sub is not the evaluation's subject.id is
// denied without asking the policy, with an error saying so: the caller
// sent one user's token for another user.
func (s *server) decideAuthZEN(ctx context.Context, ch check, token string, v *verifications) (decisionResponse, *azError) {
	if token == "" {
		return s.decide(ctx, nil, nil, ch), nil
	}
	r, ok := (*v)[token]
	if !ok {
		r.claims, r.err = s.verifier.Verify(ctx, token)
		if *v == nil {
			*v = verifications{}
		}
		(*v)[token] = r
	}
	if r.err == nil && r.claims.Subject != ch.authzen.Subject.ID {
		mismatch := &claims.Error{Code: claims.CodeWrongSubject, Description: "subject.id is not the sub of the token in subject.properties.token"}
		return s.decide(ctx, nil, mismatch, ch), &azError{Status: http.StatusBadRequest, Message: mismatch.Description}
	}
	return s.decide(ctx, r.claims, r.err, ch), nil
}

// authzenMetadataResponse is the PDP metadata (AuthZEN §"Policy Decision
// Point Metadata"): the endpoints served. The search APIs are not.
type authzenMetadataResponse struct {
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint"`
}

// handleAuthZENMetadata answers GET /.well-known/authzen-configuration. The
// PDP's identifier is the URL the caller reached it at: its Host (which
// Options.Hosts restricts when set) and https when the connection is TLS.
func (s *server) handleAuthZENMetadata() gin.HandlerFunc {
	return func(c *gin.Context) {
		scheme := "http"
		if c.Request.TLS != nil {
			scheme = "https"
		}
		base := scheme + "://" + c.Request.Host
		c.JSON(http.StatusOK, authzenMetadataResponse{
			PolicyDecisionPoint:       base,
			AccessEvaluationEndpoint:  base + authzenEvaluation,
			AccessEvaluationsEndpoint: base + authzenEvaluations,
		})
	}
}

// authzenErrors makes the AuthZEN routes answer errors as the
// specification has them (see writeError).
func authzenErrors(c *gin.Context) { c.Set(plainErrors, true) }
