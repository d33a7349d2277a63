package decision_test

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

// issuedAt is the fixed issue time of test tokens.
var issuedAt = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// token returns verified claims as claims.Verifier would produce them for a
// token of sub carrying roles (no roles claim at all when roles is nil).
func token(sub string, roles []any) *claims.Claims {
	raw := map[string]any{
		"sub": sub,
		"iss": "warden-dev",
		"aud": "warden",
		"iat": json.Number("1795428000"),
		"exp": json.Number("1795428900"),
		"jti": "tok-" + sub,
	}
	if roles != nil {
		raw["roles"] = roles
	}
	return &claims.Claims{
		Subject:   sub,
		Issuer:    "warden-dev",
		Audience:  []string{"warden"},
		IssuedAt:  issuedAt,
		ExpiresAt: issuedAt.Add(15 * time.Minute),
		ID:        "tok-" + sub,
		Header:    claims.Header{Alg: "ES256", Kid: "dev-1", Typ: "JWT"},
		Raw:       raw,
	}
}

// testLogger sends the engine's log to the test's output, where it shows
// only for failing tests (and with -v).
func testLogger(t testing.TB) *slog.Logger {
	var w io.Writer = io.Discard
	if tt, ok := t.(*testing.T); ok {
		w = tt.Output()
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// relaxed is the EvalTimeout of tests that are not about timeouts: under
// -race on a busy machine a decision can take longer than the 50ms default.
const relaxed = 10 * time.Second

// shippedEngine is an engine over the policies Warden ships.
func shippedEngine(t testing.TB, opts decision.Options) *decision.Engine {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.EvalTimeout == 0 {
		opts.EvalTimeout = relaxed
	}
	e, err := decision.NewEngine(context.Background(), policies.FS(), opts)
	if err != nil {
		t.Fatalf("NewEngine(shipped policies): %v", err)
	}
	return e
}

// fixture is the policy set in testdata/policies/<name> at the root of the
// repository (cmd/warden's tests run some of the same sets through the CLI).
// Tests assert rows of these files: see testdata/policies/README.md.
func fixture(t testing.TB, name string) fs.FS {
	t.Helper()
	dir := filepath.Join("..", "testdata", "policies", name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("policy fixture: %v", err)
	}
	return os.DirFS(dir)
}

// withClaim sets one raw claim of c, for tables that need an odd claim.
func withClaim(c *claims.Claims, name string, value any) *claims.Claims {
	c.Raw[name] = value
	return c
}

// testOptions are the engine options of most tests.
func testOptions(t testing.TB) decision.Options {
	return decision.Options{Logger: testLogger(t), EvalTimeout: relaxed}
}
