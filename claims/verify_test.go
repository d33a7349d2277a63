package claims

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

func TestVerifyAccepts(t *testing.T) {
	v, _ := newTestVerifier(t)
	idp := claimsFor(idpIssuer)
	static := with(claimsFor(staticIssuer), "pv", 7)

	type tc struct {
		name, token, alg string
	}
	var cases []tc
	for _, k := range idpKeys {
		alg := k.alg
		if alg == "" {
			alg = map[string]string{"rsa-noalg": "RS256", "ec-noalg": "ES256"}[k.kid]
		}
		cases = append(cases, tc{"idp " + k.kid, idpToken(t, k.kid, idp), alg})
	}
	cases = append(cases,
		tc{"HS256 development issuer", devToken(t, claimsFor(devIssuer)), "HS256"},
		tc{"static PEM key, typ at+jwt", staticToken(t, static), "ES256"},
		tc{"typ compared case-insensitively",
			sign(t, "ES256", keys().p256, `{"alg":"ES256","typ":"AT+JWT"}`, js(static)), "ES256"},
		tc{"typ with the application/ prefix",
			sign(t, "ES256", keys().p256, `{"alg":"ES256","typ":"application/at+jwt"}`, js(static)), "ES256"},
		tc{"no kid: tried against the keys of its algorithm",
			sign(t, "ES256", keys().p256, `{"alg":"ES256"}`, js(idp)), "ES256"},
		tc{"aud array naming another configured audience",
			idpToken(t, "es256", with(idp, "aud", []string{"payments-api", "billing-api"})), "ES256"},
		tc{"iat in the future within the leeway",
			idpToken(t, "es256", with(idp, "iat", testNow.Add(20*time.Second).Unix())), "ES256"},
		tc{"expired within the leeway",
			idpToken(t, "es256", with(idp, "iat", testNow.Add(-10*time.Minute).Unix(), "exp", testNow.Add(-20*time.Second).Unix())), "ES256"},
		tc{"nbf in the future within the leeway",
			idpToken(t, "es256", with(idp, "nbf", testNow.Add(20*time.Second).Unix())), "ES256"},
		tc{"escaped surrogate pair and escaped backslash-u in a claim",
			sign(t, "ES256", keys().p256, `{"alg":"ES256","kid":"es256"}`, `{"name":"\ud83d\ude00 \\ud800",`+js(idp)[1:]), "ES256"},
		tc{"fractional NumericDate",
			idpToken(t, "es256", with(idp, "exp", json.Number("1795428000.5"))), "ES256"},
		tc{"lifetime exactly the maximum",
			idpToken(t, "es256", with(idp, "iat", testNow.Add(-time.Minute).Unix(), "exp", testNow.Add(59*time.Minute).Unix())), "ES256"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Verify(t.Context(), c.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Subject != "alice" || got.Header.Alg != c.alg {
				t.Errorf("got subject %q alg %q, want alice %s", got.Subject, got.Header.Alg, c.alg)
			}
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	v, _ := newTestVerifier(t)
	iat, nbf, exp := testNow.Add(-time.Minute).Unix(), testNow.Add(-2*time.Minute).Unix(), testNow.Add(10*time.Minute).Unix()
	payload := fmt.Sprintf(`{"iss":"https://static.example.com/","sub":"bob","aud":["orders-api","x"],`+
		`"iat":%d,"nbf":%d,"exp":%d,"jti":"j-42","pv":7,`+
		`"roles":["staff"],"n":1.50,"big":12345678901234567890,"ctx":{"tenant":"t1"}}`, iat, nbf, exp)
	token := sign(t, "ES256", keys().p256, `{"alg":"ES256","typ":"at+jwt","kid":"any"}`, payload)

	got, err := v.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := &Claims{
		Subject:        "bob",
		Issuer:         staticIssuer,
		Audience:       []string{"orders-api", "x"},
		IssuedAt:       time.Unix(iat, 0).UTC(),
		ExpiresAt:      time.Unix(exp, 0).UTC(),
		NotBefore:      time.Unix(nbf, 0).UTC(),
		ID:             "j-42",
		PermVersion:    7,
		HasPermVersion: true,
		Header:         Header{Alg: "ES256", Kid: "any", Typ: "at+jwt"},
		Raw: map[string]any{
			"iss": staticIssuer, "sub": "bob", "aud": []any{"orders-api", "x"},
			"iat": json.Number(fmt.Sprint(iat)), "nbf": json.Number(fmt.Sprint(nbf)), "exp": json.Number(fmt.Sprint(exp)),
			"jti": "j-42", "pv": json.Number("7"), "roles": []any{"staff"},
			// Numbers keep their JSON text: no float rounding, no int overflow.
			"n": json.Number("1.50"), "big": json.Number("12345678901234567890"),
			"ctx": map[string]any{"tenant": "t1"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}

	// Without the claim, HasPermVersion says so.
	got, err = v.Verify(t.Context(), staticToken(t, claimsFor(staticIssuer)))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.HasPermVersion || !got.NotBefore.IsZero() {
		t.Errorf("HasPermVersion %v NotBefore %v, want false and zero", got.HasPermVersion, got.NotBefore)
	}
}

// TestVerifyRefuses is the table of hostile tokens: every attack class of
// DESIGN §2 and RFC 8725, each with the exact reason code.
func TestVerifyRefuses(t *testing.T) {
	v, _ := newTestVerifier(t)
	k := keys()
	idp := claimsFor(idpIssuer)
	static := claimsFor(staticIssuer)
	valid := idpToken(t, "es256", idp)
	h, p, s := splitToken(t, valid)
	esHeader := `{"alg":"ES256","kid":"es256"}`
	es := func(header, payload string) string { return sign(t, "ES256", k.p256, header, payload) }
	esClaims := func(kv ...any) string { return es(esHeader, js(with(idp, kv...))) }
	// member prepends a raw JSON member to the IdP claims.
	member := func(raw string) string { return "{" + raw + "," + js(idp)[1:] }
	unsigned := func(header string) string { return enc(header) + "." + enc(js(idp)) + "." }
	rsaPEM := pemPublic(t, k.rsa.Public())

	cases := []struct {
		name  string
		token string
		want  Code
	}{
		// Size and shape, before any decoding.
		{"empty", "", CodeMissing},
		{"larger than max_size", strings.Repeat("a", DefaultMaxSize+1), CodeTooLarge},
		{"valid but padded past max_size", valid + strings.Repeat("A", DefaultMaxSize), CodeTooLarge},
		{"two segments", h + "." + p, CodeMalformed},
		{"four segments", valid + ".e30", CodeMalformed},
		{"five segments (JWE)", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", CodeMalformed},
		{"JSON serialization", `{"payload":"` + p + `","signatures":[{"protected":"` + h + `","signature":"` + s + `"}]}`, CodeMalformed},
		{"bearer prefix left on", "Bearer " + valid, CodeMalformed},

		// base64url: alphabet, padding, canonical encoding.
		{"standard base64 '+' in header", replaceAt(h, 3, '+') + "." + p + "." + s, CodeMalformed},
		{"standard base64 '/' in signature", h + "." + p + "." + replaceAt(s, 5, '/'), CodeMalformed},
		{"padding", h + "." + p + "=." + s, CodeMalformed},
		{"newline inside a segment (Go's decoder skips it)", h[:8] + "\n" + h[8:] + "." + p + "." + s, CodeMalformed},
		{"space in payload", h + ". " + p + "." + s, CodeMalformed},
		{"non-canonical trailing bits in header", nonCanonical(t, h) + "." + p + "." + s, CodeMalformed},
		{"impossible base64 length", h + "." + p + "." + s[:len(s)/4*4+1], CodeMalformed},
		{"empty header", "." + p + "." + s, CodeMalformed},
		{"empty payload", h + ".." + s, CodeMalformed},

		// JSON and UTF-8.
		{"header is not JSON", es("alg=ES256", js(idp)), CodeMalformed},
		{"header is an array", es(`["ES256"]`, js(idp)), CodeMalformed},
		{"data after the header object", es(esHeader+` {}`, js(idp)), CodeMalformed},
		{"payload is not an object", es(esHeader, `["alice"]`), CodeMalformed},
		{"payload is a JSON string", es(esHeader, `"alice"`), CodeMalformed},
		{"data after the payload object", es(esHeader, js(idp)+`x`), CodeMalformed},
		{"invalid UTF-8 in header", es(`{"alg":"ES256","kid":"es256","x":"`+"\xff"+`"}`, js(idp)), CodeMalformed},
		{"invalid UTF-8 in payload", es(esHeader, member(`"name":"`+"\xc3\x28"+`"`)), CodeMalformed},
		{"lone surrogate escape in payload", es(esHeader, member(`"name":"\ud800"`)), CodeMalformed},
		{"lone low surrogate escape in payload", es(esHeader, member(`"name":"a\udc00"`)), CodeMalformed},
		{"high surrogate escape without its low half", es(esHeader, member(`"name":"\ud83dx"`)), CodeMalformed},
		{"high surrogate escape followed by another high", es(esHeader, member(`"name":"\ud83d\ud83d"`)), CodeMalformed},
		{"high surrogate escape at the end", es(esHeader, member(`"name":"\ud83d"`)), CodeMalformed},
		{"nesting deeper than the bound", es(esHeader, member(`"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40))), CodeMalformed},

		// Duplicate and case-variant member names.
		{"duplicate alg in header", es(`{"alg":"ES256","kid":"es256","alg":"ES256"}`, js(idp)), CodeMalformed},
		{"case-variant alg in header", es(`{"alg":"ES256","kid":"es256","ALG":"none"}`, js(idp)), CodeMalformed},
		{"Kelvin-sign kid beside kid", es(`{"alg":"ES256","kid":"es256","\u212Aid":"rs256"}`, js(idp)), CodeMalformed},
		{"duplicate sub in payload", es(esHeader, member(`"sub":"admin"`)), CodeMalformed},
		{"case-variant Sub in payload", es(esHeader, member(`"Sub":"admin"`)), CodeMalformed},
		{"long-s variant of sub in payload", es(esHeader, member(`"\u017fub":"admin"`)), CodeMalformed},
		{"duplicate inside a nested object", es(esHeader, member(`"ctx":{"role":"a","role":"admin"}`)), CodeMalformed},

		// alg "none" in any spelling, and algorithms we do not know.
		{"alg none", unsigned(`{"alg":"none"}`), CodeAlgNotAllowed},
		{"alg None", unsigned(`{"alg":"None"}`), CodeAlgNotAllowed},
		{"alg NONE with a kid", unsigned(`{"alg":"NONE","kid":"es256"}`), CodeAlgNotAllowed},
		{"alg nOnE with a signature", es(`{"alg":"nOnE","kid":"es256"}`, js(idp)), CodeAlgNotAllowed},
		{"alg unknown", es(`{"alg":"ES256K","kid":"es256"}`, js(idp)), CodeAlgNotAllowed},
		{"alg RS1 (prohibited)", es(`{"alg":"RS1","kid":"rs256"}`, js(idp)), CodeAlgNotAllowed},
		{"alg missing", es(`{"kid":"es256"}`, js(idp)), CodeMalformed},
		{"alg not a string", es(`{"alg":7,"kid":"es256"}`, js(idp)), CodeMalformed},
		{"kid not a string", es(`{"alg":"ES256","kid":1}`, js(idp)), CodeMalformed},
		{"typ not a string", es(`{"alg":"ES256","kid":"es256","typ":["JWT"]}`, js(idp)), CodeMalformed},

		// Algorithm confusion: a key is only used with its own family, curve
		// and pinned algorithm.
		{"HS256 keyed with the RSA public key PEM", sign(t, "HS256", rsaPEM, `{"alg":"HS256","kid":"rs256"}`, js(idp)), CodeAlgNotAllowed},
		{"HS256 keyed with the EC public key bytes", sign(t, "HS256", ecPublicBytes(t), `{"alg":"HS256","kid":"es256"}`, js(idp)), CodeAlgNotAllowed},
		{"HS256 without kid against an asymmetric issuer", sign(t, "HS256", rsaPEM, `{"alg":"HS256"}`, js(idp)), CodeAlgNotAllowed},
		{"RS256 against an EC key", sign(t, "RS256", k.rsa, `{"alg":"RS256","kid":"es256"}`, js(idp)), CodeAlgNotAllowed},
		{"ES256 against a P-384 key", es(`{"alg":"ES256","kid":"es384"}`, js(idp)), CodeAlgNotAllowed},
		{"ES384 against a P-256 key", sign(t, "ES384", k.p384, `{"alg":"ES384","kid":"es256"}`, js(idp)), CodeAlgNotAllowed},
		{"EdDSA against an EC key", sign(t, "EdDSA", k.ed, `{"alg":"EdDSA","kid":"es256"}`, js(idp)), CodeAlgNotAllowed},
		{"ES256 against the Ed25519 key", es(`{"alg":"ES256","kid":"eddsa"}`, js(idp)), CodeAlgNotAllowed},
		{"PS256 against a key pinned to RS256", sign(t, "PS256", k.rsa, `{"alg":"PS256","kid":"rs256"}`, js(idp)), CodeAlgNotAllowed},
		{"RS512 against a key pinned to RS256", sign(t, "RS512", k.rsa, `{"alg":"RS512","kid":"rs256"}`, js(idp)), CodeAlgNotAllowed},
		{"PS256 against an RSA key without alg (RS256 only)", sign(t, "PS256", k.rsa, `{"alg":"PS256","kid":"rsa-noalg"}`, js(idp)), CodeAlgNotAllowed},
		{"ES384 at an issuer pinned to ES256", sign(t, "ES384", k.p384, `{"alg":"ES384","typ":"at+jwt"}`, js(static)), CodeAlgNotAllowed},
		{"HS512 at an issuer pinned to HS256", sign(t, "HS512", k.hmac, `{"alg":"HS512"}`, js(claimsFor(devIssuer))), CodeAlgNotAllowed},
		{"RS256 at the HMAC issuer", sign(t, "RS256", k.rsa, `{"alg":"RS256"}`, js(claimsFor(devIssuer))), CodeAlgNotAllowed},

		// Embedded keys and extensions.
		{"embedded jwk", es(`{"alg":"ES256","kid":"es256","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}`, js(idp)), CodeMalformed},
		{"jku", es(`{"alg":"ES256","kid":"es256","jku":"https://evil.example/jwks"}`, js(idp)), CodeMalformed},
		{"x5u", es(`{"alg":"ES256","kid":"es256","x5u":"https://evil.example/cert"}`, js(idp)), CodeMalformed},
		{"x5c", es(`{"alg":"ES256","kid":"es256","x5c":["MIIB"]}`, js(idp)), CodeMalformed},
		{"crit", es(`{"alg":"ES256","kid":"es256","crit":["exp"],"exp":1}`, js(idp)), CodeMalformed},
		{"b64 false", es(`{"alg":"ES256","kid":"es256","b64":false,"crit":["b64"]}`, js(idp)), CodeMalformed},
		{"b64 alone", es(`{"alg":"ES256","kid":"es256","b64":true}`, js(idp)), CodeMalformed},

		// Registered claims of the wrong JSON type.
		{"exp as a string", esClaims("exp", "1795342200"), CodeMalformed},
		{"exp as a boolean", esClaims("exp", true), CodeMalformed},
		{"exp null", esClaims("exp", nil), CodeMalformed},
		{"nbf as a string", esClaims("nbf", "now"), CodeMalformed},
		{"iat as an object", esClaims("iat", map[string]any{"t": 1}), CodeMalformed},
		{"exp negative", esClaims("exp", -1), CodeMalformed},
		{"exp beyond year 9999", esClaims("exp", json.Number("1e300")), CodeMalformed},
		{"exp overflowing float64", esClaims("exp", json.Number("1e400")), CodeMalformed},
		{"iss as a number", esClaims("iss", 42), CodeMalformed},
		{"sub as a number", esClaims("sub", 7), CodeMalformed},
		{"jti as an array", esClaims("jti", []string{"a"}), CodeMalformed},
		{"aud as a number", esClaims("aud", 5), CodeMalformed},
		{"aud array with a number", esClaims("aud", []any{"orders-api", 5}), CodeMalformed},

		// Required claims.

		{"no exp", esClaims("exp", drop), CodeMissingClaim},
		{"no iat", esClaims("iat", drop), CodeMissingClaim},
		{"no sub", esClaims("sub", drop), CodeMissingClaim},
		{"empty sub", esClaims("sub", ""), CodeMissingClaim},
		{"empty payload object", es(esHeader, `{}`), CodeWrongIssuer},

		// Issuer and audience.
		{"unknown issuer", esClaims("iss", "https://evil.example/"), CodeWrongIssuer},
		{"no iss", esClaims("iss", drop), CodeWrongIssuer},
		{"issuer differing by a slash", esClaims("iss", "https://idp.example.com"), CodeWrongIssuer},
		{"no aud", esClaims("aud", drop), CodeWrongAudience},
		{"empty aud array", esClaims("aud", []string{}), CodeWrongAudience},
		{"aud of an empty string", esClaims("aud", ""), CodeWrongAudience},
		{"aud array of an empty string", esClaims("aud", []string{""}), CodeWrongAudience},
		{"wrong aud", esClaims("aud", "payments-api"), CodeWrongAudience},
		{"aud array without ours", esClaims("aud", []string{"a", "b"}), CodeWrongAudience},
		{"aud differing in case", esClaims("aud", "Orders-API"), CodeWrongAudience},

		// Time.
		{"expired", esClaims("iat", testNow.Add(-20*time.Minute).Unix(), "exp", testNow.Add(-time.Minute).Unix()), CodeExpired},
		{"not valid yet", esClaims("nbf", testNow.Add(5*time.Minute).Unix()), CodeNotYetValid},
		{"issued in the future", esClaims("iat", testNow.Add(2*time.Minute).Unix(), "exp", testNow.Add(10*time.Minute).Unix()), CodeIssuedInFuture},
		{"lifetime above max_lifetime", esClaims("iat", testNow.Add(-time.Minute).Unix(), "exp", testNow.Add(2*time.Hour).Unix()), CodeLifetimeTooLong},
		{"exp before iat", esClaims("iat", testNow.Unix(), "exp", testNow.Add(-time.Second).Unix()), CodeMalformed},

		// typ.
		{"required typ missing", sign(t, "ES256", k.p256, `{"alg":"ES256"}`, js(static)), CodeWrongType},
		{"required typ different", sign(t, "ES256", k.p256, `{"alg":"ES256","typ":"JWT"}`, js(static)), CodeWrongType},
		{"required typ as a suffix only", sign(t, "ES256", k.p256, `{"alg":"ES256","typ":"x-at+jwt"}`, js(static)), CodeWrongType},

		// Permission version.
		{"pv as a string", staticToken(t, with(static, "pv", "7")), CodeMalformed},
		{"pv fractional", staticToken(t, with(static, "pv", 7.5)), CodeMalformed},
		{"pv in exponent form", staticToken(t, with(static, "pv", json.Number("7e0"))), CodeMalformed},

		// Keys and signatures.
		{"unknown kid", sign(t, "ES256", k.p256, `{"alg":"ES256","kid":"rotated-away"}`, js(idp)), CodeUnknownKey},
		{"signature altered", h + "." + p + "." + replaceAt(s, 10, flip(s[10])), CodeBadSignature},
		{"payload altered", h + "." + enc(js(with(idp, "sub", "admin"))) + "." + s, CodeBadSignature},
		{"header altered", enc(`{"alg":"ES256","kid":"ec-noalg"}`) + "." + p + "." + s, CodeBadSignature},
		{"signed by another key under the same kid", sign(t, "ES256", k.p256Other, esHeader, js(idp)), CodeBadSignature},
		{"empty signature", h + "." + p + ".", CodeBadSignature},
		{"truncated signature", h + "." + p + "." + s[:40], CodeBadSignature},
		{"HMAC with a wrong secret", sign(t, "HS256", []byte("another-secret-of-at-least-32-bytes!"), `{"alg":"HS256"}`, js(claimsFor(devIssuer))), CodeBadSignature},
		{"PS256 with a salt longer than the hash (RFC 7518 §3.5)", psWithSalt(t, rsa.PSSSaltLengthAuto, idp), CodeBadSignature},
		{"PS256 with an empty salt", psWithSalt(t, 0, idp), CodeBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Verify(t.Context(), c.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", got)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if e.Code != c.want {
				t.Errorf("code %s, want %s (%v)", e.Code, c.want, err)
			}
			if e.Description == "" {
				t.Errorf("empty description: %v", err)
			}
			if got != nil {
				t.Errorf("claims %+v returned beside an error", got)
			}
		})
	}

	// The control: the same helpers produce accepted tokens.
	for _, token := range []string{valid, psWithSalt(t, rsa.PSSSaltLengthEqualsHash, idp)} {
		if _, err := v.Verify(t.Context(), token); err != nil {
			t.Errorf("control token refused: %v", err)
		}
	}
}

// TestVerifyPSSSaltLength guards keyFunc's replacement of golang-jwt's PS*
// method: if golang-jwt stopped honouring it, PS* would accept any salt.
func TestVerifyPSSSaltLength(t *testing.T) {
	v, _ := newTestVerifier(t, WithoutCache())
	idp := claimsFor(idpIssuer)
	for _, tc := range []struct {
		salt int
		ok   bool
	}{{rsa.PSSSaltLengthEqualsHash, true}, {sha256.Size, true}, {rsa.PSSSaltLengthAuto, false}, {0, false}, {sha256.Size + 1, false}} {
		_, err := v.Verify(t.Context(), psWithSalt(t, tc.salt, idp))
		if (err == nil) != tc.ok {
			t.Errorf("salt length %d: err %v, want ok=%v", tc.salt, err, tc.ok)
		}
	}
}

func TestVerifyCache(t *testing.T) {
	now := testNow
	v, _ := newTestVerifier(t, WithClock(func() time.Time { return now }))
	token := idpToken(t, "es256", with(claimsFor(idpIssuer), "exp", testNow.Add(time.Minute).Unix()))

	first, err := v.Verify(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	second, err := v.Verify(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Error("second Verify did not come from the cache")
	}
	if hits, misses := v.CacheStats(); hits != 1 || misses != 1 {
		t.Errorf("CacheStats = %d hits, %d misses; want 1, 1", hits, misses)
	}

	// An entry never outlives exp (+ leeway), even though it is cached.
	now = testNow.Add(time.Minute + DefaultLeeway)
	if _, err := v.Verify(t.Context(), token); codeOf(err) != CodeExpired {
		t.Errorf("after exp: %v, want %s", err, CodeExpired)
	}

	// Failures are not cached: the same bad token fails fully every time.
	now = testNow
	bad := idpToken(t, "es256", with(claimsFor(idpIssuer), "aud", "nobody"))
	for range 2 {
		if _, err := v.Verify(t.Context(), bad); codeOf(err) != CodeWrongAudience {
			t.Errorf("bad token: %v", err)
		}
	}
	if hits, _ := v.CacheStats(); hits != 1 {
		t.Errorf("hits = %d after failures, want still 1", hits)
	}

	// A token cached before its nbf window is not served before it.
	future := idpToken(t, "es256", with(claimsFor(idpIssuer), "nbf", testNow.Add(time.Minute).Unix()))
	now = testNow.Add(time.Minute)
	if _, err := v.Verify(t.Context(), future); err != nil {
		t.Fatal(err)
	}
	now = testNow
	if _, err := v.Verify(t.Context(), future); codeOf(err) != CodeNotYetValid {
		t.Errorf("cached token before nbf: %v, want %s", err, CodeNotYetValid)
	}
}

// TestVerifyCacheSize: tokens.cache_size bounds the cache, and the token
// used least recently is the one that leaves it.
func TestVerifyCacheSize(t *testing.T) {
	srv := newJWKSServer(t)
	srv.publish(t, idpJWKS()...)
	cfg := testConfig(t, srv.URL)
	cfg.CacheSize = 2
	v, err := NewVerifier(t.Context(), cfg, WithClock(func() time.Time { return testNow }), WithLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, sub := range []string{"a", "b", "c"} {
		tokens[sub] = idpToken(t, "es256", with(claimsFor(idpIssuer), "sub", sub))
	}
	// a, b fill the cache; a is used again, so c evicts b, the least recent.
	for i, sub := range []string{"a", "b", "a", "c", "a", "b"} {
		if _, err := v.Verify(t.Context(), tokens[sub]); err != nil {
			t.Fatalf("Verify #%d (%s): %v", i, sub, err)
		}
	}
	// misses: a, b, c, and b again; hits: a twice.
	if hits, misses := v.CacheStats(); hits != 2 || misses != 4 {
		t.Errorf("CacheStats = %d hits, %d misses; want 2, 4", hits, misses)
	}
}

func TestVerifyWithoutCache(t *testing.T) {
	v, _ := newTestVerifier(t, WithoutCache())
	token := devToken(t, claimsFor(devIssuer))
	for range 3 {
		if _, err := v.Verify(t.Context(), token); err != nil {
			t.Fatal(err)
		}
	}
	if hits, misses := v.CacheStats(); hits != 0 || misses != 0 {
		t.Errorf("CacheStats = %d, %d with the cache disabled", hits, misses)
	}
}

func TestErrorShape(t *testing.T) {
	v, _ := newTestVerifier(t)
	_, err := v.Verify(t.Context(), idpToken(t, "es256", with(claimsFor(idpIssuer), "iss", "https://evil.example/")))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%T is not *Error", err)
	}
	if strings.Contains(e.Description, "evil") {
		t.Errorf("description echoes token content: %q", e.Description)
	}
	if !strings.Contains(err.Error(), "evil") || !strings.HasPrefix(err.Error(), string(CodeWrongIssuer)) {
		t.Errorf("Error() = %q, want the code first and the cause (with the iss) for the log", err.Error())
	}
	if e.Unwrap() == nil {
		t.Error("Unwrap() = nil, want the cause")
	}
}

func codeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func splitToken(t *testing.T, token string) (h, p, s string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a compact JWS", token)
	}
	return parts[0], parts[1], parts[2]
}

func replaceAt(s string, i int, c byte) string { return s[:i] + string(c) + s[i+1:] }

// flip returns another base64url character, whose low bits stay as they are
// (so the encoding stays canonical even at the last position).
func flip(c byte) byte {
	if c == 'A' {
		return 'E'
	}
	return 'A'
}

// nonCanonical sets unused trailing bits of a segment's last character:
// the same bytes, a different encoding.
func nonCanonical(t *testing.T, seg string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 == 0 {
		t.Fatalf("segment %q has no unused bits", seg)
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

// ecPublicBytes is the uncompressed point of the IdP's P-256 key: what an
// attacker would use as an HMAC secret in the classic confusion attack.
func ecPublicBytes(t *testing.T) []byte {
	t.Helper()
	pub, err := keys().p256.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// psWithSalt signs the claims PS256 with the given PSS salt length.
func psWithSalt(t *testing.T, salt int, claims map[string]any) string {
	t.Helper()
	input := enc(`{"alg":"PS256","kid":"ps256"}`) + "." + enc(js(claims))
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPSS(rand.Reader, keys().rsa, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: salt})
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc(sig)
}

// TestClassify pins the precedence among golang-jwt's joined validation
// errors: what a fresh token cannot fix comes before what it can.
func TestClassify(t *testing.T) {
	joined := func(errs ...error) error {
		return fmt.Errorf("%w: %w", jwt.ErrTokenInvalidClaims, errors.Join(errs...))
	}
	ours := fail(CodeUnknownKey, "", "from the key function")
	for _, tc := range []struct {
		name string
		err  error
		want Code
	}{
		{"our own error inside golang-jwt's", fmt.Errorf("%w: %w", jwt.ErrTokenUnverifiable, ours), CodeUnknownKey},
		{"signature", fmt.Errorf("%w: x", jwt.ErrTokenSignatureInvalid), CodeBadSignature},
		{"malformed", jwt.ErrTokenMalformed, CodeMalformed},
		{"expired", joined(jwt.ErrTokenExpired), CodeExpired},
		{"expired and wrong audience", joined(jwt.ErrTokenExpired, jwt.ErrTokenInvalidAudience), CodeWrongAudience},
		{"expired and issued in the future", joined(jwt.ErrTokenExpired, jwt.ErrTokenUsedBeforeIssued), CodeIssuedInFuture},
		{"expired and not valid yet", joined(jwt.ErrTokenNotValidYet, jwt.ErrTokenExpired), CodeNotYetValid},
		{"wrong issuer", joined(jwt.ErrTokenInvalidIssuer), CodeWrongIssuer},
		{"required claim", joined(jwt.ErrTokenRequiredClaimMissing), CodeMissingClaim},
		{"unknown error fails closed", errors.New("surprise"), CodeMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err); got.Code != tc.want {
				t.Errorf("classify = %v, want %s", got, tc.want)
			}
		})
	}
}
