// Package claims verifies compact JWTs into typed claims.
//
// It is the first step of Warden's request path: web decodes a request,
// claims.Verifier.Verify turns the bearer token into Claims (or an *Error
// carrying exactly one reason code), and decision.Engine.Decide evaluates the
// policy over them. Verification is local: keys come from configuration
// (JWKS URLs, static PEM/JWK files, or an HMAC secret for development) and are
// pinned to their own algorithm. This package imports no other Warden package.
//
// Verification refuses cheaply first (size, structure, strict JSON, header
// rules), then picks the issuer by the unverified iss and the key by kid,
// lets golang-jwt check the signature and the registered claims, and checks
// what golang-jwt does not (lifetime, typ). Successful verifications are
// cached by the SHA-256 of the token until the token expires or its key
// leaves the JWKS. Revocation is not decided here: decision asks its ledger
// on every request.
package claims

import "time"

// Header is the part of the JOSE header that policies may see.
type Header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

// Claims is a verified token. Verify may hand the same *Claims to several
// callers (it is cached), so it is read-only, Raw and Audience included.
type Claims struct {
	Subject   string
	Issuer    string
	Audience  []string
	IssuedAt  time.Time
	ExpiresAt time.Time
	NotBefore time.Time // zero when the token has no nbf
	ID        string    // jti, empty when absent

	// PermVersion is the value of the issuer's permission_version_claim, when
	// the issuer configures one and the token carries it.
	PermVersion    int64
	HasPermVersion bool

	Header Header

	// Raw holds every claim as decoded JSON with numbers kept as json.Number,
	// so that policies see the token's JSON types unchanged. Read-only.
	Raw map[string]any
}
