package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// TestExternalIssuer runs Warden against an identity provider whose tokens
// are minted by an independent JOSE implementation (go-jose) and whose keys
// are served from a JWKS URL, as in a real deployment.
func TestExternalIssuer(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pssKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	strangerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &rsaKey.PublicKey, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
		{Key: &pssKey.PublicKey, KeyID: "pss-1", Algorithm: "PS256", Use: "sig"},
		{Key: &ecKey.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
		{Key: edKey.Public(), KeyID: "ed-1", Algorithm: "EdDSA", Use: "sig"},
	}}
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jwks)
	}))
	defer idp.Close()

	const issuer = "https://idp.test/"
	config := writeFile(t, "warden.yaml", `
tokens:
  issuers:
    - issuer: `+issuer+`
      audiences: [orders-api]
      jwks_url: `+idp.URL+`
`)
	dataDir := t.TempDir()
	baseURL, stderr, _ := startWarden(t, dataDir, "--config", config)
	if strings.Contains(stderr.String(), "DEVELOPMENT MODE") {
		t.Error("Warden announced development mode with an issuer configured")
	}

	sign := func(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, mutate func(*josejwt.Claims)) string {
		t.Helper()
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		c := josejwt.Claims{
			Issuer: issuer, Subject: "alice", Audience: josejwt.Audience{"orders-api"},
			IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(10 * time.Minute)),
			ID: "jti-" + kid,
		}
		if mutate != nil {
			mutate(&c)
		}
		tok, err := josejwt.Signed(signer).Claims(c).Claims(map[string]any{"roles": []string{"manager"}}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	tests := []struct {
		name       string
		token      func(t *testing.T) string
		wantReason string
	}{
		{"RS256", func(t *testing.T) string { return sign(t, jose.RS256, rsaKey, "rsa-1", nil) }, "allowed"},
		{"PS256", func(t *testing.T) string { return sign(t, jose.PS256, pssKey, "pss-1", nil) }, "allowed"},
		{"ES256", func(t *testing.T) string { return sign(t, jose.ES256, ecKey, "ec-1", nil) }, "allowed"},
		{"EdDSA", func(t *testing.T) string { return sign(t, jose.EdDSA, edKey, "ed-1", nil) }, "allowed"},
		{"RS512 with an RS256 key", func(t *testing.T) string { return sign(t, jose.RS512, rsaKey, "rsa-1", nil) }, "token_alg_not_allowed"},
		{"PS256 with the RS256 key", func(t *testing.T) string { return sign(t, jose.PS256, rsaKey, "rsa-1", nil) }, "token_alg_not_allowed"},
		{"key not in the JWKS", func(t *testing.T) string { return sign(t, jose.ES256, strangerKey, "stranger", nil) }, "token_unknown_key"},
		{"stranger key under a known kid", func(t *testing.T) string { return sign(t, jose.ES256, strangerKey, "ec-1", nil) }, "token_bad_signature"},
		{"HS256 keyed with the public key", func(t *testing.T) string {
			der, _ := json.Marshal(jwks.Keys[0])
			return sign(t, jose.HS256, der, "rsa-1", nil)
		}, "token_alg_not_allowed"},
		{"wrong audience", func(t *testing.T) string {
			return sign(t, jose.ES256, ecKey, "ec-1", func(c *josejwt.Claims) { c.Audience = josejwt.Audience{"billing-api"} })
		}, "token_wrong_audience"},
		{"wrong issuer", func(t *testing.T) string {
			return sign(t, jose.ES256, ecKey, "ec-1", func(c *josejwt.Claims) { c.Issuer = "https://evil.test/" })
		}, "token_wrong_issuer"},
		{"expired", func(t *testing.T) string {
			return sign(t, jose.ES256, ecKey, "ec-1", func(c *josejwt.Claims) {
				c.IssuedAt = josejwt.NewNumericDate(time.Now().Add(-20 * time.Minute))
				c.Expiry = josejwt.NewNumericDate(time.Now().Add(-10 * time.Minute))
			})
		}, "token_expired"},
		{"lifetime above max_lifetime", func(t *testing.T) string {
			return sign(t, jose.ES256, ecKey, "ec-1", func(c *josejwt.Claims) { c.Expiry = josejwt.NewNumericDate(time.Now().Add(3 * time.Hour)) })
		}, "token_lifetime_too_long"},
		{"no iat", func(t *testing.T) string {
			return sign(t, jose.ES256, ecKey, "ec-1", func(c *josejwt.Claims) { c.IssuedAt = nil })
		}, "token_missing_claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := askDecision(t, baseURL, tt.token(t), "orders:approve")
			if got.Reason != tt.wantReason || got.Allow != (tt.wantReason == "allowed") {
				t.Errorf("decision = %+v, want reason %s", got, tt.wantReason)
			}
		})
	}
}
