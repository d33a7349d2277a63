package decision

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// conditions are the tests TestKeyPlanRandomPolicies builds rule bodies
// from: atoms on the resource and context, guards on the action, subject
// and proxied method, their negations, and helper rules.
var conditions = []string{
	`input.action == "read"`,
	`input.action == "write"`,
	`input.resource.owner == input.subject`,
	`not input.resource.owner == input.subject`,
	`input.resource.owner != "root"`,
	`input.context.level > 3`,
	`input.resource.level >= 3`,
	`startswith(input.resource.id, "ord-")`,
	`input.resource.editor`,
	`not input.request.method`,
	`input.request.method == "GET"`,
	`object.get(input.resource, "type", "order") == "order"`,
	`input.subject != ""`,
	`is_owner`,
	`not is_owner`,
	`high`,
}

// reasonShapes are the ways a random policy gives its reasons, each
// quoting something of the resource or context somewhere.
var reasonShapes = []string{
	"reasons contains sprintf(\"id %v\", [input.resource.id]) if {\n\t%s\n}\nreasons contains \"ok\" if allow",
	"reasons := [\"ok\"] if allow\nelse := [sprintf(\"no access to %v\", [input.resource.id])]",
	"reasons contains \"ok\" if allow\nreasons contains sprintf(\"owner %v\", [input.resource.owner]) if not allow",
	"denials contains sprintf(\"level %v\", [input.context.level]) if {\n\t%s\n}\ndenials contains \"none\" if true\nreasons := denials if not allow\nreasons := [\"ok\"] if allow",
	"verdict := {\"why\": \"first\"} if {\n\t%s\n}\nelse := {\"why\": sprintf(\"%v\", [input.resource.type])} if allow\nelse := {\"why\": \"none\"}\nreasons := [verdict.why]",
}

// randomPolicy writes a policy of one to three allow rules of one to three
// conditions each, helper rules, reasons of one of reasonShapes and,
// sometimes, a header quoting the order's id.
func randomPolicy(rng *rand.Rand) string {
	body := func() string {
		n := 1 + rng.IntN(3)
		conds := make([]string, n)
		for i := range conds {
			conds[i] = conditions[rng.IntN(len(conditions))]
		}
		return strings.Join(conds, "\n\t")
	}
	var b strings.Builder
	b.WriteString("is_owner if input.resource.owner == input.subject\n")
	b.WriteString("high := input.context.level > 3\n")
	for range 1 + rng.IntN(3) {
		fmt.Fprintf(&b, "allow if {\n\t%s\n}\n", body())
	}
	shape := reasonShapes[rng.IntN(len(reasonShapes))]
	if strings.Contains(shape, "%s") {
		shape = strings.Replace(shape, "%s", body(), 1)
	}
	b.WriteString(shape + "\n")
	if rng.IntN(3) == 0 {
		b.WriteString("headers := {\"x-order\": sprintf(\"%v\", [input.resource.id])} if allow\n")
	}
	return b.String()
}

// TestKeyPlanRandomPolicies decides the differential draw through policies
// assembled at random from the pieces above, and requires every decision,
// reason and header to be the plain evaluation's: whatever the plan keys
// on, a reused answer must be the one the policy gives.
func TestKeyPlanRandomPolicies(t *testing.T) {
	inputs := differentialInputs(600)
	rng := rand.New(rand.NewPCG(14, 3))
	planned := 0
	const policies = 40
	for i := range policies {
		rego := randomPolicy(rng)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			e := planEngine(t, rego)
			if e.set.Load().memo.plan != nil {
				planned++
			}
			compareWithPlain(t, e, inputs)
			if t.Failed() {
				t.Logf("policy:\n%s", rego)
			}
		})
	}
	t.Logf("%d of %d random policies have a key plan", planned, policies)
	if planned < policies/2 {
		t.Errorf("%d of %d random policies have a key plan: the test hardly tests the plan", planned, policies)
	}
}
