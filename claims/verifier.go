package claims

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier verifies compact JWTs of the configured issuers. It is safe for
// concurrent use.
type Verifier struct {
	issuers     map[string]*issuer
	leeway      time.Duration
	maxLifetime time.Duration
	maxSize     int
	clock       func() time.Time
	cache       *cache // nil when disabled
	set         bool   // verifies Security Event Tokens (WithSETs)
}

// issuer is one trusted issuer, ready to verify.
type issuer struct {
	pins         algSet // the configured algorithms; 0 when none
	requiredType string // normalised with normalizeType; "" when none
	pvClaim      string
	static       *keySet     // public_keys and hmac_secret_file; never changes
	jwks         *jwksSource // nil without jwks_url
	parser       *jwt.Parser
}

// Option configures a Verifier.
type Option func(*options)

type options struct {
	client             *http.Client
	log                *slog.Logger
	clock              func() time.Time
	cacheSize          int
	refreshInterval    time.Duration
	unknownKIDInterval time.Duration
	set                bool
}

// WithHTTPClient sets the client JWKS fetches use. The Verifier uses a copy
// with a 10 s timeout when the client has none, and caps responses at 1 MiB.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithLogger sets the logger for key loading and JWKS refreshes. Without it
// that log is discarded: like every Warden package, the Verifier writes to
// the process's log only through the logger its caller passes (warden serve
// passes its own). Token failures are not logged here: the caller has the
// *Error with its cause.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the source of the current time, for tests.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithoutCache verifies every token afresh instead of remembering verified
// ones (tokens.cache_size), for benchmarks and tests of verification itself.
func WithoutCache() Option { return func(o *options) { o.cacheSize = 0 } }

// WithSETs makes the Verifier verify Security Event Tokens (RFC 8417) instead
// of access tokens, with the same keys, algorithms and checks otherwise: the
// header typ must be secevent+jwt (RFC 8417 §2.3, whatever required_type
// says), iat is required, sub and exp are not (a SET describes a subject in
// its events and does not expire; an exp present is still checked), and
// the lifetime check applies only when exp is present. The cache is off:
// a SET is delivered once, and its jti is the receiver's to deduplicate.
func WithSETs() Option { return func(o *options) { o.set, o.cacheSize = true, 0 } }

// SETType is the header typ of a Security Event Token (RFC 8417 §2.3).
const SETType = "secevent+jwt"

// WithJWKSRefresh sets how often every JWKS is fetched again (default
// DefaultJWKSRefreshInterval) and the least time between two fetches of one
// JWKS triggered by tokens naming an unknown kid (default
// DefaultUnknownKIDInterval).
func WithJWKSRefresh(interval, unknownKIDInterval time.Duration) Option {
	return func(o *options) { o.refreshInterval, o.unknownKIDInterval = interval, unknownKIDInterval }
}

// NewVerifier validates cfg, loads every issuer's static keys and fetches
// every JWKS once. ctx bounds those first fetches and the lifetime of the
// periodic JWKS refreshes: cancel it when the Verifier is no longer used.
//
// It fails on an invalid configuration, an unreadable or unusable key file or
// secret, and an empty issuer list. It does not fail when a JWKS cannot be
// fetched: that issuer's tokens fail with token_unknown_key until a refresh
// succeeds.
func NewVerifier(ctx context.Context, cfg Config, opts ...Option) (*Verifier, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("claims: tokens.issuers: no trusted issuer configured")
	}
	o := options{
		log:                slog.New(slog.DiscardHandler),
		clock:              time.Now,
		cacheSize:          cfg.CacheSize,
		refreshInterval:    DefaultJWKSRefreshInterval,
		unknownKIDInterval: DefaultUnknownKIDInterval,
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.refreshInterval <= 0 || o.unknownKIDInterval <= 0:
		return nil, fmt.Errorf("claims: JWKS refresh intervals must be positive, got %v and %v", o.refreshInterval, o.unknownKIDInterval)
	case o.log == nil || o.clock == nil:
		return nil, errors.New("claims: nil logger or clock")
	}
	o.client = jwksHTTPClient(o.client)
	o.log = o.log.With("component", "claims")

	v := &Verifier{
		issuers:     make(map[string]*issuer, len(cfg.Issuers)),
		leeway:      cfg.Leeway,
		maxLifetime: cfg.MaxLifetime,
		maxSize:     cfg.MaxSize,
		clock:       o.clock,
		set:         o.set,
	}
	for i, ic := range cfg.Issuers {
		is, err := newIssuer(ctx, ic, cfg.Leeway, &o)
		if err != nil {
			return nil, fmt.Errorf("claims: tokens.issuers[%d] (%s): %w", i, ic.Issuer, err)
		}
		v.issuers[ic.Issuer] = is
	}
	if o.cacheSize > 0 {
		c, err := newCache(o.cacheSize)
		if err != nil {
			return nil, fmt.Errorf("claims: %w", err)
		}
		v.cache = c
	}
	return v, nil
}

