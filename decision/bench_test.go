package decision_test

import (
	"context"
	"testing"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

// BenchmarkDecide measures one decision on the shipped policy: a manager
// approving an order (revocation check, input, Rego, result). "evaluated"
// runs Rego every time (decision cache off); "cached" is the same decision
// answered from the decision cache after the first.
//
//	go test -run XXX -bench Decide -benchmem ./decision/
func BenchmarkDecide(b *testing.B) {
	in := decision.Input{
		Claims:   token("alice", []any{"manager"}),
		Action:   "orders:approve",
		Resource: map[string]any{"type": "order", "id": "42", "owner": "bob"},
	}
	for _, bc := range []struct {
		name      string
		cacheSize int
	}{{"evaluated", 0}, {"cached", 1000}} {
		b.Run(bc.name, func(b *testing.B) {
			e := shippedEngine(b, decision.Options{DecisionCacheSize: bc.cacheSize})
			ctx := context.Background()
			if d := e.Decide(ctx, in); !d.Allow {
				b.Fatalf("Decide = %+v, want allow", d)
			}
			b.ReportAllocs()
			for b.Loop() {
				if d := e.Decide(ctx, in); !d.Allow {
					b.Fatal("denied")
				}
			}
		})
	}
}

// BenchmarkInput measures building the policy input alone, the part of
// Decide that is Warden's own code rather than OPA's.
func BenchmarkInput(b *testing.B) {
	in := decision.Input{
		Claims:   token("alice", []any{"manager"}),
		Action:   "orders:approve",
		Resource: map[string]any{"type": "order", "id": "42", "owner": "bob"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decision.BuildInput(&in, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReload measures activating the shipped policy set: loading,
// compiling, running its Rego tests (which a set must pass to be
// activated) and preparing the queries. It is the engine's share of a
// policy rollout.
//
//	go test -run XXX -bench Reload -benchmem ./decision/
func BenchmarkReload(b *testing.B) {
	e := shippedEngine(b, decision.Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Reload(ctx, policies.FS()); err != nil {
			b.Fatal(err)
		}
	}
}
