package claims

import (
	"context"
	"testing"
	"time"
)

// TestVerifySETs checks the SET mode (WithSETs): RFC 8417's typ, no sub or
// exp needed, iat still required, an exp present still checked, and the
// ordinary checks unchanged.
func TestVerifySETs(t *testing.T) {
	key := writeFile(t, t.TempDir(), "set.pem", pemPublic(t, keys().p256.Public()))
	cfg := Config{Issuers: []IssuerConfig{{Issuer: "https://tx.example.com/", Audiences: []string{"warden"}, PublicKeys: []string{key}}}}
	sets, err := NewVerifier(context.Background(), cfg, WithSETs(), WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := NewVerifier(context.Background(), cfg, WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]any{
		"iss": "https://tx.example.com/", "aud": "warden", "iat": testNow.Add(-time.Second).Unix(), "jti": "set-1",
		"events": map[string]any{"https://schemas.openid.net/secevent/caep/event-type/session-revoked": map[string]any{}},
	}
	signed := func(typ string, claims map[string]any) string {
		header := map[string]any{"alg": "ES256"}
		if typ != "" {
			header["typ"] = typ
		}
		return sign(t, "ES256", keys().p256, js(header), js(claims))
	}
	tests := []struct {
		name  string
		token string
		want  Code // "" accepts
	}{
		{"a SET", signed("secevent+jwt", set), ""},
		{"typ with the application/ prefix", signed("application/secevent+jwt", set), ""},
		{"an exp in the future", signed("secevent+jwt", with(set, "exp", testNow.Add(time.Minute).Unix())), ""},
		{"no typ", signed("", set), CodeWrongType},
		{"typ JWT", signed("JWT", set), CodeWrongType},
		{"no iat", signed("secevent+jwt", with(set, "iat", drop)), CodeMissingClaim},
		{"expired", signed("secevent+jwt", with(set, "exp", testNow.Add(-time.Hour).Unix())), CodeExpired},
		{"wrong audience", signed("secevent+jwt", with(set, "aud", "other")), CodeWrongAudience},
		{"wrong issuer", signed("secevent+jwt", with(set, "iss", "https://evil/")), CodeWrongIssuer},
		{"bad signature", signed("secevent+jwt", set)[:len(signed("secevent+jwt", set))-4] + "AAAA", CodeBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := sets.Verify(context.Background(), tt.token)
			if got := codeOf(err); got != tt.want {
				t.Fatalf("Verify: %v, want code %q", err, tt.want)
			}
			if tt.want == "" && (c.ID != "set-1" || c.Raw["events"] == nil) {
				t.Errorf("claims = %+v", c)
			}
		})
	}
	// An access-token verifier with the same keys refuses a SET: it has no exp.
	if _, err := tokens.Verify(context.Background(), signed("secevent+jwt", set)); codeOf(err) != CodeMissingClaim {
		t.Errorf("token verifier on a SET: %v, want token_missing_claim", err)
	}
}
