package web

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json"

	"github.com/wardenauthz/warden/decision"
)

// The routes of OPA's REST API that Warden serves on its own engine and
// active policy set, so that a gateway written for OPA (Kong, APISIX, an
// in-house client) can ask Warden instead: POST /v1/data/{path}, POST /
// and GET /health. docs/compat.md says what is supported, what differs
// and how revocation applies.

// OPA's error codes, as its clients read them.
const (
	opaInvalidParameter  = "invalid_parameter"
	opaUndefinedDocument = "undefined_document"
	opaInternalError     = "internal_error"
	opaEvaluationMessage = "error(s) occurred while evaluating query"
)

// opaError is OPA's error shape, {"code","message","errors"}.
type opaError struct {
	Code    string           `json:"code"`
	Message string           `json:"message"`
	Errors  []opaErrorDetail `json:"errors,omitempty"`
}

type opaErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// opaWarning is OPA's "warning" member of a Data API answer.
type opaWarning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// opaDataRequest is the body of POST /v1/data/{path}. A null input is no
// input, as in OPA.
type opaDataRequest struct {
	Input *any `json:"input"`
}

// opaDataResponse is the answer of POST /v1/data/{path}: no "result" when
// the document is undefined.
type opaDataResponse struct {
	DecisionID string      `json:"decision_id"`
	Result     *any        `json:"result,omitempty"`
	Warning    *opaWarning `json:"warning,omitempty"`
}

// opaAnswer is one evaluation of an OPA route, once decided and logged.
type opaAnswer struct {
	decisionID string
	result     decision.QueryResult
}

// handleOPAData answers POST /v1/data and POST /v1/data/{path}.
func (s *server) handleOPAData() gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := refuseExplain(c); err != nil {
			s.writeOPAError(c, err)
			return
		}
		body, err := s.readOPABody(c)
		if err != nil {
			s.writeOPAError(c, err)
			return
		}
		var req opaDataRequest
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req, strictJSON); err != nil {
				s.writeOPAError(c, s.decodeError(body, err))
				return
			}
		}
		path := strings.TrimPrefix(strings.TrimPrefix(c.Request.URL.EscapedPath(), "/v1/data"), "/")
		q := decision.Query{Path: path, StrictBuiltinErrors: opaBoolParam(c, "strict-builtin-errors")}
		if req.Input != nil {
			q.Input, q.HasInput = *req.Input, true
		}
		a, err := s.queryOPA(c, q)
		if err != nil {
			s.writeOPAError(c, err)
			return
		}
		resp := opaDataResponse{DecisionID: a.decisionID}
		switch {
		case a.result.Refused != "":
			resp.Warning = &opaWarning{Code: string(a.result.Refused), Message: refusedMessage(a.result.Refused)}
		case !q.HasInput:
			resp.Warning = &opaWarning{Code: "api_usage_warning", Message: "'input' key missing from the request"}
		}
		if a.result.Defined {
			resp.Result = &a.result.Value
		}
		writeOPA(c, http.StatusOK, resp)
	}
}

// handleOPADefault answers POST /: the body is the input itself, and the
// answer the bare value of the default decision (Options.DefaultDecision),
// or 404 undefined_document when it is undefined, as OPA answers.
func (s *server) handleOPADefault() gin.HandlerFunc {
	return func(c *gin.Context) {
		body, err := s.readOPABody(c)
		if err != nil {
			s.writeOPAError(c, err)
			return
		}
		var input any // an empty body is a null input, as in OPA
		if len(body) > 0 {
			if err := json.Unmarshal(body, &input, strictJSON); err != nil {
				s.writeOPAError(c, s.decodeError(body, err))
				return
			}
		}
		a, err := s.queryOPA(c, decision.Query{Path: s.opts.DefaultDecision, Input: input, HasInput: true})
		if err != nil {
			s.writeOPAError(c, err)
			return
		}
		doc := documentName(s.opts.DefaultDecision)
		switch {
		case a.result.Refused != "":
			writeOPA(c, http.StatusNotFound, opaError{Code: opaUndefinedDocument, Message: doc + ": " + refusedMessage(a.result.Refused)})
		case !a.result.Defined:
			writeOPA(c, http.StatusNotFound, opaError{Code: opaUndefinedDocument, Message: "document undefined: " + doc})
		default:
			writeOPA(c, http.StatusOK, a.result.Value)
		}
	}
}

// handleOPAHealth answers GET /health as OPA does: 200 {} when the replica
// is ready (what /readyz says), else 500 {"error": why}. OPA's bundles and
// plugins parameters ask about parts that are Warden's readiness already
// (the policy set is the bundle, the event stream the plugin), so every
// form answers the same.
func (s *server) handleOPAHealth() gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.ready(); err != nil {
			writeOPA(c, http.StatusInternalServerError, gin.H{"error": notReadyMessage(err)})
			return
		}
		writeOPA(c, http.StatusOK, gin.H{})
	}
}

