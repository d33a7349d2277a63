package claims

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults and bounds of Config.
const (
	DefaultLeeway      = 30 * time.Second
	MaxLeeway          = 5 * time.Minute
	DefaultMaxLifetime = time.Hour
	DefaultMaxSize     = 8192

	// MinMaxSize and MaxMaxSize bound tokens.max_size: below the minimum no
	// real token fits, above the maximum the size limit stops protecting the
	// JSON decoder.
	MinMaxSize = 512
	MaxMaxSize = 64 << 10
)

// Config is the tokens section of Warden's configuration. A zero field takes
// its default (so a zero leeway means 30 s, not none).
type Config struct {
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway time.Duration `yaml:"leeway" help:"clock skew allowed on exp, nbf and iat (at most 5m)"`
	// MaxLifetime is the longest exp - iat accepted. It also bounds how long
	// the revocation ledger must remember an event (DESIGN §4).
	MaxLifetime time.Duration `yaml:"max_lifetime" help:"tokens whose exp - iat is longer are rejected"`
	// MaxSize is the largest compact token accepted, in bytes; it is checked
	// before anything is decoded.
	MaxSize int `yaml:"max_size" help:"largest compact token accepted, in bytes"`
	// CacheSize is how many verified tokens are remembered (cache.go). A
	// token that has left the cache is verified again, and the decisions
	// cached for it are lost.
	CacheSize int `yaml:"cache_size" help:"verified tokens remembered, with their cached decisions (about 4 KB of heap per active user)"`
	// Issuers are the trusted issuers. An empty list is valid here: the
	// caller substitutes the development issuer (DESIGN §6). NewVerifier
	// needs at least one.
	Issuers []IssuerConfig `yaml:"issuers"`
}

// IssuerConfig is one trusted issuer and where its keys come from.
type IssuerConfig struct {
	// Issuer is the exact "iss" of its tokens.
	Issuer string `yaml:"issuer"`
	// Audiences are accepted "aud" values; a token must name at least one.
	Audiences []string `yaml:"audiences"`
	// JWKSURL is fetched at start and refreshed periodically and, rate
	// limited, when a token names an unknown kid. It must be https (http is
	// accepted for loopback hosts only).
	JWKSURL string `yaml:"jwks_url"`
	// PublicKeys are PEM or JWK files, beside or instead of JWKSURL.
	PublicKeys []string `yaml:"public_keys"`
	// HMACSecretFile holds a shared secret (development only). An issuer
	// with a secret has no other keys. One trailing newline is ignored.
	HMACSecretFile string `yaml:"hmac_secret_file"`
	// Algorithms pins the accepted algorithms. Without it each key verifies
	// its JWK "alg", its curve's algorithm, or RS256 (RSA) / HS256 (HMAC).
	Algorithms []string `yaml:"algorithms"`
	// RequiredType, when set, must match the header "typ" (case-insensitive,
	// with or without the "application/" prefix), e.g. "at+jwt".
	RequiredType string `yaml:"required_type"`
	// PermissionVersionClaim names an integer claim copied to
	// Claims.PermVersion, e.g. "pv".
	PermissionVersionClaim string `yaml:"permission_version_claim"`
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	return c
}

// registeredClaims cannot be the permission-version claim: they already mean
// something else.
var registeredClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

// Validate checks the configuration (after defaults) and returns every
// problem at once, each naming its key and the fix. It reads no files: key
// files and secrets are checked when NewVerifier loads them.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch {
	case c.Leeway < 0:
		add("tokens.leeway: %v is negative; use a duration such as 30s", c.Leeway)
	case c.Leeway > MaxLeeway:
		add("tokens.leeway: %v is above the maximum %v; lower it", c.Leeway, MaxLeeway)
	}
	if c.MaxLifetime < 0 {
		add("tokens.max_lifetime: %v is negative; use a duration such as 1h", c.MaxLifetime)
	}
	if c.MaxSize < MinMaxSize || c.MaxSize > MaxMaxSize {
		add("tokens.max_size: %d bytes is outside %d..%d; the default is %d", c.MaxSize, MinMaxSize, MaxMaxSize, DefaultMaxSize)
	}
	if c.CacheSize < 0 {
		add("tokens.cache_size: %d is negative; give a number of tokens, e.g. %d", c.CacheSize, DefaultCacheSize)
	}

	seen := map[string]int{}
	for i, is := range c.Issuers {
		key := fmt.Sprintf("tokens.issuers[%d]", i)
		if is.Issuer == "" {
			add("%s.issuer: is empty; set it to the exact iss of the issuer's tokens", key)
		} else if j, dup := seen[is.Issuer]; dup {
			add("%s.issuer: %q is already tokens.issuers[%d]; merge the two", key, is.Issuer, j)
		} else {
			seen[is.Issuer] = i
		}
		if len(is.Audiences) == 0 {
			add("%s.audiences: is empty; list the aud values this service accepts", key)
		}
		for j, a := range is.Audiences {
			if a == "" {
				add("%s.audiences[%d]: is empty; remove it", key, j)
			}
		}
		asymmetric := is.JWKSURL != "" || len(is.PublicKeys) > 0
		switch {
		case !asymmetric && is.HMACSecretFile == "":
			add("%s: has no keys; set jwks_url, public_keys or (development only) hmac_secret_file", key)
		case asymmetric && is.HMACSecretFile != "":
			add("%s.hmac_secret_file: cannot be combined with jwks_url or public_keys; use a separate issuer", key)
		}
		if is.JWKSURL != "" {
			if err := CheckURL(is.JWKSURL); err != nil {
				add("%s.jwks_url: %v", key, err)
			}
		}
		for j, p := range is.PublicKeys {
			if p == "" {
				add("%s.public_keys[%d]: is empty; remove it", key, j)
			}
		}
		for j, alg := range is.Algorithms {
			bit, known := algBits[alg]
			switch {
			case strings.EqualFold(alg, "none"):
				add("%s.algorithms[%d]: %q is never accepted; remove it", key, j, alg)
			case !known:
				add("%s.algorithms[%d]: %q is not supported; use RS256/384/512, PS256/384/512, ES256/384/512, EdDSA or, with hmac_secret_file, HS256/384/512", key, j, alg)
			case bit&hmacAlgs != 0 && is.HMACSecretFile == "":
				add("%s.algorithms[%d]: %s needs hmac_secret_file; HMAC is accepted only from a configured secret", key, j, alg)
			case bit&hmacAlgs == 0 && !asymmetric:
				add("%s.algorithms[%d]: %s needs jwks_url or public_keys; an HMAC secret cannot verify it", key, j, alg)
			}
		}
		if slices.Contains(registeredClaims, is.PermissionVersionClaim) {
			add("%s.permission_version_claim: %q is a registered claim; name the issuer's version claim (e.g. pv)", key, is.PermissionVersionClaim)
		}
	}
	return errors.Join(errs...)
}

// CheckURL refuses URLs that keys, or what points to keys, must not come
// from: fetched over plain http from another host, they can be replaced by
// anyone on the path. It accepts https, and http for loopback hosts only.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("%q is not an absolute URL; use https://host/path", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%q is plain http; use https (http is accepted for loopback hosts only)", raw)
	default:
		return fmt.Errorf("%q has scheme %q; use https", raw, u.Scheme)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// algSetOf turns a validated algorithms list into a set (0 when empty).
func algSetOf(names []string) algSet {
	var s algSet
	for _, n := range names {
		s |= algBits[n]
	}
	return s
}