func newIssuer(ctx context.Context, ic IssuerConfig, leeway time.Duration, o *options) (*issuer, error) {
	is := &issuer{
		pins:         algSetOf(ic.Algorithms),
		requiredType: normalizeType(ic.RequiredType),
		pvClaim:      ic.PermissionVersionClaim,
	}
	if o.set {
		is.requiredType = SETType
	}
	var keys []*verifyKey
	for j, path := range ic.PublicKeys {
		ks, err := loadKeyFile(path, is.pins)
		if err != nil {
			return nil, fmt.Errorf("public_keys[%d] %s: %w", j, path, err)
		}
		keys = append(keys, ks...)
	}
	if ic.HMACSecretFile != "" {
		secret, err := os.ReadFile(ic.HMACSecretFile)
		if err != nil {
			return nil, fmt.Errorf("hmac_secret_file: %w", err)
		}
		// Files written with echo or an editor end in a newline that is not
		// part of the secret.
		secret = bytes.TrimSuffix(bytes.TrimSuffix(secret, []byte("\n")), []byte("\r"))
		k, err := newHMACKey(secret, is.pins, ic.HMACSecretFile)
		if err != nil {
			return nil, fmt.Errorf("hmac_secret_file %s: %w", ic.HMACSecretFile, err)
		}
		keys = append(keys, k)
	}
	static, problems := newKeySet(keys)
	if len(problems) > 0 {
		return nil, fmt.Errorf("public_keys: %w", errors.Join(problems...))
	}
	is.static = static

	valid := is.pins
	if valid == 0 {
		valid = ^hmacAlgs
		if ic.HMACSecretFile != "" {
			valid = hmacAlgs
		}
	}
	parserOpts := []jwt.ParserOption{
		// Our own checks ran first and decided the codes; these repeat the
		// essential ones inside golang-jwt as a second line.
		jwt.WithValidMethods(valid.names()),
		jwt.WithIssuer(ic.Issuer),
		jwt.WithStrictDecoding(),
		// No WithJSONNumber: the parser's own decoding of the payload does
		// nothing (tokenClaims.UnmarshalJSON); Claims.Raw comes from
		// decodeStrict, which keeps numbers as json.Number.
		//
		// The claims golang-jwt validates: exp (required, but for a SET),
		// nbf, iat not in the future, and aud against any of the
		// configured audiences.
		jwt.WithIssuedAt(),
		jwt.WithAudience(ic.Audiences...),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(o.clock),
	}
	if !o.set {
		parserOpts = append(parserOpts, jwt.WithExpirationRequired())
	}
	is.parser = jwt.NewParser(parserOpts...)

	if ic.JWKSURL != "" {
		src, err := newJWKSSource(ctx, ic.JWKSURL, is.pins, o)
		if err != nil {
			return nil, fmt.Errorf("jwks_url: %w", err)
		}
		is.jwks = src
	}
	return is, nil
}