// queryOPA is the decision path of the OPA routes, as answer is the
// decision API's: it refuses while the replica cannot decide, waits for
// Warden-Min-Seq, verifies the tokens the input carries (inputTokens),
// evaluates, and records the metrics, the trace and the decision log.
// A token that does not verify, or that the ledger no longer honours,
// leaves the result undefined with the token's reason: the policy is not
// asked about a token Warden would not honour.
func (s *server) queryOPA(c *gin.Context, q decision.Query) (opaAnswer, error) {
	if err := s.canDecide(); err != nil {
		c.Header("Retry-After", "1")
		return opaAnswer{}, errorf(codeNotReady, notReadyMessage(err))
	}
	if err := s.awaitMinSeq(c); err != nil {
		return opaAnswer{}, err
	}
	ctx := c.Request.Context()
	start := s.opts.Now()
	a := opaAnswer{decisionID: newDecisionID()}
	var (
		subject string
		evalErr error
	)
	if q.HasInput {
		for _, token := range inputTokens(q.Input) {
			cl, err := s.verifier.Verify(ctx, token)
			if err != nil {
				a.result = decision.QueryResult{Refused: s.tokenReason(ctx, err), Revision: s.engine.Revision()}
				break
			}
			if subject == "" {
				subject = cl.Subject
			}
			q.Tokens = append(q.Tokens, cl)
		}
	}
	if a.result.Refused == "" {
		a.result, evalErr = s.engine.Query(ctx, q)
	}
	if errors.Is(evalErr, decision.ErrBadPath) || errors.Is(evalErr, decision.ErrBadInput) {
		return opaAnswer{}, errorf(codeInvalidRequest, evalErr.Error())
	}
	end := s.opts.Now()
	latency := end.Sub(start)
	s.metrics.latency.Observe(latency.Seconds())

	resp := decisionResponse{DecisionID: a.decisionID, Subject: subject, PolicyRevision: a.result.Revision}
	switch {
	case evalErr != nil:
		resp.Reason = decision.FailureReason(evalErr)
	case a.result.Refused != "":
		resp.Reason = a.result.Refused
	case a.result.Defined && allows(a.result.Value):
		resp.Allow, resp.Reason = true, decision.ReasonAllowed
	default:
		resp.Reason = decision.ReasonPolicyDenied
	}
	s.metrics.decisions.WithLabelValues(string(resp.Reason)).Inc()
	s.traceDecisions(ctx, []decisionResponse{resp})
	s.logDecision(&resp, documentName(q.Path), nil, c.Writer.Header().Get(requestIDHeader), end, latency)
	if evalErr != nil {
		s.logger.ErrorContext(ctx, "OPA data query failed", "path", q.Path, "decision_id", a.decisionID, "err", evalErr)
		return opaAnswer{}, &opaEvalError{reason: resp.Reason, decisionID: a.decisionID}
	}
	return a, nil
}

// documentName names the document at an OPA path as Rego does:
// warden/authz/allow is data.warden.authz.allow, "" is data.
func documentName(path string) string {
	path = strings.Trim(path, "/")
	if path == "" {
		return "data"
	}
	return "data." + strings.ReplaceAll(path, "/", ".")
}

// allows says whether an OPA result counts as allow in Warden's metrics and
// decision log: true, or an object whose allow is true.
func allows(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case map[string]any:
		b, _ := v["allow"].(bool)
		return b
	}
	return false
}

// tokenLocations are where inputTokens looks for tokens, in the input
// shapes of the gateways that ask OPA: a bare JWT at input.token, or an
// Authorization header ("Bearer <jwt>") as Kong's OPA plugin
// (input.request.http.headers), Envoy's ext_authz input as
// opa-envoy-plugin builds it (input.attributes.request.http.headers) and
// APISIX's opa plugin (input.request.headers) send it.
var tokenLocations = []struct {
	path   []string
	bearer bool
}{
	{[]string{"token"}, false},
	{[]string{"request", "http", "headers", "authorization"}, true},
	{[]string{"attributes", "request", "http", "headers", "authorization"}, true},
	{[]string{"request", "headers", "authorization"}, true},
}

// inputTokens are the JWTs an OPA input carries at tokenLocations. A
// header may be a string or, repeated, an array of strings; a value that
// is not a Bearer credential (another scheme, another type) is not
// Warden's to verify and is left to the policy.
func inputTokens(input any) []string {
	var tokens []string
	add := func(v any, isHeader bool) {
		s, ok := v.(string)
		if !ok {
			return
		}
		if isHeader {
			s = bearer(s)
		}
		if s != "" {
			tokens = append(tokens, s)
		}
	}
	for _, loc := range tokenLocations {
		v, ok := lookup(input, loc.path)
		if !ok {
			continue
		}
		if list, ok := v.([]any); ok && loc.bearer {
			for _, e := range list {
				add(e, true)
			}
			continue
		}
		add(v, loc.bearer)
	}
	return tokens
}

