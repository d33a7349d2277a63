package claims

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests run the Verifier against a real JWKS endpoint (httptest) and
// count the requests it receives.

// jwksVerifier builds a Verifier with one issuer, the IdP, on srv.
func jwksVerifier(t *testing.T, ctx context.Context, srv *jwksServer, opts ...Option) *Verifier {
	t.Helper()
	cfg := Config{Issuers: []IssuerConfig{{Issuer: idpIssuer, Audiences: []string{"orders-api"}, JWKSURL: srv.URL}}}
	opts = append([]Option{WithClock(func() time.Time { return testNow }), WithLogger(quietLog())}, opts...)
	v, err := NewVerifier(ctx, cfg, opts...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func newP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ecToken is a valid IdP token signed by key under kid.
func ecToken(t *testing.T, key *ecdsa.PrivateKey, kid string) string {
	t.Helper()
	return sign(t, "ES256", key, js(map[string]any{"alg": "ES256", "kid": kid}), js(claimsFor(idpIssuer)))
}

func wantCode(t *testing.T, v *Verifier, token string, want Code) {
	t.Helper()
	_, err := v.Verify(t.Context(), token)
	if got := codeOf(err); got != want || (want == "") != (err == nil) {
		t.Errorf("Verify = %v, want code %q", err, want)
	}
}

func TestJWKSRotation(t *testing.T) {
	srv := newJWKSServer(t)
	a, b, c := newP256(t), newP256(t), newP256(t)
	srv.publish(t, jwk{kid: "k1", alg: "ES256", key: a.Public()})
	// Unknown-kid refreshes are allowed back to back here; the flood test
	// checks the limit.
	v := jwksVerifier(t, t.Context(), srv, WithJWKSRefresh(time.Hour, time.Nanosecond))

	k1, k2 := ecToken(t, a, "k1"), ecToken(t, b, "k2")
	wantCode(t, v, k1, "")
	wantCode(t, v, k1, "") // now cached
	wantCode(t, v, k2, CodeUnknownKey)

	t.Run("a new kid is picked up on first use", func(t *testing.T) {
		srv.publish(t, jwk{kid: "k1", alg: "ES256", key: a.Public()}, jwk{kid: "k2", alg: "ES256", key: b.Public()})
		before := srv.requests.Load()
		wantCode(t, v, k2, "")
		if got := srv.requests.Load() - before; got != 1 {
			t.Errorf("%d JWKS fetches for the new kid, want 1", got)
		}
	})

	t.Run("an unchanged key survives a refresh in the cache", func(t *testing.T) {
		hits, _ := v.CacheStats()
		wantCode(t, v, ecToken(t, a, "unknown"), CodeUnknownKey) // forces a fetch
		wantCode(t, v, k1, "")
		if h, _ := v.CacheStats(); h != hits+1 {
			t.Errorf("k1 was not served from the cache after a refresh that kept its key")
		}
	})

	t.Run("a removed key stops verifying after the refresh, cached or not", func(t *testing.T) {
		srv.publish(t, jwk{kid: "k2", alg: "ES256", key: b.Public()})
		wantCode(t, v, k1, "") // no refresh yet: still ours
		wantCode(t, v, ecToken(t, a, "unknown"), CodeUnknownKey)
		wantCode(t, v, k1, CodeUnknownKey)
		wantCode(t, v, k2, "")
	})

	t.Run("a kid whose key material changed stops verifying", func(t *testing.T) {
		srv.publish(t, jwk{kid: "k2", alg: "ES256", key: c.Public()})
		wantCode(t, v, ecToken(t, a, "unknown"), CodeUnknownKey)
		wantCode(t, v, k2, CodeBadSignature)
		wantCode(t, v, ecToken(t, c, "k2"), "")
	})
}

func TestJWKSPeriodicRefresh(t *testing.T) {
	srv := newJWKSServer(t)
	a := newP256(t)
	srv.publish(t, jwk{kid: "k1", alg: "ES256", key: a.Public()})
	v := jwksVerifier(t, t.Context(), srv, WithJWKSRefresh(20*time.Millisecond, time.Hour))
	token := ecToken(t, a, "k1")
	wantCode(t, v, token, "")

	srv.publish(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(t.Context(), token)
		if codeOf(err) == CodeUnknownKey {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key removed from the JWKS still verifies after 5 s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJWKSUnknownKIDFlood(t *testing.T) {
	srv := newJWKSServer(t)
	a := newP256(t)
	srv.publish(t, jwk{kid: "k1", alg: "ES256", key: a.Public()})
	v := jwksVerifier(t, t.Context(), srv, WithJWKSRefresh(time.Hour, time.Minute))
	start := srv.requests.Load()

	const n = 200
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = ecToken(t, a, fmt.Sprintf("random-%d-%x", i, randomBytes(t, 8)))
	}
	began := time.Now()
	var wg sync.WaitGroup
	codes := make([]Code, n)
	for i, token := range tokens {
		wg.Go(func() {
			_, err := v.Verify(t.Context(), token)
			codes[i] = codeOf(err)
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != CodeUnknownKey {
			t.Fatalf("token %d: code %q, want %s", i, c, CodeUnknownKey)
		}
	}
	if fetched := srv.requests.Load() - start; fetched > 1 {
		t.Errorf("%d unknown kids caused %d JWKS fetches, want at most 1", n, fetched)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("refusing %d unknown kids took %v: requests waited on the limiter", n, took)
	}
	// The known key is unaffected.
	wantCode(t, v, ecToken(t, a, "k1"), "")
}

func TestJWKSUnavailableAtStart(t *testing.T) {
	srv := newJWKSServer(t)
	a := newP256(t)
	srv.publish(t, jwk{kid: "k1", alg: "ES256", key: a.Public()})
	srv.failing.Store(true)

	v := jwksVerifier(t, t.Context(), srv, WithJWKSRefresh(time.Hour, time.Nanosecond))
	token := ecToken(t, a, "k1")
	wantCode(t, v, token, CodeUnknownKey) // fail closed

	srv.failing.Store(false)
	wantCode(t, v, token, "")

	// A failed fetch later keeps the keys we have.
	srv.failing.Store(true)
	wantCode(t, v, ecToken(t, a, "unknown"), CodeUnknownKey)
	wantCode(t, v, token, "")
}

func TestJWKSUnreachableURL(t *testing.T) {
	srv := newJWKSServer(t)
	url := srv.URL
	srv.Close() // nothing listens there any more
	cfg := Config{Issuers: []IssuerConfig{{Issuer: idpIssuer, Audiences: []string{"orders-api"}, JWKSURL: url}}}
	v, err := NewVerifier(t.Context(), cfg, WithClock(func() time.Time { return testNow }), WithLogger(quietLog()))
	if err != nil {
		t.Fatalf("NewVerifier with an unreachable JWKS: %v", err)
	}
	wantCode(t, v, ecToken(t, newP256(t), "k1"), CodeUnknownKey)
}

func TestJWKSUnusableKeys(t *testing.T) {
	srv := newJWKSServer(t)
	good, other := newP256(t), newP256(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	x, y := jwkCoordinates(t, good)
	d := enc(good.D.FillBytes(make([]byte, 32)))
	ec := func(extra string) string {
		return `{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + y + `"` + extra + `}`
	}
	keysJSON := []string{
		ec(`,"kid":"good","alg":"ES256","use":"sig"`),
		ec(`,"kid":"enc","use":"enc"`),
		ec(`,"kid":"encrypt-only","key_ops":["encrypt"]`),
		ec(`,"kid":"private","d":"` + d + `"`),
		ec(`,"kid":"wrong-alg","alg":"ES384"`),
		ec(`,"kid":"rsa-alg","alg":"RS256"`),
		ec(`,"kid":"dup"`),
		ec(`,"kid":"dup","alg":"ES256"`),
		`{"kty":"oct","kid":"oct","k":"` + enc(strings.Repeat("s", 32)) + `"}`,
		`{"kty":"RSA","kid":"rsa1024","n":"` + enc(weak.N.Bytes()) + `","e":"AQAB"}`,
	}
	srv.serve([]byte(`{"keys":[` + strings.Join(keysJSON, ",") + `]}`))
	v := jwksVerifier(t, t.Context(), srv)

	wantCode(t, v, ecToken(t, good, "good"), "")
	for _, kid := range []string{"enc", "encrypt-only", "private", "wrong-alg", "rsa-alg", "dup"} {
		t.Run(kid, func(t *testing.T) { wantCode(t, v, ecToken(t, good, kid), CodeUnknownKey) })
	}
	t.Run("oct", func(t *testing.T) {
		wantCode(t, v, sign(t, "HS256", []byte(strings.Repeat("s", 32)), `{"alg":"HS256","kid":"oct"}`, js(claimsFor(idpIssuer))), CodeUnknownKey)
	})
	t.Run("rsa1024", func(t *testing.T) {
		wantCode(t, v, sign(t, "RS256", weak, `{"alg":"RS256","kid":"rsa1024"}`, js(claimsFor(idpIssuer))), CodeUnknownKey)
	})
	wantCode(t, v, ecToken(t, other, "good"), CodeBadSignature)
}

func TestJWKSResponseTooLarge(t *testing.T) {
	srv := newJWKSServer(t)
	a := newP256(t)
	x, y := jwkCoordinates(t, a)
	srv.serve([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"` + x + `","y":"` + y + `"}],"padding":"` +
		strings.Repeat("p", maxJWKSBytes) + `"}`))
	v := jwksVerifier(t, t.Context(), srv)
	wantCode(t, v, ecToken(t, a, "k1"), CodeUnknownKey)
}

func TestJWKSContext(t *testing.T) {
	a := newP256(t)

	t.Run("a cancelled request context fetches nothing", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.publish(t, jwk{kid: "k1", alg: "ES256", key: a.Public()})
		v := jwksVerifier(t, t.Context(), srv, WithJWKSRefresh(time.Hour, time.Nanosecond))
		reqCtx, cancel := context.WithCancel(t.Context())
		cancel()
		before := srv.requests.Load()
		if _, err := v.Verify(reqCtx, ecToken(t, a, "unknown")); codeOf(err) != CodeUnknownKey {
			t.Errorf("Verify = %v, want %s", err, CodeUnknownKey)
		}
		if got := srv.requests.Load(); got != before {
			t.Errorf("%d fetches with a cancelled request context", got-before)
		}
	})

	t.Run("cancelling the Verifier's context stops the periodic refresh", func(t *testing.T) {
		srv := newJWKSServer(t)
		srv.publish(t, jwk{kid: "k1", alg: "ES256", key: a.Public()})
		ctx, cancel := context.WithCancel(t.Context())
		v := jwksVerifier(t, ctx, srv, WithJWKSRefresh(10*time.Millisecond, time.Hour))
		for deadline := time.Now().Add(5 * time.Second); srv.requests.Load() < 3; { // the refresh runs
			if time.Now().After(deadline) {
				t.Fatal("no periodic refresh within 5 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		time.Sleep(50 * time.Millisecond) // let a fetch in flight finish
		before := srv.requests.Load()
		time.Sleep(100 * time.Millisecond)
		if got := srv.requests.Load(); got != before {
			t.Errorf("%d fetches after the context was cancelled", got-before)
		}
		// Keys already fetched still verify.
		wantCode(t, v, ecToken(t, a, "k1"), "")
	})
}

func jwkCoordinates(t *testing.T, k *ecdsa.PrivateKey) (x, y string) {
	t.Helper()
	b, err := k.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	return enc(b[1:33]), enc(b[33:])
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestJWKSRedirectRefused: an https jwks_url that redirects (here to a
// server with a valid key set) is not followed, even when the given client
// would follow it; the keys behind the redirect are never fetched, and the
// issuer's tokens fail closed.
func TestJWKSRedirectRefused(t *testing.T) {
	target := newJWKSServer(t)
	a := newP256(t)
	target.publish(t, jwk{kid: "k1", alg: "ES256", key: a.Public()})
	for _, code := range []int{http.StatusFound, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			redirector := httptest.NewServer(http.RedirectHandler(target.URL, code))
			t.Cleanup(redirector.Close)
			before := target.requests.Load()
			cfg := Config{Issuers: []IssuerConfig{{Issuer: idpIssuer, Audiences: []string{"orders-api"}, JWKSURL: redirector.URL}}}
			follows := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
			v, err := NewVerifier(t.Context(), cfg, WithClock(func() time.Time { return testNow }), WithLogger(quietLog()),
				WithHTTPClient(follows), WithJWKSRefresh(time.Hour, time.Nanosecond))
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, v, ecToken(t, a, "k1"), CodeUnknownKey)
			if n := target.requests.Load() - before; n != 0 {
				t.Errorf("the redirect target was asked %d times", n)
			}
		})
	}
	if err := refuseRedirect(httptest.NewRequest("GET", "http://evil.example/keys", nil),
		[]*http.Request{httptest.NewRequest("GET", "https://idp.example/jwks", nil)}); !errors.Is(err, errJWKSRedirect) ||
		!strings.Contains(err.Error(), "https://idp.example/jwks -> http://evil.example/keys") {
		t.Errorf("refuseRedirect = %v", err)
	}
}

func TestJWKSHTTPClient(t *testing.T) {
	srv := newJWKSServer(t)
	a := newP256(t)
	srv.publish(t, jwk{kid: "k1", alg: "ES256", key: a.Public()})
	var used atomic.Int64
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Add(1)
		r.Header.Set("X-Test", "1")
		return http.DefaultTransport.RoundTrip(r)
	})}
	original := *client
	v := jwksVerifier(t, t.Context(), srv, WithHTTPClient(client))
	wantCode(t, v, ecToken(t, a, "k1"), "")
	if used.Load() == 0 {
		t.Error("the JWKS was not fetched through the given client")
	}
	if client.Timeout != original.Timeout || fmt.Sprint(client.Transport) != fmt.Sprint(original.Transport) {
		t.Error("the given client was modified")
	}
}

// TestLoggerDefault checks the rule every Warden package follows: without
// WithLogger the Verifier's log (here, a JWKS that cannot be fetched) is
// discarded, never written to the process's default logger; with it, the
// given logger gets it.
func TestLoggerDefault(t *testing.T) {
	var global bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&global, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	cfg := Config{Issuers: []IssuerConfig{{Issuer: idpIssuer, Audiences: []string{"orders-api"}, JWKSURL: down.URL}}}

	if _, err := NewVerifier(t.Context(), cfg); err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	if global.Len() != 0 {
		t.Errorf("a Verifier without WithLogger wrote to slog.Default():\n%s", global.String())
	}

	var own bytes.Buffer
	if _, err := NewVerifier(t.Context(), cfg, WithLogger(slog.New(slog.NewTextHandler(&own, nil)))); err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	if !strings.Contains(own.String(), "no usable keys from the JWKS yet") {
		t.Errorf("the Verifier's logger got %q, want the failed JWKS fetch", own.String())
	}
	if global.Len() != 0 {
		t.Errorf("a Verifier with WithLogger wrote to slog.Default():\n%s", global.String())
	}
}
