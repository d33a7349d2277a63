package decision_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

// Decide whether a manager may approve an order, with the policies Warden
// ships. In the server, the claims come from claims.Verifier.Verify.
func ExampleEngine_Decide() {
	ctx := context.Background()
	engine, err := decision.NewEngine(ctx, policies.FS(), decision.Options{})
	if err != nil {
		log.Fatal(err)
	}

	iat := time.Now()
	alice := &claims.Claims{
		Subject:   "alice",
		Issuer:    "warden-dev",
		Audience:  []string{"warden"},
		IssuedAt:  iat,
		ExpiresAt: iat.Add(15 * time.Minute),
		Header:    claims.Header{Alg: "ES256"},
		Raw: map[string]any{
			"sub":   "alice",
			"iss":   "warden-dev",
			"aud":   "warden",
			"iat":   json.Number(fmt.Sprint(iat.Unix())),
			"exp":   json.Number(fmt.Sprint(iat.Add(15 * time.Minute).Unix())),
			"roles": []any{"manager"},
		},
	}
	d := engine.Decide(ctx, decision.Input{
		Claims:   alice,
		Action:   "orders:approve",
		Resource: map[string]any{"type": "order", "id": "42", "owner": "bob"},
	})
	fmt.Println(d.Allow, d.Reason, d.Reasons, d.Headers)

	d = engine.Decide(ctx, decision.Input{Claims: alice, Action: "orders:delete"})
	fmt.Println(d.Allow, d.Reason, d.Reasons, d.Headers)
	// Output:
	// true allowed [role manager grants orders:approve] map[x-warden-subject:alice]
	// false policy_denied [no role grants orders:delete] map[]
}