// lookup is the value at path in nested JSON objects.
func lookup(v any, path []string) (any, bool) {
	for _, key := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[key]; !ok {
			return nil, false
		}
	}
	return v, true
}

// refusedMessage says why a token made the result undefined.
func refusedMessage(reason decision.Reason) string {
	msg := "Warden does not honour the token in the input (" + string(reason) + "); the policy was not evaluated"
	if reason == decision.ReasonTokenStale {
		msg += "; the client should refresh its token and retry"
	}
	return msg
}

// opaEvalError is an evaluation that failed: OPA answers 500 internal_error
// with the evaluation's errors. Warden names the reason and the decision id
// whose log line has the cause, not the cause itself.
type opaEvalError struct {
	reason     decision.Reason
	decisionID string
}

func (e *opaEvalError) Error() string { return string(e.reason) }

// opaMediaTypes are the request bodies the OPA routes read as JSON, besides
// a body without Content-Type: OPA reads any body as JSON, and curl -d,
// which OPA's documentation uses, sends application/x-www-form-urlencoded.
// YAML, which OPA also reads, is refused.
var opaMediaTypes = []string{"application/json", "application/x-www-form-urlencoded"}

// readOPABody reads the body of an OPA route, which may be empty, at most
// MaxBodyBytes; without surrounding space.
func (s *server) readOPABody(c *gin.Context) ([]byte, error) {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err == nil && strings.Contains(mt, "yaml"):
			return nil, errorf(codeUnsupportedMedia, "Warden reads JSON input only, not YAML; send Content-Type application/json")
		case err != nil || !slices.Contains(opaMediaTypes, mt):
			return nil, errorf(codeUnsupportedMedia, "Content-Type must be application/json")
		}
	}
	body, err := s.readAny(c, s.opts.MaxBodyBytes)
	return bytes.TrimSpace(body), err
}

// refuseExplain refuses OPA's ?explain: Warden's explanation is
// POST /v1/explain, for admins.
func refuseExplain(c *gin.Context) error {
	for _, mode := range c.QueryArray("explain") {
		switch mode {
		case "notes", "fails", "full", "debug":
			return errorf(codeInvalidRequest, "explain is not supported on Warden's OPA Data API; an admin can use POST /v1/explain")
		}
	}
	return nil
}

// opaBoolParam reads a boolean query parameter as OPA does: present
// without a value, or any of its values "true" in any case.
func opaBoolParam(c *gin.Context, name string) bool {
	values, ok := c.GetQueryArray(name)
	if !ok {
		return false
	}
	if len(values) == 1 && values[0] == "" {
		return true
	}
	for _, v := range values {
		if strings.EqualFold(v, "true") {
			return true
		}
	}
	return false
}

// writeOPA writes v as OPA's server does (encoding/json, a final newline),
// indented with ?pretty.
func writeOPA(c *gin.Context, status int, v any) {
	var buf bytes.Buffer
	enc := stdjson.NewEncoder(&buf)
	if opaBoolParam(c, "pretty") {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		status, buf = http.StatusInternalServerError, *bytes.NewBufferString(`{"code":"internal_error","message":"cannot encode the result"}` + "\n")
	}
	c.Data(status, "application/json", buf.Bytes())
}

// writeOPAError answers an OPA route's error in OPA's shape, with the
// status Warden's one mapping gives it. Warden's codes for a request it
// cannot read become OPA's invalid_parameter; the others keep their names.
func (s *server) writeOPAError(c *gin.Context, err error) {
	var ee *opaEvalError
	if errors.As(err, &ee) {
		c.Abort()
		writeOPA(c, http.StatusInternalServerError, opaError{Code: opaInternalError, Message: opaEvaluationMessage, Errors: []opaErrorDetail{{
			Code: string(ee.reason), Message: "the policy could not be evaluated; the Warden log has the cause under decision_id " + ee.decisionID,
		}}})
		return
	}
	ae := classify(err)
	if ae.Code == codeInternal {
		s.logger.ErrorContext(c.Request.Context(), "internal error", "path", c.FullPath(), "err", err)
	}
	code := ae.Code
	switch code {
	case codeInvalidRequest, codeBodyTooLarge, codeUnsupportedMedia:
		code = opaInvalidParameter
	case codeInternal:
		code = opaInternalError
	}
	c.Abort()
	writeOPA(c, statusOf(ae.Code), opaError{Code: code, Message: ae.Message})
}
