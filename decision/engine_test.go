package decision_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

// order is the resource of the DESIGN walk-through.
var order = map[string]any{"type": "order", "id": "42", "owner": "bob"}

func TestDecideShippedPolicy(t *testing.T) {
	e := shippedEngine(t, decision.Options{})
	rev := e.Revision()
	tests := []struct {
		name string
		in   decision.Input
		want decision.Decision
	}{
		{
			name: "manager may approve",
			in:   decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:approve", Resource: order},
			want: decision.Decision{
				Allow:    true,
				Reason:   decision.ReasonAllowed,
				Reasons:  []string{"role manager grants orders:approve"},
				Headers:  map[string]string{"x-warden-subject": "alice"},
				Revision: rev,
			},
		},
		{
			name: "staff may not approve",
			in:   decision.Input{Claims: token("carol", []any{"staff"}), Action: "orders:approve", Resource: order},
			want: decision.Decision{
				Reason:   decision.ReasonPolicyDenied,
				Reasons:  []string{"no role grants orders:approve"},
				Revision: rev,
			},
		},
		{
			name: "staff may read",
			in:   decision.Input{Claims: token("carol", []any{"staff"}), Action: "orders:read", Resource: order},
			want: decision.Decision{
				Allow:    true,
				Reason:   decision.ReasonAllowed,
				Reasons:  []string{"role staff grants orders:read"},
				Headers:  map[string]string{"x-warden-subject": "carol"},
				Revision: rev,
			},
		},
		{
			name: "owner may read",
			in:   decision.Input{Claims: token("bob", []any{}), Action: "orders:read", Resource: order},
			want: decision.Decision{
				Allow:    true,
				Reason:   decision.ReasonAllowed,
				Reasons:  []string{"subject bob owns the resource"},
				Headers:  map[string]string{"x-warden-subject": "bob"},
				Revision: rev,
			},
		},
		{
			name: "non-owner may not read",
			in:   decision.Input{Claims: token("dave", []any{}), Action: "orders:read", Resource: order},
			want: decision.Decision{
				Reason:   decision.ReasonPolicyDenied,
				Reasons:  []string{"no role grants orders:read"},
				Revision: rev,
			},
		},
		{
			name: "no resource: only roles grant",
			in:   decision.Input{Claims: token("bob", nil), Action: "orders:read"},
			want: decision.Decision{
				Reason:   decision.ReasonPolicyDenied,
				Reasons:  []string{"token has no roles claim"},
				Revision: rev,
			},
		},
		{
			name: "roles claim not an array",
			in:   decision.Input{Claims: withClaim(token("alice", nil), "roles", map[string]any{"r": "manager"}), Action: "orders:approve", Resource: order},
			want: decision.Decision{
				Reason:   decision.ReasonPolicyDenied,
				Reasons:  []string{"roles claim is not an array"},
				Revision: rev,
			},
		},
		{
			name: "no claims at all",
			in:   decision.Input{Action: "orders:read"},
			want: decision.Decision{Reason: decision.ReasonPolicyError, Revision: rev},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Decide(context.Background(), tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecideFailsClosed runs small policy sets whose decision document is
// missing, malformed or cannot be evaluated: each must deny with the right
// reason and never carry headers.
func TestDecideFailsClosed(t *testing.T) {
	tests := []struct {
		name    string
		policy  string // body of package warden.authz
		timeout time.Duration
		want    decision.Reason
		reasons []string
	}{
		{name: "allow false", policy: "allow := false", want: decision.ReasonPolicyDenied},
		{name: "allow undefined, no default", policy: `allow if input.action == "never"`, want: decision.ReasonPolicyError},
		{name: "allow a string", policy: `allow := "yes"`, want: decision.ReasonPolicyError},
		{name: "allow a number", policy: `allow := 1`, want: decision.ReasonPolicyError},
		{name: "allow an object", policy: `allow := {"allow": true}`, want: decision.ReasonPolicyError},
		{
			name: "conflicting outputs",
			policy: `allow := true if input.subject == "alice"
allow := false if input.action == "orders:read"`,
			want: decision.ReasonPolicyError,
		},
		{
			// Builtin errors are not strict (as under opa test), so the
			// division by zero leaves allow undefined, which denies.
			name:   "builtin error",
			policy: `allow := 1 / count(input.context) > 0`,
			want:   decision.ReasonPolicyError,
		},
		{
			name:   "conflict in reasons",
			policy: "allow := true\nreasons := {\"a\"}\nreasons := {\"b\"} if input.subject == \"alice\"",
			want:   decision.ReasonPolicyError,
		},
		{
			name: "timeout",
			policy: `allow if {
	some x in numbers.range(1, 100000)
	some y in numbers.range(1, 100000)
	x * y < 0
}`,
			timeout: 5 * time.Millisecond,
			want:    decision.ReasonPolicyTimeout,
		},
		{name: "reasons a string", policy: "allow := true\nreasons := \"ok\"", want: decision.ReasonPolicyError},
		{name: "reasons of numbers", policy: "allow := true\nreasons := {1, 2}", want: decision.ReasonPolicyError},
		{name: "reasons mixed", policy: "allow := true\nreasons := [\"ok\", 3]", want: decision.ReasonPolicyError},
		{name: "reasons wrong on deny", policy: "allow := false\nreasons := {\"no\": 1}", want: decision.ReasonPolicyError},
		{name: "headers an array", policy: "allow := true\nheaders := [\"x-a\"]", want: decision.ReasonPolicyError},
		{name: "header value a number", policy: "allow := true\nheaders := {\"x-a\": 1}", want: decision.ReasonPolicyError},
		{name: "header name invalid", policy: "allow := true\nheaders := {\"x a\": \"v\"}", want: decision.ReasonPolicyError},
		{name: "header value with CRLF", policy: "allow := true\nheaders := {\"x-a\": \"v\\r\\nx-admin: 1\"}", want: decision.ReasonPolicyError},
		{
			name:    "reasons array, sorted",
			policy:  "allow := false\nreasons := [\"b\", \"a\"]\nheaders := {\"x-a\": \"v\"}",
			want:    decision.ReasonPolicyDenied,
			reasons: []string{"a", "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{"p.rego": {Data: []byte("package warden.authz\n\n" + tt.policy + "\n")}}
			opts := testOptions(t)
			if tt.timeout != 0 {
				opts.EvalTimeout = tt.timeout
			}
			e, err := decision.NewEngine(context.Background(), fsys, opts)
			if err != nil {
				t.Fatalf("NewEngine: %v", err)
			}
			got := e.Decide(context.Background(), decision.Input{
				Claims: token("alice", []any{"manager"}), Action: "orders:read", Resource: order,
			})
			want := decision.Decision{Reason: tt.want, Reasons: tt.reasons, Revision: e.Revision()}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestZeroDecisionDenies(t *testing.T) {
	var d decision.Decision
	if d.Allow {
		t.Fatal("the zero Decision allows")
	}
}

// ledger is a Revocations that answers one reason for every token.
type ledger struct {
	reason decision.Reason
	mu     sync.Mutex
	calls  []*claims.Claims
	at     []time.Time
}

func (l *ledger) Check(c *claims.Claims, now time.Time) decision.Reason {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
	l.at = append(l.at, now)
	return l.reason
}

func TestDecideRevoked(t *testing.T) {
	// The policy would fail (conflicting allow) if it were evaluated, and
	// the failure would be logged: a revoked token must not get that far.
	fsys := fstest.MapFS{"p.rego": {Data: []byte("package warden.authz\n\nallow := true\n\nallow := false if input.subject\n")}}
	now := time.Date(2026, 11, 23, 10, 5, 0, 0, time.UTC)
	tests := []struct {
		reason decision.Reason
		want   decision.Decision
	}{
		{decision.ReasonTokenStale, decision.Decision{Reason: decision.ReasonTokenStale, Refresh: true}},
		{decision.ReasonTokenRevoked, decision.Decision{Reason: decision.ReasonTokenRevoked}},
		{decision.ReasonSubjectDisabled, decision.Decision{Reason: decision.ReasonSubjectDisabled}},
		{decision.ReasonRevocationStateStale, decision.Decision{Reason: decision.ReasonRevocationStateStale}},
		{"some_future_reason", decision.Decision{Reason: "some_future_reason"}},
		{decision.ReasonAllowed, decision.Decision{Reason: decision.ReasonPolicyError}}, // a broken ledger
	}
	for _, tt := range tests {
		t.Run(string(tt.reason), func(t *testing.T) {
			var logs bytes.Buffer
			l := &ledger{reason: tt.reason}
			e, err := decision.NewEngine(context.Background(), fsys, decision.Options{
				Revocations: l,
				Now:         func() time.Time { return now },
				Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
				EvalTimeout: relaxed,
			})
			if err != nil {
				t.Fatalf("NewEngine: %v", err)
			}
			c := token("alice", []any{"manager"})
			got := e.Decide(context.Background(), decision.Input{Claims: c, Action: "orders:approve", Resource: order})
			tt.want.Revision = e.Revision()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
			if len(l.calls) != 1 || l.calls[0] != c || !l.at[0].Equal(now) {
				t.Errorf("Check called with %v at %v, want once with the token's claims at %v", l.calls, l.at, now)
			}
			if strings.Contains(logs.String(), "policy failed") {
				t.Errorf("the policy was evaluated for a revoked token; log:\n%s", logs.String())
			}
		})
	}
}

func TestDecideNotRevokedConsultsPolicy(t *testing.T) {
	l := &ledger{}
	e := shippedEngine(t, decision.Options{Revocations: l})
	d := e.Decide(context.Background(), decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:approve"})
	if !d.Allow || d.Reason != decision.ReasonAllowed || d.Refresh {
		t.Errorf("Decide = %+v, want allowed without refresh", d)
	}
	if len(l.calls) != 1 {
		t.Errorf("Check called %d times, want 1", len(l.calls))
	}
}

func TestAdmit(t *testing.T) {
	e := shippedEngine(t, decision.Options{})
	tests := []struct {
		name   string
		claims *claims.Claims
		action string
		want   decision.Reason
	}{
		{"warden-admin", token("root", []any{"staff", "warden-admin"}), "POST /v1/events", decision.ReasonAllowed},
		{"manager", token("alice", []any{"manager"}), "POST /v1/events", decision.ReasonPolicyDenied},
		{"no roles", token("alice", nil), "GET /v1/status", decision.ReasonPolicyDenied},
		{"roles an object", withClaim(token("alice", nil), "roles", map[string]any{"r": "warden-admin"}), "GET /v1/status", decision.ReasonPolicyDenied},
		{"roles a string", withClaim(token("alice", nil), "roles", "warden-admin"), "GET /v1/status", decision.ReasonPolicyDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Admit(context.Background(), tt.claims, tt.action, nil)
			if err != nil || got != tt.want {
				t.Errorf("Admit = %v, %v; want %v, nil", got, err, tt.want)
			}
		})
	}

	t.Run("revoked admin", func(t *testing.T) {
		e := shippedEngine(t, decision.Options{Revocations: &ledger{reason: decision.ReasonTokenStale}})
		got, err := e.Admit(context.Background(), token("root", []any{"warden-admin"}), "GET /v1/status", nil)
		if err != nil || got != decision.ReasonTokenStale {
			t.Errorf("Admit = %v, %v; want the revocation reason token_stale", got, err)
		}
	})

	t.Run("no claims", func(t *testing.T) {
		if got, err := e.Admit(context.Background(), nil, "GET /v1/status", nil); err == nil || got == decision.ReasonAllowed {
			t.Errorf("Admit(nil) = %v, %v; want false and an error", got, err)
		}
	})

	admin := func(policy string) *decision.Engine {
		t.Helper()
		fsys := fstest.MapFS{
			"authz.rego": {Data: []byte("package warden.authz\n\ndefault allow := false\n")},
			"admin.rego": {Data: []byte("package warden.admin\n\n" + policy + "\n")},
		}
		e, err := decision.NewEngine(context.Background(), fsys, testOptions(t))
		if err != nil {
			t.Fatalf("NewEngine: %v", err)
		}
		return e
	}
	for _, tt := range []struct {
		name    string
		policy  string
		wantErr bool
	}{
		{"not exactly true", `allow := "true"`, false},
		{"undefined", `allow if input.action == "never"`, false},
		{"conflict", "allow := true\nallow := false if input.action", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := admin(tt.policy).Admit(context.Background(), token("root", []any{"warden-admin"}), "GET /v1/status", nil)
			if got == decision.ReasonAllowed || (err != nil) != tt.wantErr {
				t.Errorf("Admit = %v, %v; want false and error %v", got, err, tt.wantErr)
			}
		})
	}

	t.Run("no admin policy in the set", func(t *testing.T) {
		fsys := fstest.MapFS{"authz.rego": {Data: []byte("package warden.authz\n\nallow := true\n")}}
		e, err := decision.NewEngine(context.Background(), fsys, testOptions(t))
		if err != nil {
			t.Fatalf("NewEngine: %v", err)
		}
		if got, err := e.Admit(context.Background(), token("root", []any{"warden-admin"}), "GET /v1/status", nil); got != decision.ReasonPolicyDenied || err != nil {
			t.Errorf("Admit = %v, %v; want false, nil", got, err)
		}
	})
}

func TestNewEngineOptions(t *testing.T) {
	custom := fstest.MapFS{"p.rego": {Data: []byte("package acme.decide\n\nallow := input.action == \"go\"\n")}}
	t.Run("custom entrypoint", func(t *testing.T) {
		opts := testOptions(t)
		opts.Entrypoint = "acme/decide"
		e, err := decision.NewEngine(context.Background(), custom, opts)
		if err != nil {
			t.Fatalf("NewEngine: %v", err)
		}
		if d := e.Decide(context.Background(), decision.Input{Claims: token("a", nil), Action: "go"}); !d.Allow {
			t.Errorf("Decide = %+v, want allow", d)
		}
	})
	for _, tt := range []struct {
		name string
		fsys fstest.MapFS
		opts decision.Options
	}{
		{"entrypoint with no allow rule", custom, decision.Options{}},
		{"malformed entrypoint", custom, decision.Options{Entrypoint: "acme//decide"}},
		{"negative timeout", custom, decision.Options{Entrypoint: "acme/decide", EvalTimeout: -time.Second}},
		{"no modules", fstest.MapFS{"data.json": {Data: []byte(`{}`)}}, decision.Options{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = testLogger(t)
			if _, err := decision.NewEngine(context.Background(), tt.fsys, tt.opts); err == nil {
				t.Error("NewEngine succeeded, want an error")
			} else {
				t.Log(err)
			}
		})
	}
}

// TestLoggerDefault checks the rule every Warden package follows: without a
// Logger the engine's log is discarded, never written to the process's
// default logger; with one, it gets the log.
func TestLoggerDefault(t *testing.T) {
	var global bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&global, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	if _, err := decision.NewEngine(context.Background(), policies.FS(), decision.Options{EvalTimeout: relaxed}); err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	if global.Len() != 0 {
		t.Errorf("an engine without a Logger wrote to slog.Default():\n%s", global.String())
	}

	var own bytes.Buffer
	opts := decision.Options{EvalTimeout: relaxed, Logger: slog.New(slog.NewTextHandler(&own, nil))}
	if _, err := decision.NewEngine(context.Background(), policies.FS(), opts); err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	if !strings.Contains(own.String(), "policy set loaded") {
		t.Errorf("the engine's Logger got %q, want the policy set loaded", own.String())
	}
	if global.Len() != 0 {
		t.Errorf("an engine with a Logger wrote to slog.Default():\n%s", global.String())
	}
}
