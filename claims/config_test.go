package claims

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := Config{Leeway: DefaultLeeway, MaxLifetime: DefaultMaxLifetime, MaxSize: DefaultMaxSize, CacheSize: DefaultCacheSize}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("withDefaults (-want +got):\n%s", diff)
	}
	set := Config{Leeway: time.Second, MaxLifetime: time.Minute, MaxSize: 1024, CacheSize: 10}
	if diff := cmp.Diff(set, set.withDefaults()); diff != "" {
		t.Errorf("withDefaults changed set fields (-want +got):\n%s", diff)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero Config is invalid: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := IssuerConfig{Issuer: "https://idp/", Audiences: []string{"api"}, JWKSURL: "https://idp/jwks"}
	issuer := func(change func(*IssuerConfig)) Config {
		ic := ok
		change(&ic)
		return Config{Issuers: []IssuerConfig{ic}}
	}
	cases := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{"valid", issuer(func(*IssuerConfig) {}), nil},
		{"leeway at the maximum", Config{Leeway: MaxLeeway}, nil},
		{"leeway above the maximum", Config{Leeway: 10 * time.Minute},
			[]string{"tokens.leeway: 10m0s is above the maximum 5m0s; lower it"}},
		{"negative leeway", Config{Leeway: -time.Second}, []string{"tokens.leeway: -1s is negative"}},
		{"negative max_lifetime", Config{MaxLifetime: -time.Hour}, []string{"tokens.max_lifetime: -1h0m0s is negative"}},
		{"max_size too small", Config{MaxSize: 10}, []string{"tokens.max_size: 10 bytes is outside 512..65536"}},
		{"max_size too large", Config{MaxSize: 1 << 20}, []string{"tokens.max_size"}},
		{"negative cache_size", Config{CacheSize: -1}, []string{"tokens.cache_size: -1 is negative"}},
		{"no issuer name", issuer(func(c *IssuerConfig) { c.Issuer = "" }), []string{"tokens.issuers[0].issuer: is empty"}},
		{"duplicate issuer", Config{Issuers: []IssuerConfig{ok, ok}},
			[]string{`tokens.issuers[1].issuer: "https://idp/" is already tokens.issuers[0]`}},
		{"no audiences", issuer(func(c *IssuerConfig) { c.Audiences = nil }), []string{"tokens.issuers[0].audiences: is empty"}},
		{"empty audience", issuer(func(c *IssuerConfig) { c.Audiences = []string{"api", ""} }), []string{"tokens.issuers[0].audiences[1]: is empty"}},
		{"no keys", issuer(func(c *IssuerConfig) { c.JWKSURL = "" }), []string{"tokens.issuers[0]: has no keys"}},
		{"public keys only", issuer(func(c *IssuerConfig) { c.JWKSURL, c.PublicKeys = "", []string{"k.pem"} }), nil},
		{"HMAC beside public keys", issuer(func(c *IssuerConfig) { c.HMACSecretFile = "s" }),
			[]string{"tokens.issuers[0].hmac_secret_file: cannot be combined"}},
		{"plain http JWKS", issuer(func(c *IssuerConfig) { c.JWKSURL = "http://idp.example.com/jwks" }),
			[]string{"tokens.issuers[0].jwks_url:", "plain http"}},
		{"http JWKS on loopback", issuer(func(c *IssuerConfig) { c.JWKSURL = "http://127.0.0.1:8080/jwks" }), nil},
		{"relative JWKS URL", issuer(func(c *IssuerConfig) { c.JWKSURL = "/jwks" }), []string{"is not an absolute URL"}},
		{"JWKS URL with another scheme", issuer(func(c *IssuerConfig) { c.JWKSURL = "file:///etc/jwks" }), []string{"tokens.issuers[0].jwks_url:"}},
		{"alg none", issuer(func(c *IssuerConfig) { c.Algorithms = []string{"RS256", "none"} }),
			[]string{`tokens.issuers[0].algorithms[1]: "none" is never accepted`}},
		{"unknown alg", issuer(func(c *IssuerConfig) { c.Algorithms = []string{"ES256K"} }),
			[]string{`tokens.issuers[0].algorithms[0]: "ES256K" is not supported`}},
		{"HS256 without a secret", issuer(func(c *IssuerConfig) { c.Algorithms = []string{"HS256"} }),
			[]string{"tokens.issuers[0].algorithms[0]: HS256 needs hmac_secret_file"}},
		{"RS256 with only a secret", issuer(func(c *IssuerConfig) { c.JWKSURL, c.HMACSecretFile, c.Algorithms = "", "s", []string{"RS256"} }),
			[]string{"tokens.issuers[0].algorithms[0]: RS256 needs jwks_url or public_keys"}},
		{"HS512 with a secret", issuer(func(c *IssuerConfig) { c.JWKSURL, c.HMACSecretFile, c.Algorithms = "", "s", []string{"HS512"} }), nil},
		{"registered claim as permission version", issuer(func(c *IssuerConfig) { c.PermissionVersionClaim = "iat" }),
			[]string{"tokens.issuers[0].permission_version_claim"}},
		{"several problems at once", Config{Leeway: time.Hour, Issuers: []IssuerConfig{{}}},
			[]string{"tokens.leeway", "tokens.issuers[0].issuer", "tokens.issuers[0].audiences", "tokens.issuers[0]: has no keys"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted it, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNewVerifierKeyFiles(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	rsaPriv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.rsa)})
	ecJWKS := []byte(`{"keys":[{"kty":"EC","crv":"P-384","kid":"p384","alg":"ES384",` + p384Coordinates(t) + `}]}`)
	edJWK := []byte(`{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"` + enc([]byte(k.ed.Public().(ed25519.PublicKey))) + `"}`)

	cfg := Config{Issuers: []IssuerConfig{{
		Issuer:    idpIssuer,
		Audiences: []string{"orders-api"},
		PublicKeys: []string{
			writeFile(t, dir, "cert.pem", selfSigned(t)),
			writeFile(t, dir, "rsa-private.pem", rsaPriv), // its public half is used
			writeFile(t, dir, "p384.jwks.json", ecJWKS),
			writeFile(t, dir, "ed.jwk.json", edJWK),
		},
	}}}
	v, err := NewVerifier(t.Context(), cfg, WithClock(func() time.Time { return testNow }), WithLogger(quietLog()))
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	idp := js(claimsFor(idpIssuer))
	for _, tc := range []struct {
		name, token string
		want        Code
	}{
		{"certificate key (P-256, no kid)", sign(t, "ES256", k.p256, `{"alg":"ES256","kid":"whatever"}`, idp), ""},
		{"private RSA PEM, RS256 by default", sign(t, "RS256", k.rsa, `{"alg":"RS256"}`, idp), ""},
		{"private RSA PEM, PS256 not configured", sign(t, "PS256", k.rsa, `{"alg":"PS256"}`, idp), CodeAlgNotAllowed},
		{"JWKS file", sign(t, "ES384", k.p384, `{"alg":"ES384","kid":"p384"}`, idp), ""},
		{"single JWK file", sign(t, "EdDSA", k.ed, `{"alg":"EdDSA","kid":"ed"}`, idp), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tc.token)
			if codeOf(err) != tc.want || (tc.want == "") != (err == nil) {
				t.Errorf("Verify = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	base := func(change func(*IssuerConfig)) Config {
		ic := IssuerConfig{Issuer: "https://i/", Audiences: []string{"a"}}
		change(&ic)
		return Config{Issuers: []IssuerConfig{ic}}
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no issuers", Config{}, "no trusted issuer"},
		{"invalid config", Config{Leeway: time.Hour}, "tokens.leeway"},
		{"missing key file", base(func(c *IssuerConfig) { c.PublicKeys = []string{dir + "/nope.pem"} }), "public_keys[0]"},
		{"file without keys", base(func(c *IssuerConfig) { c.PublicKeys = []string{writeFile(t, dir, "empty.pem", []byte("hello"))} }), "no PEM block"},
		{"weak RSA key", base(func(c *IssuerConfig) {
			c.PublicKeys = []string{writeFile(t, dir, "weak.pem", pemPublic(t, weak.Public()))}
		}), "shorter than 2048 bits"},
		{"key not fitting the algorithms", base(func(c *IssuerConfig) {
			c.PublicKeys = []string{writeFile(t, dir, "p256.pem", pemPublic(t, k.p256.Public()))}
			c.Algorithms = []string{"RS256"}
		}), "cannot verify any of the issuer's algorithms [RS256]"},
		{"symmetric JWK file", base(func(c *IssuerConfig) {
			c.PublicKeys = []string{writeFile(t, dir, "oct.json", []byte(`{"kty":"oct","k":"`+enc(k.hmac)+`"}`))}
		}), "symmetric keys are accepted only from hmac_secret_file"},
		{"duplicate kid across files", base(func(c *IssuerConfig) {
			j := []byte(`{"kty":"EC","crv":"P-384","kid":"same",` + p384Coordinates(t) + `}`)
			c.PublicKeys = []string{writeFile(t, dir, "a.json", j), writeFile(t, dir, "b.json", j)}
		}), `kid "same" names 2 keys`},
		{"short HMAC secret", base(func(c *IssuerConfig) {
			c.HMACSecretFile = writeFile(t, dir, "short", []byte("too short\n"))
		}), "the secret is 9 bytes; HS256 needs at least 32"},
		{"HMAC secret too short for HS512", base(func(c *IssuerConfig) {
			c.HMACSecretFile = writeFile(t, dir, "s32", k.hmac)
			c.Algorithms = []string{"HS256", "HS512"}
		}), "HS512 needs at least 64"},
		{"missing secret file", base(func(c *IssuerConfig) { c.HMACSecretFile = dir + "/nope" }), "hmac_secret_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(t.Context(), tc.cfg, WithLogger(quietLog()))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewVerifier = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		opt  Option
	}{
		{"zero refresh interval", WithJWKSRefresh(0, time.Minute)},
		{"nil clock", WithClock(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base(func(c *IssuerConfig) { c.HMACSecretFile = writeFile(t, dir, "ok", k.hmac) })
			if _, err := NewVerifier(t.Context(), cfg, tc.opt); err == nil {
				t.Error("NewVerifier accepted the option")
			}
		})
	}
}

func p384Coordinates(t *testing.T) string {
	t.Helper()
	b, err := keys().p384.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return `"x":"` + enc(b[1:49]) + `","y":"` + enc(b[49:]) + `"`
}

// selfSigned is a certificate for the fixture's P-256 key.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "idp"},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, keys().p256.Public(), keys().p256)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
