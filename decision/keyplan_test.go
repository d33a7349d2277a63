package decision

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/policies"
)

// planPolicies are decision documents that read the resource and context
// in the ways a policy author does, each with the plan it must get:
// "values" are the sub-documents keyed in full, "atoms" the comparisons
// keyed by outcome, "none" a set without a plan (the whole resource and
// context in the key).
var planPolicies = []struct {
	name, rego, values, atoms string
}{
	{"owner is the subject", `
allow if input.resource.owner == input.subject
reasons contains "owner" if allow`, "", "resource.owner~subject"},
	{"owner is the sub claim, through a rule", `
resource := input.resource
allow if resource.owner = input.token.claims.sub
reasons contains "owner" if allow`, "", "resource.owner~token.claims.sub"},
	{"not the owner, against a constant", `
allow if {
	input.resource.type == "order"
	input.resource.owner != "root"
}
reasons contains "ok" if allow`, "", "resource.type~\"order\" resource.owner~\"root\""},
	{"the id in a reason", `
allow if input.resource.owner == input.subject
reasons contains sprintf("order %v", [input.resource.id]) if allow`, "late resource.id when allow", "resource.owner~subject"},
	{"the id in a denial", `
allow if input.resource.owner == input.subject
reasons contains "owner" if allow
reasons contains sprintf("%s may not touch order %v", [input.subject, input.resource.id]) if not allow`, "late resource.id when not allow", "resource.owner~subject"},
	{"the id in denials, reached through reasons := denials if not allow", `
allow if count(grants) > 0
grants contains "owner" if input.resource.owner == input.subject
denials contains sprintf("not the owner of order %v", [input.resource.id]) if input.resource.owner != input.subject
denials contains "no grant" if true
reasons := grants if allow
reasons := denials if not allow`, "late resource.id when neq resource.owner~subject and not allow", "resource.owner~subject"},
	{"the id in details given on either answer", `
allow if input.resource.owner == input.subject
details contains sprintf("order %v", [input.resource.id]) if true
reasons := details if allow
reasons := details if not allow`, "resource.id", "resource.owner~subject"},
	{"a function whose definitions conflict for some ids", `
f(x) := "short" if count(x) < 3
f(x) := "long" if count(x) > 1
allow if input.resource.owner == input.subject
reasons contains sprintf("order %v", [f(input.resource.id)]) if allow`, "none", ""},
	{"the id in the reason an owner gets", `
allow if count(grants) > 0
grants contains sprintf("%s owns order %v", [input.subject, input.resource.id]) if {
	input.action == "read"
	input.resource.owner == input.subject
}
grants contains "level" if input.context.level > 3
reasons := grants`, `resource.id when eq action~"read" and eq resource.owner~subject`, `context.level<>3 (resource.owner~subject when eq action~"read")`},
	{"the id where the owner is not the subject, or the level is high", `
allow if input.context.level >= 3
reasons contains sprintf("not yours: %v", [input.resource.id]) if not input.resource.owner == input.subject
reasons contains sprintf("high: %v", [input.resource.id]) if input.context.level >= 3`,
		"resource.id when not eq resource.owner~subject or gte context.level<>3", "context.level<>3 resource.owner~subject"},
	{"the id for owners, beside a rule whose definitions exclude each other", `
kind := "mine" if input.resource.owner == input.subject
kind := "theirs" if not input.resource.owner == input.subject
allow if kind == "mine"
reasons contains sprintf("order %v", [input.resource.id]) if input.resource.owner == input.subject`,
		"resource.id when eq resource.owner~subject", "resource.owner~subject"},
	{"the id for owners, beside a rule whose definitions conflict", `
kind := "mine" if input.resource.owner == input.subject
kind := "high" if input.context.level > 3
allow if kind == "mine"
reasons contains sprintf("order %v", [input.resource.id]) if input.resource.owner == input.subject`,
		"none", ""},
	{"the id for owners, beside a rule that iterates", `
tag := t if some t in input.context.tags
allow if input.resource.owner == input.subject
reasons contains sprintf("order %v %v", [input.resource.id, tag]) if input.resource.owner == input.subject`,
		"none", ""},
	{"the id for owners, beside an object rule over the data only", `
owner_index[o] := i if some i, o in data.owners
allow if input.resource.owner == input.subject
reasons contains sprintf("order %v", [input.resource.id]) if input.resource.owner == input.subject`,
		"resource.id when eq resource.owner~subject", "resource.owner~subject"},
	{"the id for owners, beside an object rule over the input", `
by_owner[input.resource.owner] := input.resource.id
allow if input.resource.owner == input.subject
reasons contains sprintf("order %v", [input.resource.id]) if input.resource.owner == input.subject`,
		"none", ""},
	{"the id for owners, beside an object comprehension followed by other terms", `
pairs := [{k: input.subject | some k in input.context.tags}, input.resource.type]
allow if input.resource.owner == input.subject
reasons contains sprintf("order %v", [input.resource.id]) if input.resource.owner == input.subject`,
		"none", ""},
	{"the id for owners, beside a rule that walks the input", `
leaf := v if walk(input.context, [_, v])
allow if input.resource.owner == input.subject
reasons contains sprintf("order %v", [input.resource.id]) if input.resource.owner == input.subject`,
		"none", ""},
	{"a number compared by order", `
allow if input.context.level > 3
reasons contains "level" if allow`, "", "context.level<>3"},
	{"an amount under a limit, one of several orders", `
allow if {
	input.resource.type == "order"
	not input.context.level < 2
	input.context.level <= input.resource.level
}
reasons contains "within" if allow`, "", "resource.type~\"order\" context.level<>2 context.level<>resource.level"},
	{"an id by its prefix, a type in a set", `
allow if {
	startswith(input.resource.id, "ord-")
	input.resource.type in {"order", "ORDER"}
}
reasons contains "prefixed" if allow`, "", "startswith(resource.id,\"ord-\") internal.member_2(resource.type,{\"ORDER\", \"order\"})"},
	{"an owner in a list from the data, an id by a pattern", `
allow if {
	input.resource.owner in data.owners
	not regex.match("^[0-9]+$", input.resource.id)
}
reasons contains "listed" if allow`, "", "internal.member_2(resource.owner,[\"alice\", \"bob\"]) regex.match(\"^[0-9]+$\",resource.id)"},
	{"a pattern from the input", `
allow if regex.match(input.context.pattern, input.resource.id)
reasons contains "matched" if allow`, "context.pattern resource.id", ""},
	{"a built-in with its result bound, then tested", `
allow if {
	x := startswith(input.resource.id, "ord-")
	x
}
reasons contains "bound" if allow`, "", `startswith(resource.id,"ord-")`},
	{"a built-in's result in a reason", `
allow if input.resource.owner == input.subject
reasons contains sprintf("ord: %v", [startswith(input.resource.id, "ord-")]) if allow`, "late resource.id when allow", "resource.owner~subject"},
	{"object.get with a default", `
allow if {
	input.action == "read"
	object.get(input.resource, "owner", "") == input.subject
}
allow if object.get(input.context, "level", 0) > 3
reasons contains sprintf("tier %s", [object.get(input.token.claims, "tier", "basic")]) if allow
reasons contains sprintf("order %v", [input.resource.id]) if object.get(input.resource, "level", "none") == "none"`,
		`resource.id when eq resource.level|"none"~"none"`, `(resource.owner|""~subject when eq action~"read") context.level|0<>3 resource.level|"none"~"none"`},
	{"object.get on the proxied request, a document it does not look into", `
allow if input.resource.owner == input.subject
reasons contains sprintf("%v", [input.resource.id]) if object.get(input.request, "method", "") == "GET"`, "resource.id", "resource.owner~subject"},
	{"a comparison assigned to a rule", `
is_owner := input.resource.owner == input.subject
allow if {
	input.action == "read"
	is_owner
}
reasons contains "owner" if allow`, "", `(resource.owner~subject when eq action~"read")`},
	{"an order comparison assigned to a rule, as a guard", `
reader := input.action < "s"
allow if {
	reader
	input.resource.owner == input.subject
}
reasons contains sprintf("id %v", [input.resource.id]) if {
	reader
	input.resource.owner == input.subject
}`, `resource.id when lt action<>"s" and eq resource.owner~subject`, `(resource.owner~subject when lt action<>"s")`},
	{"a key known once the data is", `
allow if {
	some k in ["owner", "editor"]
	input.resource[k] == input.subject
}
reasons contains "named" if allow`, "", "resource.editor~subject resource.owner~subject"},
	{"a key computed at evaluation", `
allow if {
	some k
	input.resource[k] == input.subject
	k != "id"
}
reasons contains "named" if allow`, "resource", ""},
	{"compared with a constant from the data", `
allow if {
	some o in data.owners
	input.resource.owner == o
}
reasons contains "listed" if allow`, "", "resource.owner~\"alice\" resource.owner~\"bob\""},
	{"compared with a computed value", `
allow if input.resource.owner == lower(input.subject)
reasons contains "lower" if allow`, "resource.owner", ""},
	{"the resource compared as a whole", `
allow if input.resource == {"id": "1", "type": "order", "owner": "alice"}
reasons contains "exact" if allow`, "resource", ""},
	{"the input walked", `
allow if {
	walk(input, [_, v])
	v == "root"
}
reasons contains "walked" if allow`, "none", ""},
	{"the owner tested only for reads", `
allow if {
	input.action == "read"
	input.resource.owner == input.subject
}
allow if {
	input.action == "write"
	input.resource.level > 3
}
reasons contains "ok" if allow`, "", `(resource.owner~subject when eq action~"read") (resource.level<>3 when eq action~"write")`},
	{"tests guarded by a proxied request's method", `
allow if {
	input.request.method == "GET"
	input.resource.owner == input.subject
}
allow if {
	not input.request.method
	input.resource.editor
}
reasons contains "ok" if allow`, "", `(resource.editor when not truthy request.method) (resource.owner~subject when eq request.method~"GET")`},
	{"an owner test inside a comprehension, for reads", `
allow if {
	input.action == "read"
	count([1 | input.resource.owner == input.subject]) > 0
}
reasons contains "ok" if allow`, "", "resource.owner~subject"},
	{"a rule with else, which partial evaluation leaves as it is", `
decision := {"allow": true, "why": "role"} if "manager" in input.token.claims.roles
else := {"allow": true, "why": "owner"} if input.resource.owner == input.subject
else := {"allow": false, "why": "none"}
allow := decision.allow
reasons := [decision.why]`, "", "resource.owner~subject"},
	{"the id in an else after allow", `
allow if input.resource.owner == input.subject
reasons := ["owner"] if allow
else := [sprintf("not the owner of order %v", [input.resource.id])]`, "late resource.id when not allow", "resource.owner~subject"},
	{"the input rebound", `
allow if owns with input.subject as "alice"
owns if input.resource.owner == input.subject
reasons contains "rebound" if allow`, "none", ""},
}

