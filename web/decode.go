package web

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// strictJSON is how every request body is read. A decision point behind a
// gateway must read a body exactly as the gateway and the client meant it,
// or the two can be made to disagree (a parser differential): so member
// names match exactly, not in any case as encoding/json matches them
// ({"token":A,"Token":B} was decided for B); a name twice in one object,
// an unknown member, invalid UTF-8 and data after the value are errors, not
// "the last one wins" or replaced characters. Numbers inside resource,
// context and data stay the JSON text (encoding/json's Number), so that
// Rego sees 10 as 10 and 1e400 is not rounded. This is the JSON v2 design
// (go-json-experiment/json, the proposed encoding/json/v2), whose defaults
// are these rules.
var strictJSON = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.WithUnmarshalers(json.JoinUnmarshalers(
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *any) error {
			val, err := readValue(dec)
			*v = val
			return err
		}),
		json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *map[string]any) error {
			if dec.PeekKind() != '{' {
				return json.SkipFunc // null, or the wrong kind for the default to name
			}
			val, err := readValue(dec)
			*v, _ = val.(map[string]any)
			return err
		}),
	)),
)

// readValue reads one JSON value from dec as a Go value: map[string]any,
// []any, string, encoding/json's Number, bool or nil. It is what
// strictJSON decodes a free-form value (resource, context, data) with: one
// pass over the decoder's tokens, which checks the syntax, duplicate names
// and UTF-8, instead of a reflective decoder per member.
func readValue(dec *jsontext.Decoder) (any, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '"':
		return tok.String(), nil
	case '0':
		return stdjson.Number(tok.String()), nil
	case 't', 'f':
		return tok.Bool(), nil
	case '{':
		m := make(map[string]any)
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			if m[name.String()], err = readValue(dec); err != nil {
				return nil, err
			}
		}
		_, err := dec.ReadToken()
		return m, err
	case '[':
		a := []any{}
		for dec.PeekKind() != ']' {
			v, err := readValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.ReadToken()
		return a, err
	default: // 'n'
		return nil, nil
	}
}

// decodeJSON reads a request body, a JSON object, into v. It answers every
// way a body can be wrong with an *APIError that says what to fix: a
// content type other than application/json (415), a body over the limit
// (413), malformed or ambiguous JSON, a field of the wrong type, an unknown
// field or trailing data (400).
func (s *server) decodeJSON(c *gin.Context, v any) error {
	return s.decodeBody(c, "application/json", s.opts.MaxBodyBytes, v)
}

// decodeJSONUpTo is decodeJSON for a body of at most limit bytes: the
// routes that carry a whole policy set take MaxPolicyBytes.
func (s *server) decodeJSONUpTo(c *gin.Context, v any, limit int64) error {
	return s.decodeBody(c, "application/json", limit, v)
}

// decodeBody reads a body of mediaType, at most limit bytes, strictly into
// v.
func (s *server) decodeBody(c *gin.Context, mediaType string, limit int64, v any) error {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodyBuffers.Put(buf)
		}
	}()
	if err := s.readInto(buf, c, limit, mediaType); err != nil {
		return err
	}
	data := buf.Bytes()
	if err := requireBody(data); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v, strictJSON); err != nil {
		return s.decodeError(data, err)
	}
	return nil
}

// bodyBuffers are the buffers decodeBody reads bodies into, reused: strict
// decoding copies every string and number it keeps, so nothing decoded
// points into the buffer, and a decision request allocates no body.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest buffer bodyBuffers keeps: one for a body at
// the default limit, not the megabytes of a policy set.
const maxPooledBody = DefaultMaxBodyBytes + bytes.MinRead

// readBody reads a non-empty body of at most limit bytes, of one of the
// media types (the first is the one to name in an error). A body declared
// larger than limit is refused before it is read, so that a client that
// sent Expect: 100-continue gets 413 at once rather than "100 Continue" and
// then a reset connection.
func (s *server) readBody(c *gin.Context, limit int64, mediaTypes ...string) ([]byte, error) {
	data, err := s.readAny(c, limit, mediaTypes...)
	if err == nil {
		err = requireBody(data)
	}
	if err != nil {
		return nil, err
	}
	return data, nil
}