// CacheStats returns how many Verify calls the cache answered and how many it
// could not (both zero when the cache is disabled). The web layer exports
// them as metrics.
func (v *Verifier) CacheStats() (hits, misses uint64) {
	if v.cache == nil {
		return 0, 0
	}
	return v.cache.hits.Load(), v.cache.misses.Load()
}

// Verify checks token and returns its claims. The returned Claims may be
// shared with other callers through the cache: treat it as read-only.
//
// Every failure is an *Error with exactly one Code. ctx bounds the JWKS fetch
// a token naming an unknown kid may trigger; nothing else blocks.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, fail(CodeMissing, "", "")
	}
	// Before anything else looks at the bytes, hashing included.
	if len(token) > v.maxSize {
		return nil, fail(CodeTooLarge, "", "token is %d bytes, the limit is %d", len(token), v.maxSize)
	}
	if v.cache == nil {
		c, _, err := v.verify(ctx, token)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	key := cacheKey(token)
	if c := v.cache.get(key, v.clock(), v.leeway); c != nil {
		return c, nil
	}
	c, entry, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	v.cache.add(key, entry)
	return c, nil
}

// verify is a full verification, in the order that makes cheap refusals
// come first and that gives each failure its most useful code:
//  1. structure: segments, base64url, strict JSON, header members, the JSON
//     types of registered claims (token_malformed, token_alg_not_allowed for
//     "none" and unknown algorithms);
//  2. the issuer, chosen by the unverified iss (token_wrong_issuer, also
//     when iss is missing), and the presence of the claims it needs
//     (token_missing_claim for exp, iat, sub; token_wrong_audience for aud);
//  3. the key: by kid, pinned to its algorithms (token_unknown_key,
//     token_alg_not_allowed);
//  4. golang-jwt: the signature, then exp, nbf, iat and aud
//     (token_bad_signature, token_expired, ...);
//  5. what golang-jwt does not check: lifetime and typ.
//
// Time, audience and type are judged only on authentic tokens, so a client
// told "token_expired" holds a token that really was ours.
func (v *Verifier) verify(ctx context.Context, token string) (*Claims, *cacheEntry, *Error) {
	tok, e := splitCompact(token)
	if e != nil {
		return nil, nil, e
	}
	h, e := parseHeader(tok.header)
	if e != nil {
		return nil, nil, e
	}
	tc, e := parsePayload(tok.payload)
	if e != nil {
		return nil, nil, e
	}

	if _, ok := tc.raw["iss"]; !ok {
		// Without iss there is no issuer to trust: the same code as an
		// unknown one, as README's table of reason codes says.
		return nil, nil, fail(CodeWrongIssuer, "the token names no issuer", "no iss")
	}
	is, ok := v.issuers[tc.iss]
	if !ok {
		return nil, nil, fail(CodeWrongIssuer, "", "iss %q is not a configured issuer", Clip(tc.iss))
	}
	switch {
	case tc.exp == nil && !v.set:
		return nil, nil, missingClaim("exp")
	case tc.iat == nil:
		// Revocation compares iat with the time of permission changes.
		return nil, nil, missingClaim("iat")
	case tc.sub == "" && !v.set:
		return nil, nil, missingClaim("sub")
	case !tc.hasAud:
		return nil, nil, fail(CodeWrongAudience, "", "the token has no aud")
	}
	pv, hasPV, e := permVersion(tc.raw, is.pvClaim)
	if e != nil {
		return nil, nil, e
	}

	if is.pins != 0 && !is.pins.has(h.Alg) {
		return nil, nil, fail(CodeAlgNotAllowed, "", "alg %s is not among the issuer's algorithms %v", h.Alg, is.pins)
	}
	keys, e := usableKeys(h.Alg, is.candidates(ctx, h.Kid))
	if e != nil {
		return nil, nil, e
	}

	if _, err := is.parser.ParseWithClaims(token, tc, keyFunc(h.Alg, keys)); err != nil {
		return nil, nil, classify(err)
	}

	iat := tc.iat.Time
	var exp time.Time
	if tc.exp != nil {
		exp = tc.exp.Time
		if exp.Before(iat) {
			return nil, nil, malformed("the token expires before it was issued", "exp %v is before iat %v", exp, iat)
		}
		if life := exp.Sub(iat); life > v.maxLifetime {
			return nil, nil, fail(CodeLifetimeTooLong, "", "exp - iat = %v, the maximum is %v", life, v.maxLifetime)
		}
	}
	if is.requiredType != "" && normalizeType(h.Typ) != is.requiredType {
		return nil, nil, fail(CodeWrongType, "", "typ %q, want %q", Clip(h.Typ), is.requiredType)
	}

	c := &Claims{
		Subject:        tc.sub,
		Issuer:         tc.iss,
		Audience:       slices.Clone([]string(tc.aud)),
		IssuedAt:       iat.UTC(),
		ExpiresAt:      exp.UTC(), // zero for a SET without exp
		ID:             tc.jti,
		PermVersion:    pv,
		HasPermVersion: hasPV,
		Header:         Header{Alg: h.Alg, Kid: h.Kid, Typ: h.Typ},
		Raw:            tc.raw,
	}
	entry := &cacheEntry{claims: c, exp: exp, iss: is, keys: keys}
	if tc.nbf != nil {
		c.NotBefore = tc.nbf.Time.UTC()
		entry.nbf = tc.nbf.Time
	}
	return c, entry, nil
}

