package claims

import (
	"testing"
)

// Run with: go test -run XXX -bench . -benchtime 2000x ./claims/

// BenchmarkVerifyCold is a full verification per call: the cache is
// disabled, so every call pays the structural checks, the key lookup, the
// signature and the claims.
func BenchmarkVerifyCold(b *testing.B) {
	v, _ := newTestVerifier(b, WithoutCache())
	idp := claimsFor(idpIssuer)
	for _, tc := range []struct{ name, token string }{
		{"RS256", idpToken(b, "rs256", idp)},
		{"PS256", idpToken(b, "ps256", idp)},
		{"ES256", idpToken(b, "es256", idp)},
		{"EdDSA", idpToken(b, "eddsa", idp)},
		{"HS256", devToken(b, claimsFor(devIssuer))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if _, err := v.Verify(b.Context(), tc.token); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), tc.token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyCached is the hit path: hash the token, look it up, check
// exp, nbf and the key, return the shared Claims.
func BenchmarkVerifyCached(b *testing.B) {
	v, _ := newTestVerifier(b)
	token := idpToken(b, "rs256", claimsFor(idpIssuer))
	if _, err := v.Verify(b.Context(), token); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(b.Context(), token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(b.Context(), token); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	if hits, _ := v.CacheStats(); hits == 0 {
		b.Fatal("no cache hits")
	}
}

// BenchmarkRefuse is the cost of refusing hostile tokens, which never reach
// the cache: structure, unknown issuer, unknown kid.
func BenchmarkRefuse(b *testing.B) {
	v, _ := newTestVerifier(b)
	k := keys()
	idp := claimsFor(idpIssuer)
	for _, tc := range []struct{ name, token string }{
		{"bad base64", "eyJ+.e30.AA"},
		{"alg none", enc(`{"alg":"none"}`) + "." + enc(js(idp)) + "."},
		{"unknown issuer", idpToken(b, "es256", with(idp, "iss", "https://evil.example/"))},
		{"bad ES256 signature", sign(b, "ES256", k.p256Other, `{"alg":"ES256","kid":"es256"}`, js(idp))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), tc.token); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}
