package claims

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Code is the reason a token was refused: one of the token_* reason codes of
// DESIGN §5. Clients see it verbatim, so its values are part of the API.
type Code string

// The reason codes Verify can return.
const (
	// CodeMissing means no token was presented.
	CodeMissing Code = "token_missing"
	// CodeMalformed means the token is not a well-formed compact JWS with a
	// strict JSON header and payload, or breaks a structural rule (refused
	// header members, registered claims of the wrong JSON type).
	CodeMalformed Code = "token_malformed"
	// CodeTooLarge means the token is longer than tokens.max_size.
	CodeTooLarge Code = "token_too_large"
	// CodeAlgNotAllowed means the alg is "none", unknown, or not one the
	// issuer or the key may verify.
	CodeAlgNotAllowed Code = "token_alg_not_allowed"
	// CodeUnknownKey means no key of the issuer can have signed the token.
	CodeUnknownKey Code = "token_unknown_key"
	// CodeBadSignature means the signature does not verify.
	CodeBadSignature Code = "token_bad_signature"
	// CodeExpired means exp has passed, beyond the leeway.
	CodeExpired Code = "token_expired"
	// CodeNotYetValid means nbf is in the future, beyond the leeway.
	CodeNotYetValid Code = "token_not_yet_valid"
	// CodeIssuedInFuture means iat is in the future, beyond the leeway.
	CodeIssuedInFuture Code = "token_issued_in_future"
	// CodeLifetimeTooLong means exp - iat is above tokens.max_lifetime.
	CodeLifetimeTooLong Code = "token_lifetime_too_long"
	// CodeWrongIssuer means iss is missing or not a configured issuer.
	CodeWrongIssuer Code = "token_wrong_issuer"
	// CodeWrongAudience means aud is missing or names none of the issuer's
	// audiences.
	CodeWrongAudience Code = "token_wrong_audience"
	// CodeMissingClaim means exp, iat or sub is missing.
	CodeMissingClaim Code = "token_missing_claim"
	// CodeWrongType means the header typ is not the issuer's required_type.
	CodeWrongType Code = "token_wrong_type"
	// CodeWrongSubject means a valid token's sub is not the subject a
	// request names (AuthZEN's subject.id). Verify does not return it; the
	// AuthZEN routes do.
	CodeWrongSubject Code = "token_wrong_subject"
)

// defaultDescriptions are the client-facing messages used when a failure has
// nothing more specific (and still safe) to say.
var defaultDescriptions = map[Code]string{
	CodeMissing:         "no token was presented",
	CodeMalformed:       "the token is not a well-formed compact JWS",
	CodeTooLarge:        "the token is larger than the accepted maximum",
	CodeAlgNotAllowed:   "the token's signing algorithm is not accepted for its issuer or key",
	CodeUnknownKey:      "the token's signing key is not known",
	CodeBadSignature:    "the token's signature does not verify",
	CodeExpired:         "the token has expired",
	CodeNotYetValid:     "the token is not valid yet",
	CodeIssuedInFuture:  "the token's issue time is in the future",
	CodeLifetimeTooLong: "the token's lifetime is longer than the accepted maximum",
	CodeWrongIssuer:     "the token's issuer is not trusted",
	CodeWrongAudience:   "the token is not meant for this audience",
	CodeMissingClaim:    "the token lacks a required claim",
	CodeWrongType:       "the token's type is not accepted",
	CodeWrongSubject:    "the token's sub is not the subject asked about",
}

// Error is why Verify refused a token. Every failure of Verify is exactly one
// *Error, so callers branch on Code alone.
//
// Description is safe to show to the client: it never echoes token content
// or configuration. Cause carries the detail (which member, which key, what
// golang-jwt said) and belongs in the log only.
type Error struct {
	Code        Code
	Description string
	Cause       error
}

// Error renders the code, the description and the cause, for logs.
func (e *Error) Error() string {
	if e.Cause == nil {
		return string(e.Code) + ": " + e.Description
	}
	return string(e.Code) + ": " + e.Description + ": " + e.Cause.Error()
}

// Unwrap returns the cause, so errors.Is can see through to golang-jwt's and
// jwkset's sentinels in logs and tests.
func (e *Error) Unwrap() error { return e.Cause }

// fail builds an *Error. An empty description takes the code's default; the
// cause is formatted like fmt.Errorf (so it may wrap with %w) and may be
// empty.
func fail(code Code, description string, causeFormat string, args ...any) *Error {
	if description == "" {
		description = defaultDescriptions[code]
	}
	e := &Error{Code: code, Description: description}
	if causeFormat != "" {
		e.Cause = fmt.Errorf(causeFormat, args...)
	}
	return e
}

// malformed is the common case of fail: the token breaks a structural rule.
// The description names the rule, never the offending bytes.
func malformed(description string, causeFormat string, args ...any) *Error {
	return fail(CodeMalformed, description, causeFormat, args...)
}

// Clip shortens attacker-controlled text before it goes into an error or a
// log line, so the line stays of reasonable length. It cuts on a whole
// UTF-8 sequence: half a character would make the line invalid UTF-8.
func Clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// classify turns whatever golang-jwt's Parser returned into exactly one
// *Error. It is the only place that knows golang-jwt's sentinels.
//
// The validator joins every failed check into one error, so the order of the
// cases is the precedence: a failure a fresh token would not fix (audience,
// issue time) is reported before one it would (expiry), so that the client is
// not told to refresh a token that can never be accepted.
func classify(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		// Raised by our own code inside the parser (the key function).
		return e
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fail(CodeMalformed, "", "%w", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fail(CodeBadSignature, "", "%w", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fail(CodeUnknownKey, "", "%w", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fail(CodeWrongIssuer, "", "%w", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fail(CodeWrongAudience, "", "%w", err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fail(CodeMissingClaim, "", "%w", err)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail(CodeIssuedInFuture, "", "%w", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fail(CodeNotYetValid, "", "%w", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(CodeExpired, "", "%w", err)
	case errors.Is(err, jwt.ErrInvalidType):
		return fail(CodeMalformed, "", "%w", err)
	default:
		// Fail closed: an error we do not recognise still refuses the token.
		return fail(CodeMalformed, "", "unclassified verification error: %w", err)
	}
}
