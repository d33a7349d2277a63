package decision_test

import (
	"context"
	"testing"

	"github.com/wardenauthz/warden/decision"
)

// BenchmarkDecide measures one decision on the shipped policy: a manager
// approving an order (revocation check, input, Rego, result).
//
//	go test -run XXX -bench Decide ./decision/
func BenchmarkDecide(b *testing.B) {
	e := shippedEngine(b, decision.Options{})
	in := decision.Input{
		Claims:   token("alice", []any{"manager"}),
		Action:   "orders:approve",
		Resource: map[string]any{"type": "order", "id": "42", "owner": "bob"},
	}
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
}
