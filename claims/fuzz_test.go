package claims

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/google/go-cmp/cmp"
)

// FuzzVerify mutates signed and hostile tokens. Whatever the input, Verify
// must not panic, must fail with exactly one *Error of a known code, and may
// accept a token only if its header and payload are bytes we signed and its
// signature verifies with the standard library alone, against the key we
// signed them with (not through any code of this package).
func FuzzVerify(f *testing.F) {
	v, signed := fuzzVerifier(f)
	for _, token := range signed {
		f.Add(token.token)
	}
	k := keys()
	idp := js(claimsFor(idpIssuer))
	for _, hostile := range []string{
		"",
		"a.b.c",
		"...",
		enc(`{"alg":"none"}`) + "." + enc(idp) + ".",
		sign(f, "HS256", pemPublic(f, k.p256.Public()), `{"alg":"HS256","kid":"es256"}`, idp),
		sign(f, "ES256", k.p256, `{"alg":"ES256","kid":"es256","alg":"ES256"}`, idp),
		sign(f, "ES256", k.p256, `{"alg":"ES256","kid":"es256","jku":"https://x"}`, idp),
		sign(f, "ES256", k.p256, `{"alg":"ES256","kid":"es256"}`, `{"iss":"`+idpIssuer+`","sub":"a","sub":"b"}`),
		`{"payload":"e30","signatures":[]}`,
	} {
		f.Add(hostile)
	}

	f.Fuzz(func(t *testing.T, token string) {
		got, err := v.Verify(t.Context(), token)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || defaultDescriptions[e.Code] == "" || e.Description == "" {
				t.Fatalf("failure %T %v is not an *Error with a known code", err, err)
			}
			if got != nil {
				t.Fatalf("claims returned beside an error")
			}
			return
		}
		dot := strings.LastIndexByte(token, '.')
		s, ok := signed[token[:dot]]
		if !ok {
			t.Fatalf("accepted a token whose header and payload we never signed: %q", token)
		}
		sig, derr := b64.DecodeString(token[dot+1:])
		if derr != nil || !s.check(token[:dot], sig) {
			t.Fatalf("accepted a signature the standard library does not verify: %q", token)
		}
	})
}

// fuzzSigned is a token we signed and an independent check of signatures
// over its signing input.
type fuzzSigned struct {
	token string
	check func(input string, sig []byte) bool
}

// fuzzVerifier is a Verifier with static keys only (no network in the fuzz
// loop) and the tokens it should accept, by signing input.
func fuzzVerifier(tb testing.TB) (*Verifier, map[string]fuzzSigned) {
	k := keys()
	var set jwkset.JWKSMarshal
	for _, key := range []jwk{
		{kid: "es256", alg: "ES256", key: k.p256.Public()},
		{kid: "eddsa", alg: "EdDSA", key: k.ed.Public()},
		{kid: "rs256", alg: "RS256", key: k.rsa.Public()},
	} {
		j, err := jwkset.NewJWKFromKey(key.key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: key.kid, ALG: jwkset.ALG(key.alg)}})
		if err != nil {
			tb.Fatal(err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	dir := tb.TempDir()
	cfg := Config{Issuers: []IssuerConfig{
		{Issuer: idpIssuer, Audiences: []string{"orders-api"}, PublicKeys: []string{writeFile(tb, dir, "jwks.json", []byte(js(set)))}},
		{Issuer: devIssuer, Audiences: []string{"warden"}, HMACSecretFile: writeFile(tb, dir, "secret", k.hmac)},
	}}
	v, err := NewVerifier(tb.Context(), cfg, WithoutCache(), WithClock(func() time.Time { return testNow }), WithLogger(quietLog()))
	if err != nil {
		tb.Fatal(err)
	}

	sha := func(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }
	checks := map[string]func(string, []byte) bool{
		"HS256": func(in string, sig []byte) bool {
			m := hmac.New(sha256.New, k.hmac)
			m.Write([]byte(in))
			return hmac.Equal(m.Sum(nil), sig)
		},
		"ES256": func(in string, sig []byte) bool {
			if len(sig) != 64 {
				return false
			}
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			return ecdsa.Verify(&k.p256.PublicKey, sha(in), r, s)
		},
		"EdDSA": func(in string, sig []byte) bool {
			return ed25519.Verify(k.ed.Public().(ed25519.PublicKey), []byte(in), sig)
		},
		"RS256": func(in string, sig []byte) bool {
			return rsa.VerifyPKCS1v15(&k.rsa.PublicKey, crypto.SHA256, sha(in), sig) == nil
		},
	}
	signed := map[string]fuzzSigned{}
	add := func(alg string, key any, header string, claims map[string]any) {
		token := sign(tb, alg, key, header, js(claims))
		signed[token[:strings.LastIndexByte(token, '.')]] = fuzzSigned{token, checks[alg]}
	}
	idp := with(claimsFor(idpIssuer), "aud", []string{"orders-api", "other"}, "nbf", testNow.Add(-time.Minute).Unix())
	add("ES256", k.p256, `{"alg":"ES256","kid":"es256","typ":"JWT"}`, idp)
	add("ES256", k.p256, `{"alg":"ES256"}`, idp)
	add("EdDSA", k.ed, `{"alg":"EdDSA","kid":"eddsa"}`, idp)
	add("RS256", k.rsa, `{"alg":"RS256","kid":"rs256"}`, idp)
	add("HS256", k.hmac, `{"alg":"HS256"}`, claimsFor(devIssuer))
	add("HS256", k.hmac, `{"alg":"HS256","kid":"x"}`, with(claimsFor(devIssuer), "ctx", map[string]any{"a": []any{1.5, true, nil}}))
	for _, s := range signed {
		if _, err := v.Verify(tb.Context(), s.token); err != nil {
			tb.Fatalf("fuzz seed refused: %v", err)
		}
	}
	return v, signed
}

// FuzzDecodeStrict checks decodeStrict against encoding/json: whatever it
// accepts, encoding/json accepts too and reads the same way, and no object
// in it has two member names that are equal case-insensitively.
func FuzzDecodeStrict(f *testing.F) {
	for _, seed := range []string{
		`{"a":1,"b":[true,null,"x",{"c":1.5e3}]}`,
		`{"sub":"a","Sub":"b"}`,
		`{"a":"\ud83d\ude00","b":"\\ud800"}`,
		`{"a":"\ud800"}`,
		`{"k":1}{"k":2}`,
		`{"\u212aid":1,"kid":2}`,
		"{\"a\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeStrict(b)
		if err != nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want map[string]any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("decodeStrict accepted %q, encoding/json refuses it: %v", b, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("decodeStrict reads %q differently (-encoding/json +decodeStrict):\n%s", b, diff)
		}
		checkNoFoldDuplicates(t, got)
	})
}

func checkNoFoldDuplicates(t *testing.T, v any) {
	switch v := v.(type) {
	case map[string]any:
		names := slices.Collect(maps.Keys(v))
		for i, a := range names {
			for _, b := range names[i+1:] {
				if strings.EqualFold(a, b) {
					t.Fatalf("accepted case-variant names %q and %q", a, b)
				}
			}
			checkNoFoldDuplicates(t, v[a])
		}
	case []any:
		for _, e := range v {
			checkNoFoldDuplicates(t, e)
		}
	}
}
