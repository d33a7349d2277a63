package decision

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"testing/fstest"
	"time"

	"github.com/wardenauthz/warden/claims"
)

var variants = map[string]string{
	"M-owner-in-deny": `
default allow := false
allow if { some role in input.token.claims.roles; input.action in data.roles[role] }
allow if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons contains "ok" if allow
reasons contains sprintf("order owned by %s", [input.resource.owner]) if not allow`,
	"N-default-reasons": `
default allow := false
default reasons := []
allow if { some role in input.token.claims.roles; input.action in data.roles[role] }
allow if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons := ["granted"] if allow`,
	"Q-else-chain": `
default allow := false
allow if { some role in input.token.claims.roles; input.action in data.roles[role] }
allow if is_owner_read
is_owner_read if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons := ["owner"] if is_owner_read
	else := ["role"] if allow
	else := ["denied"]`,
	"J-array-compr": `
default allow := false
allow if count(grants) > 0
grants contains "role" if { some role in input.token.claims.roles; input.action in data.roles[role] }
grants contains "owner" if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons := [g | some g in grants] if allow
reasons := ["no grant for " | concat("", [input.action])] if not allow`,
	"R-user-attrs": `
default allow := false
user := {"id": input.subject, "roles": object.get(input.token.claims, "roles", [])}
allow if { some role in user.roles; input.action in data.roles[role] }
allow if { input.action == "orders:read"; input.resource.owner == user.id }
reasons contains "ok" if allow`,
	"A-shipped-like": `
default allow := false
allow if count(grants) > 0
grants contains sprintf("role %s grants %s", [role, input.action]) if {
	some role in roles
	input.action in data.roles[role]
}
grants contains sprintf("subject %s owns the resource", [input.subject]) if {
	input.action == "orders:read"
	input.subject != ""
	input.resource.owner == input.subject
}
roles := input.token.claims.roles if is_array(input.token.claims.roles)
reasons := grants if allow
reasons := denials if not allow
denials contains sprintf("no role grants %s", [input.action]) if is_array(input.token.claims.roles)
denials contains "token has no roles claim" if not "roles" in object.keys(input.token.claims)
headers := {"x-warden-subject": input.subject} if allow`,
	"B-claims-var": `
claims := input.token.claims
default allow := false
allow if count(grants) > 0
roles := claims.roles if is_array(claims.roles)
grants contains sprintf("role %s grants %s", [role, input.action]) if {
	some role in roles
	input.action in data.roles[role]
}
grants contains sprintf("subject %s owns the resource", [claims.sub]) if {
	input.action == "orders:read"
	claims.sub != ""
	input.resource.owner == claims.sub
}
reasons := grants if allow
reasons := denials if not allow
denials contains sprintf("no role grants %s", [input.action]) if is_array(claims.roles)
denials contains "token has no roles claim" if not "roles" in object.keys(claims)`,
	"C-is-owner-rule": `
default allow := false
allow if has_role
allow if { input.action == "orders:read"; is_owner }
has_role if { some role in input.token.claims.roles; input.action in data.roles[role] }
is_owner if input.resource.owner == input.subject
reasons contains "role" if has_role
reasons contains "owner" if { input.action == "orders:read"; is_owner }
reasons contains "denied" if not allow`,
	"D-bool-assign": `
default allow := false
is_owner := input.resource.owner == input.subject
allow if { some role in input.token.claims.roles; input.action in data.roles[role] }
allow if { input.action == "orders:read"; is_owner }
reasons contains "ok" if allow
reasons contains "denied" if not allow`,
	"E-id-in-deny": `
default allow := false
allow if { some role in input.token.claims.roles; input.action in data.roles[role] }
allow if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons contains "ok" if allow
reasons contains sprintf("%s may not %s order %v", [input.subject, input.action, input.resource.id]) if not allow`,
	"F-perm-index": `
default allow := false
allow if { some role in input.token.claims.roles; data.roles[role][_] == input.action }
allow if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons contains "ok" if allow`,
	"G-deny-rules": `
default allow := false
allow if { count(deny) == 0; count(grant) > 0 }
grant contains "role" if { some role in input.token.claims.roles; input.action in data.roles[role] }
grant contains "owner" if { input.action == "orders:read"; input.resource.owner == input.subject }
deny contains "no subject" if input.subject == ""
reasons := grant if allow
reasons := deny | {"no grant"} if not allow`,
}

func TestZZVariants(t *testing.T) {
	profiles := [][]any{{"manager"}, {"staff"}, {"staff", "auditor"}, nil}
	users := make([]*claims.Claims, 1000)
	for i := range users {
		sub := fmt.Sprintf("user-%04d", i)
		raw := map[string]any{"sub": sub}
		if p := profiles[i%4]; p != nil {
			raw["roles"] = p
		}
		users[i] = &claims.Claims{Subject: sub, Header: claims.Header{Alg: "RS256"}, Raw: raw}
	}
	rng := rand.New(rand.NewPCG(14, 14))
	inputs := make([]Input, 50000)
	for i := range inputs {
		u := rng.IntN(len(users))
		action := "orders:read"
		if rng.IntN(3) == 2 {
			action = "orders:approve"
		}
		owner := users[rng.IntN(len(users))].Subject
		if rng.IntN(4) == 0 {
			owner = users[u].Subject
		}
		inputs[i] = Input{Claims: users[u], Action: action, Resource: map[string]any{"type": "order", "id": fmt.Sprint(rng.IntN(1000000)), "owner": owner}}
	}
	for name, rego := range variants {
		fsys := fstest.MapFS{
			"authz.rego": {Data: []byte("package warden.authz\n" + rego)},
			"data.json":  {Data: []byte(`{"roles": {"manager": ["orders:read", "orders:approve"], "staff": ["orders:read"]}}`)},
		}
		e, err := NewEngine(context.Background(), fsys, Options{DecisionCacheSize: 200000, Logger: slog.New(slog.DiscardHandler), EvalTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(name, err)
		}
		set := e.set.Load()
		v, a := describePlan(set.memo.plan)
		allowed := 0
		for _, in := range inputs {
			if e.Decide(context.Background(), in).Allow {
				allowed++
			}
		}
		h, m := e.DecisionCacheStats()
		fmt.Printf("%-16s conflictFree=%v hits %5d misses %5d allowed %d plan: values %q atoms %q\n", name, conflictFree(set.compiler), h, m, allowed, v, a)
	}
}