func describePlan(p *keyPlan) (values, atoms string) {
	if p == nil {
		return "none", ""
	}
	side := func(o operand) string {
		switch {
		case o.constant != nil:
			return o.constant.String()
		case o.orElse != nil:
			return strings.Join(o.path, ".") + "|" + o.orElse.String()
		}
		return strings.Join(o.path, ".")
	}
	describe := func(x atom) string {
		switch x.op {
		case truthy:
			return side(x.ops[0])
		case "equal":
			return side(x.ops[0]) + "~" + side(x.ops[1])
		case "order":
			return side(x.ops[0]) + "<>" + side(x.ops[1])
		}
		var args []string
		for _, o := range x.ops {
			args = append(args, side(o))
		}
		return x.op + "(" + strings.Join(args, ",") + ")"
	}
	when := func(u uses) string { // "when" each body's conditions, "or" between bodies
		if u.always {
			return ""
		}
		var bodies []string
		for _, body := range u.when {
			var conds []string
			for _, c := range body {
				n := ""
				if c.negated {
					n = "not "
				}
				if c.atom == lateAllow {
					conds = append(conds, n+"allow")
					continue
				}
				conds = append(conds, n+c.op+" "+describe(p.atoms[c.atom]))
			}
			bodies = append(bodies, strings.Join(conds, " and "))
		}
		return " when " + strings.Join(bodies, " or ")
	}
	var v, a []string
	for _, x := range p.values {
		late := ""
		if x.late { // keyed in the second step
			late = "late "
		}
		v = append(v, late+strings.Join(x.path, ".")+when(x.uses))
	}
	for _, x := range p.atoms {
		switch {
		case !x.request:
		case x.always:
			a = append(a, describe(x))
		default: // keyed only where a guard passes
			a = append(a, "("+describe(x)+when(x.uses)+")")
		}
	}
	return strings.Join(v, " "), strings.Join(a, " ")
}

