package claims

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxNumericDate is 9999-12-31T23:59:59Z. A NumericDate beyond it (or below
// zero) is not a time any issuer meant, and refusing it keeps the float to
// time conversion away from overflow.
const maxNumericDate = 253402300799

// tokenClaims is the payload decoded once, strictly, with the registered
// claims type-checked. It implements jwt.Claims so that golang-jwt's
// validator judges exp, nbf, iat and aud on exactly the values we checked.
type tokenClaims struct {
	raw           map[string]any
	iss, sub, jti string
	hasAud        bool
	aud           jwt.ClaimStrings
	exp, nbf, iat *jwt.NumericDate
}

var _ jwt.Claims = (*tokenClaims)(nil)

// parsePayload decodes the payload and checks the JSON type of every
// registered claim: a wrong type is token_malformed, never "absent".
// (golang-jwt's MapClaims would treat an aud of the wrong type as missing and
// an exp of 0 as absent.) Presence is checked by verify, once the issuer is known.
func parsePayload(b []byte) (*tokenClaims, *Error) {
	raw, err := decodeStrict(b)
	if err != nil {
		return nil, malformed("the token payload is not a valid JSON object", "payload: %w", err)
	}
	c := &tokenClaims{raw: raw}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"iss", &c.iss}, {"sub", &c.sub}, {"jti", &c.jti}} {
		v, ok := raw[f.name]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return nil, wrongClaimType(f.name, "a string", v)
		}
		*f.dst = s
	}
	for _, f := range []struct {
		name string
		dst  **jwt.NumericDate
	}{{"exp", &c.exp}, {"nbf", &c.nbf}, {"iat", &c.iat}} {
		v, ok := raw[f.name]
		if !ok {
			continue
		}
		d, e := numericDate(f.name, v)
		if e != nil {
			return nil, e
		}
		*f.dst = d
	}
	if v, ok := raw["aud"]; ok {
		aud, e := audience(v)
		if e != nil {
			return nil, e
		}
		// Like golang-jwt, an aud of only empty strings names no audience.
		c.aud, c.hasAud = aud, slices.ContainsFunc(aud, func(a string) bool { return a != "" })
	}
	return c, nil
}

// numericDate reads a NumericDate (RFC 7519 §2): a JSON number of seconds,
// possibly fractional. jwt.NewNumericDate truncates to jwt.TimePrecision, as
// golang-jwt does for the values it parses itself.
func numericDate(name string, v any) (*jwt.NumericDate, *Error) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, wrongClaimType(name, "a number", v)
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > maxNumericDate {
		return nil, malformed(fmt.Sprintf("the claim %q is not a valid time", name),
			"%s = %s is out of range", name, Clip(n.String()))
	}
	sec, frac := math.Modf(f)
	return jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9))), nil
}

// audience reads aud: a string or an array of strings (RFC 7519 §4.1.3).
func audience(v any) (jwt.ClaimStrings, *Error) {
	switch a := v.(type) {
	case string:
		return jwt.ClaimStrings{a}, nil
	case []any:
		out := make(jwt.ClaimStrings, 0, len(a))
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, wrongClaimType("aud", "a string or an array of strings", v)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, wrongClaimType("aud", "a string or an array of strings", v)
	}
}

// permVersion reads the issuer's permission-version claim. It must be a JSON
// integer: the ledger compares versions exactly, and "7.5" or "7" (a string)
// would be a different value to different readers.
func permVersion(raw map[string]any, name string) (int64, bool, *Error) {
	if name == "" {
		return 0, false, nil
	}
	v, ok := raw[name]
	if !ok {
		return 0, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false, wrongClaimType(name, "an integer", v)
	}
	pv, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, false, malformed(fmt.Sprintf("the claim %q must be an integer", name),
			"%s = %s: %w", name, Clip(n.String()), err)
	}
	return pv, true, nil
}

func wrongClaimType(name, want string, got any) *Error {
	return malformed(fmt.Sprintf("the claim %q must be %s", name, want), "%s is %s", name, jsonType(got))
}

// jsonType names the JSON type of a decoded value, for causes.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// GetExpirationTime implements jwt.Claims.
func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.exp, nil }

// GetNotBefore implements jwt.Claims.
func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error) { return c.nbf, nil }

// GetIssuedAt implements jwt.Claims.
func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error) { return c.iat, nil }

// GetAudience implements jwt.Claims.
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error) { return c.aud, nil }

// GetIssuer implements jwt.Claims.
func (c *tokenClaims) GetIssuer() (string, error) { return c.iss, nil }

// GetSubject implements jwt.Claims.
func (c *tokenClaims) GetSubject() (string, error) { return c.sub, nil }

// UnmarshalJSON is called by golang-jwt's Parser, which decodes the payload a
// second time into the claims it is given. It deliberately does nothing: the
// payload was already decoded by decodeStrict from the very same bytes, and a
// second, laxer reading (json.Decoder accepts trailing data and keeps the
// last of duplicate names) must not be able to disagree with the first.
func (c *tokenClaims) UnmarshalJSON([]byte) error { return nil }