// requireBody refuses a body that is empty or only white space.
func requireBody(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errorf(codeInvalidRequest, "request body is empty")
	}
	return nil
}

// readAny is readBody for a body that may be empty, and of any media type
// when none is given (the caller checks it).
func (s *server) readAny(c *gin.Context, limit int64, mediaTypes ...string) ([]byte, error) {
	var buf bytes.Buffer
	if err := s.readInto(&buf, c, limit, mediaTypes...); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// readInto is readAny appending to buf.
func (s *server) readInto(buf *bytes.Buffer, c *gin.Context, limit int64, mediaTypes ...string) error {
	if len(mediaTypes) > 0 {
		mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
		if err != nil || !slices.Contains(mediaTypes, mt) {
			return errorf(codeUnsupportedMedia, "Content-Type must be "+mediaTypes[0])
		}
	}
	if c.Request.ContentLength > limit {
		return tooLarge(limit)
	}
	if n := c.Request.ContentLength; n > 0 {
		buf.Grow(int(n) + bytes.MinRead) // ReadFrom wants MinRead free to read the end
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &maxBytes):
		return tooLarge(maxBytes.Limit)
	case err != nil:
		return errorf(codeInvalidRequest, "cannot read the request body: "+err.Error())
	}
	return nil
}

func tooLarge(limit int64) error {
	return errorf(codeBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
}

// decodeError says what is wrong with data, which did not decode.
func (s *server) decodeError(data []byte, err error) error {
	var (
		syntax   *jsontext.SyntacticError
		semantic *json.SemanticError
	)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(codeInvalidRequest, "request body is truncated JSON")
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &syntax):
		return errorf(codeInvalidRequest, fmt.Sprintf("member %s appears twice in one object; send each once", pointerName(syntax.JSONPointer)))
	case errors.As(err, &syntax):
		if off := syntax.ByteOffset; off > 0 && off <= int64(len(data)) && jsontext.Value(bytes.TrimSpace(data[:off])).IsValid() {
			return errorf(codeInvalidRequest, "request body has data after the JSON value")
		}
		return errorf(codeInvalidRequest, fmt.Sprintf("malformed JSON at byte %d: %v", syntax.ByteOffset, syntax.Err))
	case errors.Is(err, json.ErrUnknownName) && errors.As(err, &semantic):
		return errorf(codeInvalidRequest, "unknown field "+pointerName(semantic.JSONPointer)+" (names are case-sensitive)")
	case errors.As(err, &semantic):
		if semantic.JSONPointer == "" {
			return errorf(codeInvalidRequest, "request body must be a JSON object")
		}
		if semantic.GoType == nil || semantic.JSONKind == 0 {
			return errorf(codeInvalidRequest, fmt.Sprintf("field %s: %v", pointerName(semantic.JSONPointer), semantic.Err))
		}
		return errorf(codeInvalidRequest, fmt.Sprintf("field %s must be %s, not %s", pointerName(semantic.JSONPointer), jsonKind(semantic.GoType.Kind()), valueKind(semantic.JSONKind)))
	default:
		return errorf(codeInvalidRequest, "invalid request body: "+err.Error())
	}
}

// pointerName says where in the body a JSON pointer points: "action",
// "checks[1].action".
func pointerName(p jsontext.Pointer) string {
	name := ""
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && name != "" {
			name += "[" + tok + "]"
			continue
		}
		if name != "" {
			name += "."
		}
		name += tok
	}
	return strconv.Quote(name)
}

// valueKind names the kind of a JSON value that was sent, the way
// jsonKind names the one expected: "an array", not jsontext's "[".
func valueKind(k jsontext.Kind) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	default:
		return k.String() // null
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
