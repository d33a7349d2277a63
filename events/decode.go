package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Decode decodes one JSON event strictly without validating its content, so
// that an API can fill in id, v and at before Publish validates. It refuses
// documents over MaxEventBytes, invalid UTF-8 or JSON, anything but one
// object, unknown, duplicate or case-variant field names (names must be
// written plainly, without escapes), null values and values of the wrong
// JSON type. Errors wrap ErrInvalidEvent.
//
// encoding/json alone would accept "Subject" for "subject", keep the last of
// two "subject" members and read null as absent; each of those is a mistake
// in a publisher that is better reported than guessed at.
func Decode(data []byte) (Event, error) {
	if len(data) > MaxEventBytes {
		return Event{}, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrInvalidEvent, len(data), MaxEventBytes)
	}
	if !utf8.Valid(data) {
		return Event{}, fmt.Errorf("%w: not valid UTF-8", ErrInvalidEvent)
	}
	// Unmarshal validates the JSON (one pass instead of json.Valid and
	// then Unmarshal); the members are checked on valid JSON only, and their
	// errors win over a type error, which may be about a case variant.
	var w wireEvent
	uerr := json.Unmarshal(data, &w)
	var te *json.UnmarshalTypeError
	if uerr != nil && !errors.As(uerr, &te) {
		if i := skipSpace(data, 0); i < len(data) && data[i] == '{' {
			return Event{}, fmt.Errorf("%w: malformed JSON: %v", ErrInvalidEvent, uerr)
		}
		return Event{}, fmt.Errorf("%w: not a JSON object", ErrInvalidEvent)
	}
	seen, err := checkMembers(data)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if uerr != nil {
		if te.Field == "" {
			return Event{}, fmt.Errorf("%w: not a JSON object", ErrInvalidEvent)
		}
		return Event{}, fmt.Errorf("%w: %s: want %s", ErrInvalidEvent, te.Field, wantType(te.Field))
	}
	return w.event(seen)
}

// wireEvent is the JSON form; times stay strings so that a bad one gets an
// error naming the field and the expected format.
type wireEvent struct {
	V           int64  `json:"v"`
	ID          string `json:"id"`
	Type        string `json:"type"`
	Subject     string `json:"subject"`
	Issuer      string `json:"issuer"`
	At          string `json:"at"`
	JTI         string `json:"jti"`
	ExpiresAt   string `json:"expires_at"`
	PermVersion int64  `json:"perm_version"`
	Actor       string `json:"actor"`
	Reason      string `json:"reason"`
}

func (w *wireEvent) event(seen fieldSet) (Event, error) {
	e := Event{
		V: int(w.V), ID: w.ID, Type: Type(w.Type), Subject: w.Subject, Issuer: w.Issuer,
		JTI: w.JTI, PermVersion: w.PermVersion, Actor: w.Actor, Reason: w.Reason,
	}
	if w.V != int64(e.V) {
		e.V = -1 // does not fit an int: unsupported, whatever it was
	}
	var err error
	if seen.has(fAt) {
		if e.At, err = parseTime("at", w.At); err != nil {
			return Event{}, err
		}
	}
	if seen.has(fExpiresAt) {
		if e.ExpiresAt, err = parseTime("expires_at", w.ExpiresAt); err != nil {
			return Event{}, err
		}
	}
	return e, nil
}

func parseTime(name, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: unparsable time %q, want RFC 3339 such as 2026-11-23T10:00:00Z", ErrInvalidEvent, name, truncate(s, 64))
	}
	return t, nil
}

func wantType(field string) string {
	switch field {
	case "v", "perm_version":
		return "an integer"
	case "at", "expires_at":
		return "an RFC 3339 time string"
	}
	return "a string"
}

// field identifies a member of the event object.
type field uint8

const (
	fV field = iota
	fID
	fType
	fSubject
	fIssuer
	fAt
	fJTI
	fExpiresAt
	fPermVersion
	fActor
	fReason
)

// fieldIndex maps the exact JSON names of schema version 1.
var fieldIndex = map[string]field{
	"v": fV, "id": fID, "type": fType, "subject": fSubject, "issuer": fIssuer, "at": fAt,
	"jti": fJTI, "expires_at": fExpiresAt, "perm_version": fPermVersion, "actor": fActor, "reason": fReason,
}

const fieldList = "v, id, type, subject, issuer, at, jti, expires_at, perm_version, actor, reason"

type fieldSet uint16

func (s fieldSet) has(f field) bool { return s&(1<<f) != 0 }
func (s *fieldSet) add(f field)     { *s |= 1 << f }

// checkMembers walks the top level of data, which must be valid JSON, and
// checks that it is an object whose member names are known, written
// exactly, each once, and whose values are not null. It returns the members
// present.
func checkMembers(data []byte) (seen fieldSet, err error) {
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return 0, errors.New("not a JSON object")
	}
	i++
	for {
		i = skipSpace(data, i)
		switch data[i] {
		case '}':
			return seen, nil
		case ',':
			i++
			continue
		}
		end := stringEnd(data, i)
		name := data[i+1 : end-1]
		f, ok := fieldIndex[string(name)]
		if !ok {
			return 0, fmt.Errorf("unknown field %q (schema version %d has %s)", truncate(string(name), 64), Version, fieldList)
		}
		if seen.has(f) {
			return 0, fmt.Errorf("duplicate field %q", name)
		}
		seen.add(f)
		i = skipSpace(data, end) + 1 // past the colon
		i = skipSpace(data, i)
		if data[i] == 'n' {
			return 0, fmt.Errorf("%s: null is not allowed; leave the field out", name)
		}
		i = skipValue(data, i)
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string starting at data[i] == '"'.
func stringEnd(data []byte, i int) int {
	for j := i + 1; ; j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
}

// skipValue returns the index after the JSON value starting at data[i].
func skipValue(data []byte, i int) int {
	depth := 0
	for {
		switch data[i] {
		case '"':
			i = stringEnd(data, i)
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i
			}
			i++
		default:
			i++
		}
		if depth == 0 && (i >= len(data) || data[i] == ',' || data[i] == '}' || data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
			return i
		}
	}
}
