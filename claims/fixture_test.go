package claims

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Shared test fixture: keys, a token builder that signs exactly the header
// and payload bytes it is given (so tests can forge any structure), a real
// JWKS server, and a Verifier with three kinds of issuers.

// testNow is the fixed clock of every test.
var testNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

const (
	idpIssuer    = "https://idp.example.com/"
	staticIssuer = "https://static.example.com/"
	devIssuer    = "warden-dev"
)

type testKeys struct {
	rsa              *rsa.PrivateKey
	p256, p384, p521 *ecdsa.PrivateKey
	p256Other        *ecdsa.PrivateKey // same curve, different key
	ed               ed25519.PrivateKey
	hmac             []byte
}

// keys are generated once per test binary; RSA generation is slow under -race.
var keys = sync.OnceValue(func() *testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &testKeys{hmac: []byte("0123456789abcdef0123456789abcdef")}
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	for _, c := range []struct {
		dst   **ecdsa.PrivateKey
		curve elliptic.Curve
	}{{&k.p256, elliptic.P256()}, {&k.p384, elliptic.P384()}, {&k.p521, elliptic.P521()}, {&k.p256Other, elliptic.P256()}} {
		*c.dst, err = ecdsa.GenerateKey(c.curve, rand.Reader)
		must(err)
	}
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

// idpKey describes one key the IdP's JWKS publishes and which private key
// signs for it.
type idpKey struct {
	kid, alg string
	signer   func(*testKeys) any
}

var idpKeys = []idpKey{
	{"rs256", "RS256", func(k *testKeys) any { return k.rsa }},
	{"rs384", "RS384", func(k *testKeys) any { return k.rsa }},
	{"rs512", "RS512", func(k *testKeys) any { return k.rsa }},
	{"ps256", "PS256", func(k *testKeys) any { return k.rsa }},
	{"ps384", "PS384", func(k *testKeys) any { return k.rsa }},
	{"ps512", "PS512", func(k *testKeys) any { return k.rsa }},
	{"es256", "ES256", func(k *testKeys) any { return k.p256 }},
	{"es384", "ES384", func(k *testKeys) any { return k.p384 }},
	{"es512", "ES512", func(k *testKeys) any { return k.p521 }},
	{"eddsa", "EdDSA", func(k *testKeys) any { return k.ed }},
	{"rsa-noalg", "", func(k *testKeys) any { return k.rsa }},
	{"ec-noalg", "", func(k *testKeys) any { return k.p256 }},
}

// enc is base64url without padding.
func enc[T string | []byte](b T) string { return base64.RawURLEncoding.EncodeToString([]byte(b)) }

// sign builds a compact JWS over exactly header and payload.
func sign(tb testing.TB, alg string, key any, header, payload string) string {
	tb.Helper()
	input := enc(header) + "." + enc(payload)
	sig, err := jwt.GetSigningMethod(alg).Sign(input, key)
	if err != nil {
		tb.Fatalf("sign %s: %v", alg, err)
	}
	return input + "." + enc(sig)
}

// js is json.Marshal for test data that always marshals.
func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// claimsFor are valid claims for iss at testNow.
func claimsFor(iss string) map[string]any {
	aud := "orders-api"
	if iss == devIssuer {
		aud = "warden"
	}
	return map[string]any{
		"iss":   iss,
		"sub":   "alice",
		"aud":   aud,
		"iat":   testNow.Add(-time.Minute).Unix(),
		"exp":   testNow.Add(14 * time.Minute).Unix(),
		"jti":   "token-1",
		"roles": []string{"manager"},
	}
}

// drop is a value for with that removes the claim.
type dropClaim struct{}

var drop dropClaim

// with returns a copy of m with the pairs set (or removed with drop).
func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == drop {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// idpToken signs claims with the IdP key kid, with a standard header.
func idpToken(tb testing.TB, kid string, claims map[string]any) string {
	tb.Helper()
	for _, k := range idpKeys {
		if k.kid == kid {
			alg := k.alg
			if alg == "" {
				alg = map[string]string{"rsa-noalg": "RS256", "ec-noalg": "ES256"}[kid]
			}
			return sign(tb, alg, k.signer(keys()), js(map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}), js(claims))
		}
	}
	tb.Fatalf("no IdP key %q", kid)
	return ""
}

// staticToken is a token of the static issuer (ES256 PEM key, typ at+jwt).
func staticToken(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	return sign(tb, "ES256", keys().p256, `{"alg":"ES256","typ":"at+jwt"}`, js(claims))
}

// devToken is a token of the HMAC development issuer.
func devToken(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	return sign(tb, "HS256", keys().hmac, `{"alg":"HS256","typ":"JWT"}`, js(claims))
}

// jwksServer is a real JWKS endpoint whose content tests can change and
// whose requests they can count.
type jwksServer struct {
	*httptest.Server
	body     atomic.Pointer[[]byte]
	failing  atomic.Bool
	requests atomic.Int64
}

func newJWKSServer(tb testing.TB) *jwksServer {
	s := &jwksServer{}
	s.body.Store(new([]byte(`{"keys":[]}`)))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(*s.body.Load())
	}))
	tb.Cleanup(s.Close)
	return s
}

