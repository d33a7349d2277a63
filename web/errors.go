package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policyset"
)

// Error codes of the JSON error shape {"error":{"code","message"}}. Every
// error the HTTP API returns carries one of these; statusOf maps each to its
// status in one place.
const (
	codeInvalidRequest   = "invalid_request"
	codeBodyTooLarge     = "body_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeNotReady         = "not_ready"
	codeBehind           = "behind"
	codeUnavailable      = "unavailable"
	codeUnauthorized     = "unauthorized"
	codeConflict         = "conflict"
	codeReadOnly         = "read_only"
	codePolicyInvalid    = "policy_invalid"
	codeForbidden        = "forbidden"
	codeTooManyStreams   = "too_many_streams"
	codeRateLimited      = "rate_limited"
	codeInternal         = "internal"

	// OAuth's own codes (RFC 6749 §5.2, RFC 7009 §2.2.1), answered by the
	// revocation endpoint only.
	codeInvalidClient        = "invalid_client"
	codeUnauthorizedClient   = "unauthorized_client"
	codeUnsupportedTokenType = "unsupported_token_type"
)

// APIError is an error whose code and message are safe to show a client.
// Every failed call answers ErrorBody, {"error":{"code","message"}}.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Problems locate what is wrong in a refused policy set; Tests is the
	// report of its tests when they ran.
	Problems []decision.Problem   `json:"problems,omitempty"`
	Tests    *decision.TestReport `json:"tests,omitempty"`
}

// ErrorBody is the JSON body of every error answer; clients of the API
// (the warden CLI) decode it.
type ErrorBody struct {
	Error APIError `json:"error"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func errorf(code, message string) *APIError { return &APIError{Code: code, Message: message} }

// statusOf is the one mapping from error code to HTTP status.
func statusOf(code string) int {
	switch code {
	case codeInvalidRequest, codeUnauthorizedClient, codeUnsupportedTokenType:
		return http.StatusBadRequest
	case codeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case codeUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case codeNotFound:
		return http.StatusNotFound
	case codeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case codeNotReady, codeBehind, codeUnavailable, codeTooManyStreams:
		return http.StatusServiceUnavailable
	case codeUnauthorized, codeInvalidClient:
		return http.StatusUnauthorized
	case codeRateLimited:
		return http.StatusTooManyRequests
	case codeForbidden:
		return http.StatusForbidden
	case codeConflict, codeReadOnly:
		return http.StatusConflict
	case codePolicyInvalid:
		return http.StatusUnprocessableEntity
	default:
		return http.StatusInternalServerError
	}
}

// classify turns an error of the parts web uses into the error a client
// sees. Anything it does not know is an internal error, whose detail only
// the log gets.
func classify(err error) *APIError {
	var (
		ae *APIError
		pe *decision.PolicyError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &pe):
		return &APIError{Code: codePolicyInvalid, Message: "the policy set was refused; nothing was stored: " + pe.Error(), Problems: pe.Problems, Tests: pe.Tests}
	case errors.Is(err, policyset.ErrConflict):
		return errorf(codeConflict, "the policy set changed since it was read (If-Match); read it again and retry")
	case errors.Is(err, policyset.ErrReadOnly):
		return errorf(codeReadOnly, "policies come from a directory (policies.source: dir); change them there, not through the API")
	case errors.Is(err, policyset.ErrInvalid):
		return errorf(codeInvalidRequest, err.Error())
	case errors.Is(err, decision.ErrTestFilter):
		return errorf(codeInvalidRequest, "run: "+err.Error())
	case errors.Is(err, policyset.ErrNoSet):
		return errorf(codeNotFound, "no policy set is stored yet")
	}
	return errorf(codeInternal, "internal error")
}

// writeError answers with the error shape. An error that is not an *APIError
// is logged with its detail and answered as a bare internal error, so no
// internal detail reaches the client.
func (s *server) writeError(c *gin.Context, err error) {
	ae := classify(err)
	if ae.Code == codeInternal {
		s.logger.ErrorContext(c.Request.Context(), "internal error", "path", c.FullPath(), "err", err)
	}
	if ae.Code == codeUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="warden"`)
	}
	if ae.Code == codeInvalidClient {
		c.Header("WWW-Authenticate", `Basic realm="warden", charset="UTF-8"`)
	}
	if c.GetBool(oauthErrors) {
		status, body := oauthError(ae)
		c.AbortWithStatusJSON(status, body)
		return
	}
	if c.GetBool(plainErrors) {
		// AuthZEN: the status and a message string. A content type
		// other than application/json is a 400 there, not a 415.
		status := statusOf(ae.Code)
		if ae.Code == codeUnsupportedMedia {
			status = http.StatusBadRequest
		}
		c.Data(status, "text/plain; charset=utf-8", []byte(ae.Message))
		c.Abort()
		return
	}
	c.AbortWithStatusJSON(statusOf(ae.Code), ErrorBody{Error: *ae})
}

// oauthErrorBody is an error answer as OAuth has it (RFC 6749 §5.2), on
// the revocation endpoint.
type oauthErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// oauthError is ae as OAuth has it: the error codes OAuth defines keep
// their status; a body OAuth's rules refuse (wrong media type, too large)
// is a 400 invalid_request, a failure of Warden's a 5xx. The description
// keeps to the characters RFC 6749 allows in error_description.
func oauthError(ae *APIError) (int, oauthErrorBody) {
	status, code := statusOf(ae.Code), ae.Code
	switch ae.Code {
	case codeInvalidRequest, codeInvalidClient, codeUnauthorizedClient, codeUnsupportedTokenType:
	case codeUnsupportedMedia, codeBodyTooLarge:
		status, code = http.StatusBadRequest, codeInvalidRequest
	case codeUnavailable:
		code = "temporarily_unavailable"
	default:
		status, code = http.StatusInternalServerError, "server_error"
	}
	description := strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r > 0x7e:
			return -1
		}
		return r
	}, ae.Message)
	return status, oauthErrorBody{Error: code, ErrorDescription: description}
}
