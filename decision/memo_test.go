package decision_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

// switchable revokes every token once revoked is set.
type switchable struct{ revoked atomic.Bool }

func (s *switchable) Check(*claims.Claims, time.Time) decision.Reason {
	if s.revoked.Load() {
		return decision.ReasonTokenStale
	}
	return ""
}

func TestDecisionCache(t *testing.T) {
	ctx := context.Background()
	revs := &switchable{}
	opts := testOptions(t)
	opts.DecisionCacheSize = 100
	opts.Revocations = revs
	e := shippedEngine(t, opts)

	alice := token("alice", []any{"manager"})
	ask := func(c *claims.Claims, action string, resource map[string]any) decision.Decision {
		t.Helper()
		return e.Decide(ctx, decision.Input{Claims: c, Action: action, Resource: resource})
	}
	wantStats := func(hits, misses uint64) {
		t.Helper()
		if h, m := e.DecisionCacheStats(); h != hits || m != misses {
			t.Fatalf("cache stats = %d hits, %d misses; want %d, %d", h, m, hits, misses)
		}
	}

	first := ask(alice, "orders:approve", map[string]any{"id": "42", "type": "order"})
	again := ask(alice, "orders:approve", map[string]any{"type": "order", "id": "42"})
	wantStats(1, 1) // the same object, whatever the key order
	if !first.Allow || !again.Allow || first.Revision != again.Revision || len(again.Reasons) == 0 {
		t.Fatalf("cached decision %+v differs from the evaluated %+v", again, first)
	}

	// The shipped policy reads the resource only to compare its owner with
	// the subject (keyplan.go): another order is the same entry.
	if d := ask(alice, "orders:approve", map[string]any{"type": "order", "id": "43"}); !d.Allow {
		t.Fatalf("other resource: %+v", d)
	}
	wantStats(2, 1)
	if d := ask(token("bob", []any{"staff"}), "orders:approve", nil); d.Allow {
		t.Fatalf("staff approve: %+v, want deny (another token must not share alice's entry)", d)
	}
	if d := ask(alice, "orders:read", nil); !d.Allow {
		t.Fatalf("other action: %+v", d)
	}
	wantStats(2, 3)
	// Whether alice owns the order is another entry, with its own reasons.
	bob := token("bob", []any{"staff"})
	other := ask(bob, "orders:read", map[string]any{"id": "7", "owner": "carol"})
	owned := ask(bob, "orders:read", map[string]any{"id": "7", "owner": "bob"})
	if slices.Equal(other.Reasons, owned.Reasons) || !slices.Contains(owned.Reasons, "subject bob owns the resource") {
		t.Fatalf("owned %+v and not owned %+v share reasons", owned, other)
	}
	if again := ask(bob, "orders:read", map[string]any{"id": "8", "owner": "bob"}); !slices.Equal(again.Reasons, owned.Reasons) {
		t.Fatalf("another owned order: %+v, want %+v", again, owned)
	}
	wantStats(3, 5)

	// The revocation check runs before the cache.
	revs.revoked.Store(true)
	if d := ask(alice, "orders:approve", map[string]any{"type": "order", "id": "42"}); d.Allow || d.Reason != decision.ReasonTokenStale {
		t.Fatalf("revoked token answered from the cache: %+v", d)
	}
	revs.revoked.Store(false)

	// A reload starts a new, empty cache that answers for the new set.
	denyAll := fstest.MapFS{
		"authz.rego": {Data: []byte("package warden.authz\ndefault allow := false\n")},
		"admin.rego": {Data: []byte("package warden.admin\ndefault allow := false\n")},
	}
	if _, err := e.Reload(ctx, denyAll); err != nil {
		t.Fatal(err)
	}
	wantStats(0, 0)
	if d := ask(alice, "orders:approve", map[string]any{"type": "order", "id": "42"}); d.Allow || d.Reason != decision.ReasonPolicyDenied {
		t.Fatalf("after reload: %+v, want the new set's deny", d)
	}
}