// jwk is one key to publish.
type jwk struct {
	kid, alg, use string
	key           any // public key
}

// publish replaces the served JWKS.
func (s *jwksServer) publish(tb testing.TB, keys ...jwk) {
	tb.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: k.kid, ALG: jwkset.ALG(k.alg), USE: jwkset.USE(k.use),
		}})
		if err != nil {
			tb.Fatalf("JWK %s: %v", k.kid, err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	s.serve([]byte(js(set)))
}

func (s *jwksServer) serve(body []byte) { s.body.Store(&body) }

// idpJWKS are the public halves of idpKeys.
func idpJWKS() []jwk {
	var out []jwk
	for _, k := range idpKeys {
		out = append(out, jwk{kid: k.kid, alg: k.alg, use: "sig", key: k.signer(keys()).(crypto.Signer).Public()})
	}
	return out
}

// writeFile writes data into dir and returns its path.
func writeFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func pemPublic(tb testing.TB, pub any) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// testConfig is the three-issuer configuration of the fixture.
func testConfig(tb testing.TB, jwksURL string) Config {
	dir := tb.TempDir()
	return Config{
		Issuers: []IssuerConfig{
			{Issuer: idpIssuer, Audiences: []string{"orders-api", "billing-api"}, JWKSURL: jwksURL},
			{
				Issuer:                 staticIssuer,
				Audiences:              []string{"orders-api"},
				PublicKeys:             []string{writeFile(tb, dir, "static.pem", pemPublic(tb, keys().p256.Public()))},
				Algorithms:             []string{"ES256"},
				RequiredType:           "at+jwt",
				PermissionVersionClaim: "pv",
			},
			{
				Issuer:         devIssuer,
				Audiences:      []string{"warden"},
				HMACSecretFile: writeFile(tb, dir, "secret", append(keys().hmac, '\n')),
				Algorithms:     []string{"HS256"},
			},
		},
	}
}

// quietLog discards the Verifier's logs; set WARDEN_TEST_LOG=1 to see them.
func quietLog() *slog.Logger {
	if os.Getenv("WARDEN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestVerifier serves the IdP's JWKS and builds the fixture Verifier.
func newTestVerifier(tb testing.TB, opts ...Option) (*Verifier, *jwksServer) {
	tb.Helper()
	srv := newJWKSServer(tb)
	srv.publish(tb, idpJWKS()...)
	opts = append([]Option{WithClock(func() time.Time { return testNow }), WithLogger(quietLog())}, opts...)
	v, err := NewVerifier(tb.Context(), testConfig(tb, srv.URL), opts...)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	return v, srv
}

// TestClipKeepsUTF8: a cause quoting attacker text is cut on a whole
// character, so the log line stays valid UTF-8.
func TestClipKeepsUTF8(t *testing.T) {
	long := strings.Repeat("é", 40) // 80 bytes
	got := Clip(long)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || len(got) > 64+len("…") {
		t.Errorf("clip = %q (%d bytes)", got, len(got))
	}
	if Clip("short") != "short" {
		t.Error("clip changed a short string")
	}
}
