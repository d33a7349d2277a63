package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/gin-gonic/gin"
)

// decodeJSON reads the request body into v. It answers every way a body can
// be wrong with an *apiError that says what to fix: a content type other than
// application/json (415), a body over the limit (413), malformed JSON, a field
// of the wrong type, an unknown field or trailing data (400).
func (s *server) decodeJSON(c *gin.Context, v any) error {
	return s.decodeJSONUpTo(c, v, s.opts.MaxBodyBytes)
}

// decodeJSONUpTo is decodeJSON for a body of at most limit bytes: the
// routes that carry a whole policy set take MaxPolicyBytes.
func (s *server) decodeJSONUpTo(c *gin.Context, v any, limit int64) error {
	mediaType, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return errorf(codeUnsupportedMedia, "Content-Type must be application/json")
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	dec := json.NewDecoder(body)
	dec.UseNumber() // resource and context keep their JSON number types for Rego
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return s.decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return s.decodeError(err)
		}
		return errorf(codeInvalidRequest, "request body has data after the JSON object")
	}
	return nil
}

func (s *server) decodeError(err error) error {
	var (
		tooLarge  *http.MaxBytesError
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return errorf(codeBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit))
	case errors.Is(err, io.EOF):
		return errorf(codeInvalidRequest, "request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(codeInvalidRequest, "request body is truncated JSON")
	case errors.As(err, &syntax):
		return errorf(codeInvalidRequest, fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, syntax))
	case errors.As(err, &typeError):
		if typeError.Field == "" {
			return errorf(codeInvalidRequest, "request body must be a JSON object")
		}
		return errorf(codeInvalidRequest, fmt.Sprintf("field %q must be %s, not %s", typeError.Field, jsonKind(typeError.Type.Kind()), typeError.Value))
	default:
		// encoding/json reports unknown fields only as text:
		// `json: unknown field "x"`.
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return errorf(codeInvalidRequest, "unknown field "+field)
		}
		return errorf(codeInvalidRequest, "invalid request body: "+err.Error())
	}
}

// jsonKind names a Go kind the way a JSON author thinks of it.
func jsonKind(kind reflect.Kind) string {
	switch kind {
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	default:
		return "a number"
	}
}