func TestDecisionCacheOffForNondeterministicPolicies(t *testing.T) {
	ctx := context.Background()
	for name, rego := range map[string]string{
		"time.now_ns":                       "package warden.authz\nallow if time.now_ns() > input.token.claims.iat\n",
		"nested call":                       "package warden.authz\nallow if count([x | x := time.now_ns()]) > 0\n",
		"rand.intn":                         "package warden.authz\nallow if rand.intn(\"x\", 2) >= 0\n",
		"x509 verification reads the clock": "package warden.authz\nallow if {\n\t[_, _] := crypto.x509.parse_and_verify_certificates(\"x\")\n}\nallow if input.action == \"a\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			opts := testOptions(t)
			opts.DecisionCacheSize = 100
			e, err := decision.NewEngine(ctx, fstest.MapFS{
				"authz.rego": {Data: []byte(rego)},
				"admin.rego": {Data: []byte("package warden.admin\ndefault allow := false\n")},
			}, opts)
			if err != nil {
				t.Fatal(err)
			}
			in := decision.Input{Claims: token("alice", nil), Action: "a"}
			for range 2 {
				if d := e.Decide(ctx, in); !d.Allow {
					t.Fatalf("%+v", d)
				}
			}
			if h, m := e.DecisionCacheStats(); h != 0 || m != 0 {
				t.Errorf("cache used (%d hits, %d misses) by a non-deterministic policy", h, m)
			}
		})
	}
}