func planEngine(t *testing.T, rego string) *Engine {
	t.Helper()
	return planEngineWith(t, "default allow := false\n"+rego, `{"owners": ["alice", "bob"]}`)
}

// planEngineWith is an engine for package warden.authz of rego, over data.
func planEngineWith(t *testing.T, rego, data string) *Engine {
	t.Helper()
	fsys := fstest.MapFS{
		"authz.rego": {Data: []byte("package warden.authz\n\n" + rego)},
		"data.json":  {Data: []byte(data)},
	}
	e, err := NewEngine(context.Background(), fsys, Options{DecisionCacheSize: 1000, Logger: slog.New(slog.DiscardHandler), EvalTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestKeyPlan checks what each policy's plan keys on.
func TestKeyPlan(t *testing.T) {
	for name := range atomBuiltins {
		if topdown.GetBuiltin(name) == nil || ast.BuiltinMap[name] == nil {
			t.Errorf("atom built-in %s is not one of OPA's", name)
		}
	}
	for _, tc := range planPolicies {
		t.Run(tc.name, func(t *testing.T) {
			values, atoms := describePlan(planEngine(t, tc.rego).set.Load().memo.plan)
			if values != tc.values || atoms != tc.atoms {
				t.Errorf("plan: values %q, atoms %q; want %q, %q", values, atoms, tc.values, tc.atoms)
			}
		})
	}
}

// TestKeyPlanGuardedValue: a value read only in a body that fails for
// the input is not in the key. The policy quotes the order's id only in
// the reason an owner gets, so a non-owner's requests for other orders
// share an entry, and an owner's do not.
func TestKeyPlanGuardedValue(t *testing.T) {
	var rego string
	for _, p := range planPolicies {
		if p.name == "the id in the reason an owner gets" {
			rego = p.rego
		}
	}
	e := planEngine(t, rego)
	alice := &claims.Claims{Subject: "alice", Header: claims.Header{Alg: "RS256"}, Raw: map[string]any{"sub": "alice"}}
	decide := func(action, owner, id string) Decision {
		return e.Decide(context.Background(), Input{Claims: alice, Action: action, Resource: map[string]any{"owner": owner, "id": id}})
	}
	for _, id := range []string{"1", "2", "3"} {
		if d := decide("read", "bob", id); d.Allow {
			t.Fatalf("non-owner read %s: %+v", id, d)
		}
	}
	if hits, misses := e.DecisionCacheStats(); hits != 2 || misses != 1 {
		t.Errorf("non-owner: %d hits, %d misses; want 2, 1 (the id is not read)", hits, misses)
	}
	for _, id := range []string{"1", "2"} {
		d := decide("read", "alice", id)
		if want := []string{"alice owns order " + id}; !d.Allow || !reflect.DeepEqual(d.Reasons, want) {
			t.Fatalf("owner read %s: %+v, want allow with %q", id, d, want)
		}
	}
	if hits, misses := e.DecisionCacheStats(); hits != 2 || misses != 3 {
		t.Errorf("owner: %d hits, %d misses; want 2, 3 (the id is read)", hits, misses)
	}
}

// TestKeyPlanLate: a policy that quotes the order's id in its denials
// keys on the id for denials only, in the key's second step; allowed
// requests share one entry whatever the id.
func TestKeyPlanLate(t *testing.T) {
	e := planEngine(t, `
allow if input.resource.owner == input.subject
reasons contains "owner" if allow
reasons contains sprintf("%s may not touch order %v", [input.subject, input.resource.id]) if not allow`)
	alice := &claims.Claims{Subject: "alice", Header: claims.Header{Alg: "RS256"}, Raw: map[string]any{"sub": "alice"}}
	step := func(owner, id string, allow bool, hits, misses uint64) {
		t.Helper()
		d := e.Decide(context.Background(), Input{Claims: alice, Action: "read", Resource: map[string]any{"owner": owner, "id": id}})
		want := []string{"owner"}
		if !allow {
			want = []string{"alice may not touch order " + id}
		}
		if d.Allow != allow || !reflect.DeepEqual(d.Reasons, want) {
			t.Fatalf("%s's order %s: %+v, want allow %v with %q", owner, id, d, allow, want)
		}
		if h, m := e.DecisionCacheStats(); h != hits || m != misses {
			t.Errorf("%s's order %s: %d hits, %d misses; want %d, %d", owner, id, h, m, hits, misses)
		}
	}
	step("bob", "1", false, 0, 1)
	step("bob", "2", false, 0, 2) // the first step knows the answer, the second keys the id
	step("bob", "1", false, 1, 2)
	step("alice", "1", true, 1, 3)
	step("alice", "2", true, 2, 3) // an allowed answer does not read the id
	step("alice", "3", true, 3, 3)
	step("bob", "3", false, 3, 4)
}

// TestShippedPlan: the shipped set is conflict-free and has a plan, which
// keys on whether the owner is the subject, only where the owner rule can
// grant (a read, not proxied, by a named subject), and on nothing else of
// the resource. So a manager's approvals share one entry whoever owns the
// order, while an owner's read and another's are two.
func TestShippedPlan(t *testing.T) {
	e, err := NewEngine(context.Background(), policies.FS(), Options{DecisionCacheSize: 10, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if !conflictFree(e.set.Load().compiler) {
		t.Error("the shipped set is not conflict-free")
	}
	values, atoms := describePlan(e.set.Load().memo.plan)
	const owner = `(resource.owner~subject when truthy request.method and neq subject~"" and not truthy request.method` +
		` or not truthy request.method and eq "orders:read"~action and neq subject~"" and not truthy request.method)`
	if values != "" || atoms != owner {
		t.Errorf("plan: values %q, atoms %q", values, atoms)
	}
	alice := &claims.Claims{Subject: "alice", Header: claims.Header{Alg: "RS256"}, Raw: map[string]any{"sub": "alice", "roles": []any{"manager"}}}
	decide := func(action, owner string) {
		t.Helper()
		d := e.Decide(context.Background(), Input{Claims: alice, Action: action, Resource: map[string]any{"id": "1", "owner": owner}})
		if !d.Allow {
			t.Fatalf("%s of %s's order: %+v", action, owner, d)
		}
	}
	step := func(action, owner string, hits, misses uint64) {
		t.Helper()
		decide(action, owner)
		if h, m := e.DecisionCacheStats(); h != hits || m != misses {
			t.Errorf("%s of %s's order: %d hits, %d misses; want %d, %d", action, owner, h, m, hits, misses)
		}
	}
	step("orders:approve", "bob", 0, 1)
	step("orders:approve", "alice", 1, 1) // the owner is not tested for an approval
	step("orders:read", "bob", 1, 2)
	step("orders:read", "alice", 1, 3) // it is for a read: a grant of its own
	step("orders:read", "carol", 2, 3)
}

// TestKeyPlanDifferential decides requests drawn from small domains, so
// that they collide on every key part, through each policy's engine and
// through the plain evaluation, and requires the same decision, reasons
// and headers for each: the plan must never make two inputs the policy
// tells apart share an entry. The values are the cases where a comparison
// is subtle: undefined, null, a number and its string, numbers equal in
// value but not in spelling, objects. Where the plain evaluation fails (a
// function whose definitions conflict), the engine must deny with
// policy_error: an answer cached for another input must not stand in.
func TestKeyPlanDifferential(t *testing.T) {
	inputs := differentialInputs(3000)
	erring := map[string]bool{
		"a function whose definitions conflict for some ids":          true,
		"the id for owners, beside a rule whose definitions conflict": true,
	}
	for _, tc := range planPolicies {
		t.Run(tc.name, func(t *testing.T) {
			e := planEngine(t, tc.rego)
			allowed, errs := compareWithPlain(t, e, inputs)
			// Only the shapes with conflicting definitions err, and they must, on some inputs.
			if wantErrs := erring[tc.name]; (errs > 0) != wantErrs {
				t.Errorf("%d of %d plain evaluations failed", errs, len(inputs))
			}
			hits, _ := e.DecisionCacheStats()
			if tc.values != "none" && hits == 0 {
				t.Errorf("no cache hits")
			}
			if allowed == 0 || allowed == len(inputs) {
				t.Errorf("%d of %d allowed: the draw must exercise both outcomes", allowed, len(inputs))
			}
		})
	}
}

// differentialInputs draws n requests from small domains, so that they
// collide on every part of a key.
func differentialInputs(n int) []Input {
	subjects := []string{"alice", "bob", ""}
	ownerValues := []any{"alice", "bob", "root", nil, json.Number("1"), "1", json.Number("1.0"), map[string]any{"a": "alice"}, []any{"alice"}}
	typeValues := []any{"order", "ORDER", nil}
	levels := []any{json.Number("2"), json.Number("3"), json.Number("3.0"), json.Number("4"), "4", nil}
	ids := []any{"0", "1", "42", "ord-1", "ord-2", "ORD-1", json.Number("7"), nil}
	// One verified token per subject, as the verifier hands out: the cache
	// keys on the claims pointer, so requests collide only through it.
	tokens := map[string]*claims.Claims{}
	for _, sub := range subjects {
		tokens[sub] = &claims.Claims{Subject: sub, Header: claims.Header{Alg: "RS256"}, Raw: map[string]any{"sub": sub}}
	}
	rng := rand.New(rand.NewPCG(14, 2))
	inputs := make([]Input, n)
	for i := range inputs {
		sub := subjects[rng.IntN(len(subjects))]
		in := Input{Action: []string{"read", "write"}[rng.IntN(2)], Resource: map[string]any{"id": ids[rng.IntN(len(ids))]}, Context: map[string]any{}}
		if rng.IntN(5) == 0 {
			in.Subject = sub + "-asserted" // no token
		} else {
			in.Claims = tokens[sub]
		}
		if v := ownerValues[rng.IntN(len(ownerValues)+1)%len(ownerValues)]; rng.IntN(6) > 0 {
			in.Resource["owner"] = v
		}
		if v := typeValues[rng.IntN(len(typeValues))]; v != nil {
			in.Resource["type"] = v
		}
		if rng.IntN(3) > 0 {
			in.Context["level"] = levels[rng.IntN(len(levels))]
		}
		if rng.IntN(2) > 0 {
			in.Context["pattern"] = []any{"^ord-", "^[0-9]+$", "("}[rng.IntN(3)]
		}
		if rng.IntN(8) == 0 {
			in.Resource["editor"] = []any{sub, false}[rng.IntN(2)]
		}
		if rng.IntN(4) > 0 {
			in.Resource["level"] = levels[rng.IntN(len(levels))]
		}
		if rng.IntN(3) == 0 { // forward-auth: "" is a method, a defined one
			in.Request = &Request{Method: []string{"GET", "POST", ""}[rng.IntN(3)], Path: "/orders/1"}
		}
		inputs[i] = in
	}
	return inputs
}

// compareWithPlain decides every input through e and through the plain
// evaluation of its active set, and fails t at the first difference in
// decision, reasons or headers. Where the plain evaluation fails, the
// engine must deny with policy_error. It returns the allowed and the
// failed counts.
func compareWithPlain(t *testing.T, e *Engine, inputs []Input) (allowed, errs int) {
	t.Helper()
	set := e.set.Load()
	for i, in := range inputs {
		got := e.Decide(context.Background(), in)
		input, err := buildInput(&in, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.eval(context.Background(), set.authz, input, nil, false)
		if err != nil { // the policy errs on this input: the engine must deny with policy_error, never reuse an answer
			if got.Allow || got.Reason != ReasonPolicyError {
				t.Fatalf("request %d (%+v): plain evaluation fails (%v), engine %+v", i, in, err, got)
			}
			errs++
			continue
		}
		v, err := readDecision(r)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if want := v.apply(Decision{Revision: set.revision}); !reflect.DeepEqual(got, want) {
			t.Fatalf("request %d (%+v): engine %+v, plain evaluation %+v", i, in, got, want)
		}
		if got.Allow {
			allowed++
		}
	}
	return allowed, errs
}
