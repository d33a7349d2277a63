package decision

import (
	"math/rand/v2"
	"testing"
)

// policyStyles are ways security teams write the mix's policy (RBAC over
// the roles claim, an owner rule for reads, reasons), each with the share
// of TestKeyPlanStyles's draw its plan must answer from the cache. Most
// key on a few entries a user; a style that quotes the order or its owner
// in its denials can reuse only its allowed answers.
var policyStyles = []struct {
	name    string
	rego    string
	minHits float64
}{
	{"owner in deny", `
default allow := false
allow if { some role in input.token.claims.roles; input.action in data.roles[role] }
allow if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons contains "ok" if allow
reasons contains sprintf("order owned by %s", [input.resource.owner]) if not allow`, 0.5},
	{"default reasons", `
default allow := false
default reasons := []
allow if { some role in input.token.claims.roles; input.action in data.roles[role] }
allow if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons := ["granted"] if allow`, 0.85},
	{"else chain", `
default allow := false
allow if { some role in input.token.claims.roles; input.action in data.roles[role] }
allow if is_owner_read
is_owner_read if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons := ["owner"] if is_owner_read
	else := ["role"] if allow
	else := ["denied"]`, 0.85},
	{"array compr", `
default allow := false
allow if count(grants) > 0
grants contains "role" if { some role in input.token.claims.roles; input.action in data.roles[role] }
grants contains "owner" if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons := [g | some g in grants] if allow
reasons := ["no grant for " | concat("", [input.action])] if not allow`, 0.85},
	{"user attrs", `
default allow := false
user := {"id": input.subject, "roles": object.get(input.token.claims, "roles", [])}
allow if { some role in user.roles; input.action in data.roles[role] }
allow if { input.action == "orders:read"; input.resource.owner == user.id }
reasons contains "ok" if allow`, 0.85},
	{"functions", `
import rego.v1
default allow := false
permitted(role, action) if action in data.roles[role]
owns(resource, subject) if resource.owner == subject
allow if { some role in input.token.claims.roles; permitted(role, input.action) }
allow if { input.action == "orders:read"; owns(input.resource, input.subject) }
reasons contains sprintf("%s may %s", [input.subject, input.action]) if allow
reasons contains sprintf("%s may not %s", [input.subject, input.action]) if not allow`, 0.85},
	{"object.get and a permissions set", `
default allow := false
perms contains p if { some role in object.get(input.token.claims, "roles", []); some p in object.get(data.roles, role, []) }
allow if input.action in perms
allow if { input.action == "orders:read"; object.get(input.resource, "owner", "") == input.subject }
reasons := ["granted"] if allow
reasons := [sprintf("denied: %s", [input.action])] if not allow`, 0.85},
	{"a decision object with else", `
default allow := false
decision := {"allow": true, "why": "role"} if { some r in input.token.claims.roles; input.action in data.roles[r] }
else := {"allow": true, "why": "owner"} if { input.action == "orders:read"; input.resource.owner == input.subject }
else := {"allow": false, "why": "none"}
allow := decision.allow
reasons := [decision.why]`, 0.85},
	{"the id in an else after allow", `
default allow := false
allow if { some r in input.token.claims.roles; input.action in data.roles[r] }
allow if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons := ["ok"] if allow
else := [sprintf("no access to %v", [input.resource.id])]`, 0.5},
	{"shipped like", `
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
headers := {"x-warden-subject": input.subject} if allow`, 0.85},
	{"claims var", `
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
denials contains "token has no roles claim" if not "roles" in object.keys(claims)`, 0.85},
	{"is owner rule", `
default allow := false
allow if has_role
allow if { input.action == "orders:read"; is_owner }
has_role if { some role in input.token.claims.roles; input.action in data.roles[role] }
is_owner if input.resource.owner == input.subject
reasons contains "role" if has_role
reasons contains "owner" if { input.action == "orders:read"; is_owner }
reasons contains "denied" if not allow`, 0.85},
	{"bool assign", `
default allow := false
is_owner := input.resource.owner == input.subject
allow if { some role in input.token.claims.roles; input.action in data.roles[role] }
allow if { input.action == "orders:read"; is_owner }
reasons contains "ok" if allow
reasons contains "denied" if not allow`, 0.85},
	{"id in deny", `
default allow := false
allow if { some role in input.token.claims.roles; input.action in data.roles[role] }
allow if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons contains "ok" if allow
reasons contains sprintf("%s may not %s order %v", [input.subject, input.action, input.resource.id]) if not allow`, 0.5},
	{"perm index", `
default allow := false
allow if { some role in input.token.claims.roles; data.roles[role][_] == input.action }
allow if { input.action == "orders:read"; input.resource.owner == input.subject }
reasons contains "ok" if allow`, 0.85},
	{"deny rules", `
default allow := false
allow if { count(deny) == 0; count(grant) > 0 }
grant contains "role" if { some role in input.token.claims.roles; input.action in data.roles[role] }
grant contains "owner" if { input.action == "orders:read"; input.resource.owner == input.subject }
deny contains "no subject" if input.subject == ""
reasons := grant if allow
reasons := deny | {"no grant"} if not allow`, 0.85},
}

// TestKeyPlanStyles decides the mix's draw (100 users of four role
// profiles, reads two times in three, an owner one time in four, ids out
// of a million) through each style's engine, requires every decision to
// be the plain evaluation's, and the cache to answer its share.
func TestKeyPlanStyles(t *testing.T) {
	users := mixUsers(100)
	rng := rand.New(rand.NewPCG(14, 14))
	inputs := make([]Input, 3000)
	for i := range inputs {
		inputs[i] = mixInput(rng, users)
	}
	for _, style := range policyStyles {
		t.Run(style.name, func(t *testing.T) {
			e := planEngineWith(t, style.rego, `{"roles": {"manager": ["orders:read", "orders:approve"], "staff": ["orders:read"]}}`)
			set := e.set.Load()
			if set.memo.plan == nil {
				t.Fatal("no key plan")
			}
			allowed, errs := compareWithPlain(t, e, inputs)
			if errs > 0 {
				t.Errorf("%d of %d plain evaluations failed", errs, len(inputs))
			}
			hits, misses := e.DecisionCacheStats()
			values, atoms := describePlan(set.memo.plan)
			share := float64(hits) / float64(hits+misses)
			t.Logf("%d hits, %d misses; plan: values %q, atoms %q", hits, misses, values, atoms)
			if share < style.minHits {
				t.Errorf("%d hits, %d misses (%.0f%%), want at least %.0f%%; plan: values %q, atoms %q", hits, misses, 100*share, 100*style.minHits, values, atoms)
			}
			if allowed == 0 || allowed == len(inputs) {
				t.Errorf("%d of %d allowed", allowed, len(inputs))
			}
		})
	}
}