func TestDecisionCacheOffByDefault(t *testing.T) {
	e, err := decision.NewEngine(context.Background(), policies.FS(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	in := decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:approve"}
	e.Decide(context.Background(), in)
	e.Decide(context.Background(), in)
	if h, m := e.DecisionCacheStats(); h != 0 || m != 0 {
		t.Errorf("zero Options cached decisions: %d hits, %d misses", h, m)
	}
}

// TestDecisionCacheIgnoresUnreadHeaders: behind a proxy every request has
// its own headers (x-request-id, x-forwarded-for). A set that never reads
// input.request.headers shares one cache entry across them; a set that
// reads them, or could (the whole request, a computed key), does not.
func TestDecisionCacheIgnoresUnreadHeaders(t *testing.T) {
	ctx := context.Background()
	admin := "package warden.admin\ndefault allow := false\n"
	request := func(id string) *decision.Request {
		return &decision.Request{Method: "GET", Path: "/orders/42", Host: "h" + id, Query: map[string][]string{"page": {id}},
			Headers: map[string]string{"x-request-id": id, "x-tenant": "t" + id}}
	}
	for _, tt := range []struct {
		name   string
		rego   string
		hits   uint64
		allows [2]bool
	}{
		{"never read", "package warden.authz\nallow if input.request.path == \"/orders/42\"\n", 1, [2]bool{true, true}},
		{"a header read", "package warden.authz\nallow if input.request.headers[\"x-tenant\"] == \"t1\"\n", 0, [2]bool{true, false}},
		{"the request whole", "package warden.authz\nallow if count(json.marshal(input.request)) > 0\n", 0, [2]bool{true, true}},
		{"a computed key", "package warden.authz\nallow if {\n\tsome k\n\tinput.request[k][\"x-tenant\"] == \"t1\"\n}\n", 0, [2]bool{true, false}},
		{"through an import", "package warden.authz\nimport input.request.headers as h\nallow if h[\"x-tenant\"] == \"t1\"\n", 0, [2]bool{true, false}},
		{"the query read", "package warden.authz\nallow if input.request.query.page[0] == \"1\"\n", 0, [2]bool{true, false}},
		{"the host read", "package warden.authz\nallow if input.request.host == \"h1\"\n", 0, [2]bool{true, false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(t)
			opts.DecisionCacheSize = 100
			e, err := decision.NewEngine(ctx, fstest.MapFS{
				"authz.rego":      {Data: []byte(tt.rego)},
				"authz_test.rego": {Data: []byte("package warden.authz_test\nimport data.warden.authz\ntest_x if count([1 | authz.allow with input as {\"request\": {\"headers\": {}}}]) >= 0\n")},
				"admin.rego":      {Data: []byte(admin)},
			}, opts)
			if err != nil {
				t.Fatal(err)
			}
			alice := token("alice", nil)
			for i, id := range []string{"1", "2"} {
				if d := e.Decide(ctx, decision.Input{Claims: alice, Request: request(id)}); d.Allow != tt.allows[i] {
					t.Errorf("request %d: allow %v, want %v", i+1, d.Allow, tt.allows[i])
				}
			}
			if h, m := e.DecisionCacheStats(); h != tt.hits || h+m != 2 {
				t.Errorf("cache stats %d hits, %d misses; want %d hits", h, m, tt.hits)
			}
		})
	}
}

// TestShippedSetCachesProxiedRequests: the shipped policy never reads
// input.request's headers, query or host, so requests that differ only in
// those share a cache entry.
func TestShippedSetCachesProxiedRequests(t *testing.T) {
	opts := testOptions(t)
	opts.DecisionCacheSize = 100
	e := shippedEngine(t, opts)
	alice := token("alice", []any{"manager"})
	for _, id := range []string{"r1", "r2", "r3"} {
		d := e.Decide(context.Background(), decision.Input{Claims: alice, Request: &decision.Request{
			Method: "POST", Path: "/orders/42/approve", Host: id + ".example.com",
			Query: map[string][]string{"page": {id}}, Headers: map[string]string{"x-request-id": id},
		}})
		if !d.Allow {
			t.Fatalf("%s: %+v", id, d)
		}
	}
	if h, m := e.DecisionCacheStats(); h != 2 || m != 1 {
		t.Errorf("cache stats %d hits, %d misses; want 2 and 1", h, m)
	}
}

// TestDecisionCacheAuthZEN: AuthZEN evaluations that differ only in what
// a set never reads (input.authzen, when it reads none of it) share an
// entry; a set that reads input.authzen, and asserted subjects of other
// names, do not.
func TestDecisionCacheAuthZEN(t *testing.T) {
	ctx := context.Background()
	evaluation := func(subject, role string) decision.Input {
		return decision.Input{Subject: subject, Action: "read", Resource: map[string]any{"type": "doc", "id": "1"},
			AuthZEN: &decision.AuthZEN{
				Subject:  decision.Entity{Type: "user", ID: subject, Properties: map[string]any{"role": role}},
				Action:   decision.Action{Name: "read"},
				Resource: decision.Entity{Type: "doc", ID: "1"},
			}}
	}
	for _, tt := range []struct {
		name   string
		rego   string
		hits   uint64
		allows [3]bool
	}{
		{"never read", "package warden.authz\nallow if input.subject == \"alice\"\n", 1, [3]bool{true, true, false}},
		{"a property read", "package warden.authz\nallow if input.authzen.subject.properties.role == \"admin\"\n", 0, [3]bool{true, false, true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(t)
			opts.DecisionCacheSize = 100
			e, err := decision.NewEngine(ctx, fstest.MapFS{
				"authz.rego": {Data: []byte(tt.rego)},
				"admin.rego": {Data: []byte("package warden.admin\ndefault allow := false\n")},
			}, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, in := range []decision.Input{evaluation("alice", "admin"), evaluation("alice", "viewer"), evaluation("bob", "admin")} {
				if d := e.Decide(ctx, in); d.Allow != tt.allows[i] {
					t.Errorf("evaluation %d: %+v, want allow %v", i+1, d, tt.allows[i])
				}
			}
			if h, m := e.DecisionCacheStats(); h != tt.hits || h+m != 3 {
				t.Errorf("cache stats %d hits, %d misses; want %d hits", h, m, tt.hits)
			}
		})
	}
}
