package claims

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds the structural checks every token passes before any key is
// looked at: the compact serialisation, the base64url alphabet, a strict JSON
// decoding and the rules on JOSE header members. They are cheap, so a hostile
// token is refused before we spend a signature verification on it, and they
// are shared with the signature-level Wycheproof test.

// compact is a token split into its three segments and decoded.
type compact struct {
	signingInput string // header "." payload, exactly as received
	header       []byte
	payload      []byte
	signature    []byte
}

// b64 is the only encoding RFC 7515 §2 allows: base64url without padding.
// Strict additionally refuses non-zero trailing bits, so every byte string
// has exactly one accepted encoding.
var b64 = base64.RawURLEncoding.Strict()

// splitCompact checks the compact serialisation (RFC 7515 §7.1) and decodes
// the three segments. It refuses anything but exactly three segments (a JWE
// has five, a JSON serialisation none), characters outside the base64url
// alphabet (including "=" padding, and the CR/LF that Go's decoder would
// otherwise skip silently), and non-canonical encodings.
func splitCompact(token string) (compact, *Error) {
	h, rest, ok1 := strings.Cut(token, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s, ".") {
		return compact{}, malformed("the token must have exactly three dot-separated segments",
			"not a compact JWS: %d segments", strings.Count(token, ".")+1)
	}
	var c compact
	var err *Error
	if c.header, err = decodeSegment("header", h); err != nil {
		return compact{}, err
	}
	if c.payload, err = decodeSegment("payload", p); err != nil {
		return compact{}, err
	}
	if c.signature, err = decodeSegment("signature", s); err != nil {
		return compact{}, err
	}
	c.signingInput = token[:len(h)+1+len(p)]
	return c, nil
}

func decodeSegment(name, text string) ([]byte, *Error) {
	if i := indexNonBase64URL(text); i >= 0 {
		return nil, malformed("the token contains a character outside the base64url alphabet",
			"%s segment: byte 0x%02x at offset %d is not base64url", name, text[i], i)
	}
	b, err := b64.DecodeString(text)
	if err != nil {
		return nil, malformed("the token is not canonical unpadded base64url", "%s segment: %w", name, err)
	}
	return b, nil
}

// indexNonBase64URL returns the offset of the first byte outside
// [A-Za-z0-9_-], or -1.
func indexNonBase64URL(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return i
		}
	}
	return -1
}

// header is the JOSE header after the rules of parseHeader.
type header struct {
	Alg string
	Kid string
	Typ string
}

// refusedHeaderMembers are header members we never honour. jwk, jku, x5u and
// x5c would let the token choose its own verification key (RFC 8725 §3.10
// and the "embedded JWK" attacks); ignoring them is allowed, but their
// presence says the sender expects them to matter, so we refuse instead.
// crit lists extensions the recipient must understand and we understand
// none (RFC 7515 §4.1.11); b64 (RFC 7797) changes what the signature covers.
var refusedHeaderMembers = []string{"jwk", "jku", "x5u", "x5c", "crit", "b64"}

// parseHeader decodes the header strictly and applies the header rules. The
// alg must be one Warden knows, never "none" in any spelling; whether this
// token may use it is for the issuer and the key to say (see usableKeys).
func parseHeader(b []byte) (header, *Error) {
	m, err := decodeStrict(b)
	if err != nil {
		return header{}, malformed("the token header is not a valid JSON object",
			"header: %w", err)
	}
	for _, name := range refusedHeaderMembers {
		if _, ok := m[name]; ok {
			return header{}, malformed(fmt.Sprintf("the token header member %q is not accepted", name),
				"header carries %q", name)
		}
	}
	var h header
	for _, f := range []struct {
		name     string
		dst      *string
		required bool
	}{{"alg", &h.Alg, true}, {"kid", &h.Kid, false}, {"typ", &h.Typ, false}} {
		v, ok := m[f.name]
		if !ok {
			if f.required {
				return header{}, malformed("the token header has no alg", "header lacks alg")
			}
			continue
		}
		s, ok := v.(string)
		if !ok {
			return header{}, malformed(fmt.Sprintf("the token header member %q must be a string", f.name),
				"header %s is %s", f.name, jsonType(v))
		}
		*f.dst = s
	}
	if strings.EqualFold(h.Alg, "none") {
		return header{}, fail(CodeAlgNotAllowed, "unsigned tokens (alg none) are never accepted",
			"header alg %q", h.Alg)
	}
	if _, ok := algBits[h.Alg]; !ok {
		return header{}, fail(CodeAlgNotAllowed, "", "unsupported alg %q", Clip(h.Alg))
	}
	return h, nil
}

