package decision_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"testing/fstest"
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

// Run the tests of a policy set, as `warden policy test` does, and see
// which failed and where.
func ExampleTest() {
	set := fstest.MapFS{
		"authz.rego": {Data: []byte("package warden.authz\n\ndefault allow := false\n\nallow if \"manager\" in input.token.claims.roles\n")},
		"authz_test.rego": {Data: []byte(`package warden.authz_test

import data.warden.authz

test_manager_allowed if {
	authz.allow with input.token.claims as {"sub": "alice", "roles": ["manager"]}
}

test_staff_allowed if {
	authz.allow with input.token.claims as {"sub": "carol", "roles": ["staff"]}
}
`)},
	}
	report, err := decision.Test(context.Background(), set, decision.TestOptions{Coverage: true})
	if err != nil {
		log.Fatal(err) // the set does not compile: a *decision.PolicyError
	}
	for _, t := range report.Tests {
		fmt.Printf("%s: %s\n", t.Name, t.Outcome)
		if f := t.Failure; f != nil {
			fmt.Printf("  failed at %s:%d: %s\n", f.File, f.Row, f.Expr[0])
		}
	}
	fmt.Printf("passed: %v; authz.rego %.0f%% covered\n", report.Passed(), report.Coverage.Files[0].Percent)
	// Output:
	// test_manager_allowed: pass
	// test_staff_allowed: fail
	//   failed at authz_test.rego:10: authz.allow with input.token.claims as {"sub": "carol", "roles": ["staff"]}
	// passed: false; authz.rego 100% covered
}

// Check a policy set the way an engine does before activating it, plus
// OPA's strict mode, as `warden policy check` does.
func ExampleCheck() {
	set := fstest.MapFS{
		"authz.rego": {Data: []byte("package warden.authz\n\nallow if {\n\tresp := http.send({\"method\": \"GET\", \"url\": \"https://example.com/\"})\n\tresp.status_code == 200\n}\n")},
	}
	_, err := decision.Check(context.Background(), set, decision.CheckOptions{Strict: true})
	var pe *decision.PolicyError
	if errors.As(err, &pe) {
		for _, p := range pe.Problems {
			fmt.Printf("%s:%d:%d: %s\n", p.File, p.Row, p.Col, p.Code)
		}
	}
	// Output:
	// authz.rego:4:10: restricted_builtin
}
