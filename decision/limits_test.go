package decision_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/wardenauthz/warden/decision"
)

// TestRunawayBuiltins: a policy that hands a built-in a number that makes it
// expensive (the caller controls input.context) is refused before the
// built-in runs: the decision denies with policy_error at once rather than
// allocating gigabytes past the timeout. Numbers of a realistic size pass.
func TestRunawayBuiltins(t *testing.T) {
	tests := []struct {
		name, policy string
		context      map[string]any
		want         decision.Reason
	}{
		// bits.lsh(1, 10^10) built a 1.25 GB integer in one step and took
		// seconds under a 50 ms timeout.
		{"huge shift", `allow if bits.lsh(1, input.context.n) > 0`, map[string]any{"n": 10_000_000_000}, decision.ReasonPolicyError},
		{"fair shift", `allow if bits.lsh(1, input.context.n) > 0`, map[string]any{"n": 62}, decision.ReasonAllowed},
		{"repeated squaring", `allow if {
	x := to_number(input.context.s)
	y := x * x
	z := y * y
	w := z * z
	w > 0
}`, map[string]any{"s": "9999999999999999999999999999999999999999"}, decision.ReasonPolicyError},
		{"a long number text", `allow if to_number(input.context.s) > 0`, map[string]any{"s": string(make([]byte, 101))}, decision.ReasonPolicyError},
		{"nanosecond timestamps", `allow if input.context.ns * 2 > time.now_ns()`, map[string]any{"ns": time.Now().UnixNano()}, decision.ReasonAllowed},
		{"a padded sprintf", `allow if count(sprintf("%0999999999d", [1])) > 0`, nil, decision.ReasonPolicyError},
		{"a width from the arguments", `allow if count(sprintf("%*d", [input.context.n, 1])) > 0`, map[string]any{"n": 1_000_000_000}, decision.ReasonPolicyError},
		{"a fair sprintf", `allow if sprintf("%05.2f%% of %s", [3.14159, "x"]) == "03.14% of x"`, nil, decision.ReasonAllowed},
		{"a long number in an array", `allow if sum([1, input.context.big]) > 0`, map[string]any{"big": json.Number("1" + strings.Repeat("0", 100))}, decision.ReasonPolicyError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{"p.rego": {Data: []byte("package warden.authz\n\n" + tt.policy + "\n")}}
			opts := testOptions(t)
			opts.EvalTimeout = time.Second
			e, err := decision.NewEngine(context.Background(), fsys, opts)
			if err != nil {
				t.Fatalf("NewEngine: %v", err)
			}
			start := time.Now()
			d := e.Decide(context.Background(), decision.Input{
				Claims: token("alice", []any{"manager"}), Action: "orders:read", Resource: order, Context: tt.context,
			})
			if d.Reason != tt.want {
				t.Errorf("Decide = %+v, want %s", d, tt.want)
			}
			if took := time.Since(start); took > 500*time.Millisecond {
				t.Errorf("took %v", took)
			}
		})
	}
}

// TestTimeoutNotCooperative: the caller gets policy_timeout at the deadline
// even when OPA is stuck inside one built-in (here http.send to a server
// that answers after two seconds, which polls no cancellation).
func TestTimeoutNotCooperative(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(2 * time.Second):
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	policy := "package warden.authz\n\nallow if http.send({\"method\": \"GET\", \"url\": input.context.url}).status_code == 200\n"
	opts := testOptions(t)
	opts.EvalTimeout = 50 * time.Millisecond
	opts.AllowNetworkBuiltins = true
	e, err := decision.NewEngine(context.Background(), fstest.MapFS{"p.rego": {Data: []byte(policy)}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := e.Decide(context.Background(), decision.Input{
		Claims: token("alice", nil), Action: "orders:read", Context: map[string]any{"url": slow.URL},
	})
	took := time.Since(start)
	if d.Allow || d.Reason != decision.ReasonPolicyTimeout {
		t.Errorf("Decide = %+v, want policy_timeout", d)
	}
	if took > time.Second {
		t.Errorf("answered after %v; the timeout is 50ms", took)
	}

	// Explain of the same stuck evaluation answers too, without the trace
	// the abandoned evaluation may still be writing.
	ex, err := e.Explain(context.Background(), decision.Input{
		Claims: token("alice", nil), Action: "orders:read", Context: map[string]any{"url": slow.URL},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Decision.Reason != decision.ReasonPolicyTimeout || ex.Error == nil {
		t.Errorf("Explain = %+v, want policy_timeout with an error", ex.Decision)
	}
}