// maxJSONDepth bounds nesting in header and payload. Real tokens nest a few
// levels; the bound keeps a hostile 8 KiB of brackets from costing much.
const maxJSONDepth = 32

// decodeStrict decodes a JSON object the way we want every party to read it:
// valid UTF-8 only, no lone surrogate escapes, no member name that equals
// another one in the same object case-insensitively (encoding/json would keep
// the last duplicate and match names case-insensitively when decoding into
// structs, other parsers keep the first: a token must not mean different
// things to different readers), no trailing data, numbers kept as
// json.Number so that policies see the token's own JSON types.
func decodeStrict(b []byte) (map[string]any, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("invalid UTF-8")
	}
	if err := checkSurrogateEscapes(b); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m, err := readObject(dec, 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

// readObject reads the members of an object whose "{" was just consumed.
func readObject(dec *json.Decoder, depth int) (map[string]any, error) {
	m := make(map[string]any)
	seen := make(map[string]string) // fold key -> name as written
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("object member name is %T", tok)
		}
		fk := foldKey(name)
		if prev, dup := seen[fk]; dup {
			if prev == name {
				return nil, fmt.Errorf("duplicate member %q", Clip(name))
			}
			return nil, fmt.Errorf("member %q and %q differ only in case", Clip(prev), Clip(name))
		}
		seen[fk] = name
		v, err := readValue(dec, depth)
		if err != nil {
			return nil, err
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing "}"
		return nil, err
	}
	return m, nil
}

// readValue reads one JSON value.
func readValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= maxJSONDepth {
		return nil, fmt.Errorf("JSON nested deeper than %d", maxJSONDepth)
	}
	switch d {
	case '{':
		return readObject(dec, depth+1)
	case '[':
		a := []any{}
		for dec.More() {
			v, err := readValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		if _, err := dec.Token(); err != nil { // the closing "]"
			return nil, err
		}
		return a, nil
	default:
		return nil, fmt.Errorf("unexpected %v", d)
	}
}

// foldKey maps a member name to a key that is equal for two names exactly
// when strings.EqualFold says they are: each rune becomes the smallest rune of
// its Unicode simple case-folding orbit. That catches "ALG" against "alg" and
// also "ſub" (long s) or "\u212Aid" (Kelvin sign) against "sub" and "kid".
func foldKey(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return strings.Map(foldRune, s)
		}
	}
	// ASCII: the smallest rune of a letter's orbit is its upper case.
	return strings.ToUpper(s)
}

func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}

// checkSurrogateEscapes refuses \u escapes that encode half of a UTF-16
// surrogate pair without the other half. encoding/json would decode them to
// U+FFFD while other parsers fail or keep them, so the same token would carry
// different strings for different readers. A backslash outside a string is
// invalid JSON anyway, so the scan does not need to track string state.
func checkSurrogateEscapes(b []byte) error {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 < len(b) && b[i+1] != 'u' {
			i++ // a two-byte escape such as \\ or \"
			continue
		}
		r, ok := hex4(b, i+2)
		switch {
		case !ok:
			continue // malformed escape: the JSON decoder will refuse it
		case 0xDC00 <= r && r <= 0xDFFF:
			return errors.New("lone low surrogate escape")
		case 0xD800 <= r && r <= 0xDBFF:
			if i+7 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
				return errors.New("lone high surrogate escape")
			}
			lo, ok := hex4(b, i+8)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return errors.New("high surrogate escape without its low half")
			}
			i += 11
		default:
			i += 5
		}
	}
	return nil
}

// hex4 parses four hex digits at b[at:].
func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
