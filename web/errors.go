package web

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
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
	codeForbidden        = "forbidden"
	codeInternal         = "internal"
)

// apiError is an error whose code and message are safe to show a client.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(code, message string) *apiError { return &apiError{Code: code, Message: message} }

// statusOf is the one mapping from error code to HTTP status.
func statusOf(code string) int {
	switch code {
	case codeInvalidRequest:
		return http.StatusBadRequest
	case codeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case codeUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case codeNotFound:
		return http.StatusNotFound
	case codeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case codeNotReady, codeBehind, codeUnavailable:
		return http.StatusServiceUnavailable
	case codeUnauthorized:
		return http.StatusUnauthorized
	case codeForbidden:
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

// writeError answers with the error shape. An error that is not an *apiError
// is logged with its detail and answered as a bare internal error, so no
// internal detail reaches the client.
func (s *server) writeError(c *gin.Context, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.logger.ErrorContext(c.Request.Context(), "internal error", "path", c.FullPath(), "err", err)
		ae = errorf(codeInternal, "internal error")
	}
	if ae.Code == codeUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="warden"`)
	}
	c.AbortWithStatusJSON(statusOf(ae.Code), gin.H{"error": ae})
}
