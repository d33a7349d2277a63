package decision

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/policies"
)

// TestDifferentialMix runs issue 14's realistic mix through the engine as it
// decides (the decision cache, input.token kept per token, the parts of the
// input the set never reads left out of the cache key and the input) and
// through the plain evaluation (a fresh input every time, nothing cached),
// and requires the same decision, reasons and headers for every request.
// The mix also repeats requests exactly, so that cache hits are compared
// too, and carries proxied requests and AuthZEN evaluations.
func TestDifferentialMix(t *testing.T) {
	ctx := context.Background()
	e, err := NewEngine(ctx, policies.FS(), Options{DecisionCacheSize: 2000, Logger: slog.New(slog.DiscardHandler), EvalTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	set := e.set.Load()
	users := mixUsers(200)
	rng := rand.New(rand.NewPCG(14, 1))
	paths := []string{"/orders", "/orders/%d", "/orders/%d/approve", "/admin", "/orders/%d/items"}
	methods := []string{"GET", "POST", "DELETE"}
	inputs := make([]Input, 0, 6000)
	for len(inputs) < cap(inputs) {
		if len(inputs) > 0 && rng.IntN(3) == 0 { // a request asked again
			inputs = append(inputs, inputs[rng.IntN(len(inputs))])
			continue
		}
		in := mixInput(rng, users)
		u := in.Claims
		switch rng.IntN(6) {
		case 0: // a proxied request
			path := paths[rng.IntN(len(paths))]
			if len(path) > 7 {
				path = fmt.Sprintf(path, rng.IntN(50))
			}
			in = Input{Claims: u, Request: &Request{Method: methods[rng.IntN(len(methods))], Path: path, Host: "api.example.com",
				Headers: map[string]string{"x-request-id": fmt.Sprint(rng.Int())}}}
		case 1: // an AuthZEN evaluation
			in.AuthZEN = &AuthZEN{
				Subject:  Entity{Type: "user", ID: u.Subject, Properties: map[string]any{"department": fmt.Sprint(rng.IntN(3))}},
				Action:   Action{Name: in.Action},
				Resource: Entity{Type: "order", ID: in.Resource["id"].(string), Properties: map[string]any{"owner": in.Resource["owner"]}},
			}
		}
		inputs = append(inputs, in)
	}

	hitsBefore, _ := e.DecisionCacheStats()
	for i, in := range inputs {
		got := e.Decide(ctx, in)

		plain := in
		input, err := buildInput(&plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.eval(ctx, set.authz, input, nil, false)
		if err != nil {
			t.Fatalf("request %d: plain evaluation: %v", i, err)
		}
		v, err := readDecision(r)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := v.apply(Decision{Revision: set.revision})
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("request %d (%+v): engine %+v, plain evaluation %+v", i, in, got, want)
		}
	}
	hits, misses := e.DecisionCacheStats()
	if hits-hitsBefore == 0 || misses == 0 {
		t.Errorf("cache %d hits, %d misses: the mix must exercise both", hits-hitsBefore, misses)
	}
	t.Logf("%d requests, %d answered from the decision cache", len(inputs), hits-hitsBefore)
}

// mixUsers are the verified claims of n users of issue 14's mix, in its
// four role profiles in turn: manager, staff, staff and auditor, and no
// roles claim.
func mixUsers(n int) []*claims.Claims {
	profiles := [][]any{{"manager"}, {"staff"}, {"staff", "auditor"}, nil}
	users := make([]*claims.Claims, n)
	for i := range users {
		sub := fmt.Sprintf("user-%d", i)
		raw := map[string]any{"sub": sub, "iss": "warden-dev", "aud": "warden", "iat": json.Number("1795428000"), "exp": json.Number("1795428900")}
		if p := profiles[i%len(profiles)]; p != nil {
			raw["roles"] = p
		}
		users[i] = &claims.Claims{Subject: sub, Issuer: "warden-dev", Header: claims.Header{Alg: "RS256", Kid: "k1"}, Raw: raw}
	}
	return users
}

// mixInput draws a request of the mix: a random user, orders:read two
// times in three else orders:approve, an order id out of a million, owned
// by the user one time in four and by another user otherwise.
func mixInput(rng *rand.Rand, users []*claims.Claims) Input {
	u := users[rng.IntN(len(users))]
	action := "orders:read"
	if rng.IntN(3) == 2 {
		action = "orders:approve"
	}
	owner := users[rng.IntN(len(users))].Subject
	if rng.IntN(4) == 0 {
		owner = u.Subject
	}
	return Input{Claims: u, Action: action, Resource: map[string]any{"type": "order", "id": fmt.Sprint(rng.IntN(1000000)), "owner": owner}}
}