func missingClaim(name string) *Error {
	return fail(CodeMissingClaim, fmt.Sprintf("the token lacks the required claim %q", name), "no %s", name)
}

// candidates are the keys of the issuer a token naming kid may have been
// signed with (see keySet.candidates). A kid that neither the static keys
// nor the JWKS hold triggers a rate-limited JWKS fetch before falling back to
// the keys without a kid.
func (is *issuer) candidates(ctx context.Context, kid string) []*verifyKey {
	if is.jwks == nil {
		return is.static.candidates(kid)
	}
	if kid == "" {
		return slices.Concat(is.static.all, is.jwks.current().all)
	}
	if k, ok := is.static.byKID[kid]; ok {
		return []*verifyKey{k}
	}
	if k, ok := is.jwks.current().byKID[kid]; ok {
		return []*verifyKey{k}
	}
	is.jwks.refreshForUnknownKID(ctx, kid)
	current := is.jwks.current()
	if k, ok := current.byKID[kid]; ok {
		return []*verifyKey{k}
	}
	return slices.Concat(is.static.noKID, current.noKID)
}

// holds reports whether key k still belongs to the issuer: static keys
// always do, JWKS keys as long as the last fetch still had them.
func (is *issuer) holds(k *verifyKey) bool {
	return !k.dynamic || (is.jwks != nil && is.jwks.current().holds(k))
}

// keyFunc hands golang-jwt the keys we chose. It also replaces the signing
// method golang-jwt looked up in its global registry by ours (the same alg),
// so that PS* verify with the salt length pinned; golang-jwt calls
// token.Method.Verify after the key function returns, and
// TestVerifyPSSSaltLength fails if that ever changes.
func keyFunc(alg string, keys []*verifyKey) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if t.Method == nil || t.Method.Alg() != alg {
			return nil, fail(CodeAlgNotAllowed, "", "golang-jwt chose a method for another alg")
		}
		t.Method = signingMethod(alg)
		if len(keys) == 1 {
			return keys[0].pub, nil
		}
		set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
		for i, k := range keys {
			set.Keys[i] = k.pub
		}
		return set, nil
	}
}

// normalizeType puts a typ into the form RFC 7515 §4.1.9 compares: media
// types are case-insensitive and "application/" may be left out.
func normalizeType(typ string) string {
	typ = strings.ToLower(typ)
	return strings.TrimPrefix(typ, "application/")
}
