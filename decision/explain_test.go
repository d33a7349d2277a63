package decision_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"maps"
	"slices"
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

// ruleLines summarises an explanation's rules as "name = value" lines, with
// the arguments of functions and "(default)" on values from a default rule.
func ruleLines(t *testing.T, rules []decision.RuleResult) []string {
	t.Helper()
	var out []string
	for _, r := range rules {
		value, err := json.Marshal(r.Value)
		if err != nil {
			t.Fatalf("rule %s: value %#v: %v", r.Rule, r.Value, err)
		}
		line := r.Rule
		if r.Args != nil {
			args, _ := json.Marshal(r.Args)
			line += string(args)
		}
		line += " = " + string(value)
		if r.Default {
			line += " (default)"
		}
		out = append(out, line)
	}
	return out
}

// copyFS copies a policy file system into a map, so that a test can add to
// or change the shipped set.
func copyFS(t *testing.T, fsys fs.FS) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, name)
		out[name] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExplainShippedPolicy(t *testing.T) {
	ctx := context.Background()
	e := shippedEngine(t, decision.Options{})
	tests := []struct {
		name      string
		in        decision.Input
		wantRules []string
	}{
		{
			name: "manager may approve",
			in:   decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:approve", Resource: order},
			wantRules: []string{
				"allow = true",
				`action = "orders:approve"`,
				`grants = "role manager grants orders:approve"`,
				`roles = ["manager"]`,
				`reasons = ["role manager grants orders:approve"]`,
				`headers = {"x-warden-subject":"alice"}`,
			},
		},
		{
			name: "staff may not approve",
			in:   decision.Input{Claims: token("carol", []any{"staff"}), Action: "orders:approve", Resource: order},
			wantRules: []string{
				"allow = false (default)",
				`action = "orders:approve"`,
				`roles = ["staff"]`,
				`reasons = ["no role grants orders:approve"]`,
				`denials = "no role grants orders:approve"`,
				"has_roles_claim = true",
			},
		},
		{
			name: "two grants",
			in:   decision.Input{Claims: token("bob", []any{"staff"}), Action: "orders:read", Resource: order},
			wantRules: []string{
				"allow = true",
				`action = "orders:read"`,
				`resource = {"id":"42","owner":"bob","type":"order"}`,
				`grants = "role staff grants orders:read"`,
				`grants = "subject bob owns the resource"`,
				`roles = ["staff"]`,
				`reasons = ["role staff grants orders:read","subject bob owns the resource"]`,
				`headers = {"x-warden-subject":"bob"}`,
			},
		},
		{
			name: "a request through a proxy, mapped by its route",
			in: decision.Input{Claims: token("carol", []any{"staff"}), Request: &decision.Request{
				Method: "GET", Path: "/orders/42", Host: "api.example.com",
			}},
			wantRules: []string{
				"allow = true",
				`action = "orders:read"`,
				`resource = {"id":"42","type":"order"}`,
				`grants = "role staff grants orders:read"`,
				`roles = ["staff"]`,
				`reasons = ["role staff grants orders:read"]`,
				`headers = {"x-warden-subject":"carol"}`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := e.Explain(ctx, tt.in, nil)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			if diff := cmp.Diff(e.Decide(ctx, tt.in), ex.Decision); diff != "" {
				t.Errorf("Explain's decision differs from Decide's (-Decide +Explain):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRules, ruleLines(t, ex.Rules)); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
			for _, r := range ex.Rules {
				if r.File != "authz.rego" || r.Row == 0 || r.Col == 0 {
					t.Errorf("rule %s located at %s:%d:%d, want a row of authz.rego", r.Rule, r.File, r.Row, r.Col)
				}
			}
			if ex.Error != nil || ex.Revoked != "" || ex.Tests != nil {
				t.Errorf("Error %v, Revoked %q, Tests %v; want none for an active set that decided", ex.Error, ex.Revoked, ex.Tests)
			}
			if ex.TraceTruncated || len(ex.Trace) == 0 || len(ex.Trace) > decision.MaxExplainTraceLines {
				t.Errorf("trace of %d lines, truncated %v; want a short, whole trace", len(ex.Trace), ex.TraceTruncated)
			}
			trace := strings.Join(ex.Trace, "\n")
			for _, want := range []string{"Enter data.warden.authz.allow", "authz.rego:18", `{role: "`} {
				if !strings.Contains(trace, want) {
					t.Errorf("trace lacks %q:\n%s", want, trace)
				}
			}
			if strings.Contains(trace, "Unify ") {
				t.Errorf("trace has Unify events, which opa eval --explain=full leaves out:\n%s", trace)
			}
		})
	}
}

// TestExplainInputIsTheTestInput pastes the explained input into a Rego
// test, as an author would, and checks that the test sees the explained
// decision.
func TestExplainInputIsTheTestInput(t *testing.T) {
	ctx := context.Background()
	e := shippedEngine(t, decision.Options{})
	for _, in := range []decision.Input{
		{Claims: token("alice", []any{"manager"}), Action: "orders:approve", Resource: order},
		{Claims: token("carol", []any{"staff"}), Action: "orders:approve", Resource: order, Context: map[string]any{"ip": "10.0.0.1", "n": json.Number("1.5")}},
		{Claims: token("dave", nil), Action: "orders:read", Request: &decision.Request{Method: "GET", Path: "/orders/42", Headers: map[string]string{"x-a": "b"}}},
	} {
		ex, err := e.Explain(ctx, in, nil)
		if err != nil {
			t.Fatalf("Explain: %v", err)
		}
		input, err := json.Marshal(ex.Input)
		if err != nil {
			t.Fatal(err)
		}
		reasons, _ := json.Marshal(ex.Decision.Reasons)
		set := copyFS(t, policies.FS())
		set["explained_test.rego"] = &fstest.MapFile{Data: fmt.Appendf(nil, `package explained_test

import data.warden.authz

test_explained if {
	authz.allow == %t with input as %s
	authz.reasons == {r | some r in %s} with input as %s
}
`, ex.Decision.Allow, input, reasons, input)}
		report, err := decision.Test(ctx, set, decision.TestOptions{Run: "explained"})
		if err != nil {
			t.Fatalf("Test: %v", err)
		}
		if report.Counts.Pass != 1 || !report.Passed() {
			t.Errorf("the explained input does not reproduce the decision %+v in a test: %+v\ninput: %s", ex.Decision, report.Tests, input)
		}
	}
}

// TestExplainRules checks which rules are reported, and how, on a policy
// (testdata/policies/explain) with a function, a rule with a variable in its
// head, a default, an else, a helper package and values without a plain JSON
// form.
func TestExplainRules(t *testing.T) {
	fsys := fixture(t, "explain")
	e, err := decision.NewEngine(context.Background(), fsys, testOptions(t))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	ex, err := e.Explain(context.Background(), decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:read"}, nil)
	if err != nil {
		t.Fatalf("Explain: %v", err)
	}
	if !ex.Decision.Allow {
		t.Fatalf("decision %+v, error %v; want allow", ex.Decision, ex.Error)
	}
	want := []string{
		"allow = true",
		"double[1] = 2",
		"limits.orders = 5", // only the key asked for is evaluated
		`tier = "silver"`,   // the else, located at its own row
		`reasons = "b"`,     // each value once, in evaluation order
		`reasons = "a"`,
		`odd = {"1":[2,3]}`, // as OPA's JSON has it
	}
	if diff := cmp.Diff(want, ruleLines(t, ex.Rules)); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	rows := map[string]int{}
	for _, r := range ex.Rules {
		rows[r.Rule] = r.Row
	}
	if diff := cmp.Diff(map[string]int{"allow": 7, "double": 15, "limits.orders": 17, "tier": 22, "reasons": 24, "odd": 26}, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if !strings.Contains(strings.Join(ex.Trace, "\n"), "Enter data.warden.lib.ok") {
		t.Error("the trace lacks the helper package's rule, which Rules leaves out")
	}
}

// denyOrAllow is a set whose data decides, so that a draft can change the
// outcome with one file.
func denyOrAllow(allow bool) fstest.MapFS {
	return files(map[string]string{
		"authz.rego": "package warden.authz\n\ndefault allow := false\n\nallow if data.open\n\nreasons contains \"open\" if allow\n",
		"data.json":  fmt.Sprintf(`{"open": %t}`, allow),
	})
}

func TestExplainDraft(t *testing.T) {
	ctx := context.Background()
	e, err := decision.NewEngine(ctx, denyOrAllow(false), testOptions(t))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	active := e.Revision()
	in := decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:read"}
	if d := e.Decide(ctx, in); d.Allow {
		t.Fatalf("active set allows: %+v", d)
	}

	draft := denyOrAllow(true)
	cand, err := decision.Check(ctx, draft, decision.CheckOptions{})
	if err != nil {
		t.Fatalf("Check(draft): %v", err)
	}
	ex, err := e.Explain(ctx, in, draft)
	if err != nil {
		t.Fatalf("Explain(draft): %v", err)
	}
	want := decision.Decision{Allow: true, Reason: decision.ReasonAllowed, Reasons: []string{"open"}, Revision: cand.Revision}
	if diff := cmp.Diff(want, ex.Decision); diff != "" {
		t.Errorf("draft decision (-want +got):\n%s", diff)
	}
	if cand.Revision == active {
		t.Fatal("draft and active set have the same revision")
	}
	if ex.Tests == nil || ex.Tests.Counts.Total() != 0 {
		t.Errorf("Tests = %+v, want an empty report for a draft without tests", ex.Tests)
	}

	// The active set is untouched.
	if got := e.Revision(); got != active {
		t.Errorf("Revision after Explain(draft) = %s, want %s", got, active)
	}
	if d := e.Decide(ctx, in); d.Allow || d.Revision != active {
		t.Errorf("Decide after Explain(draft) = %+v, want the active set's deny", d)
	}
	if ex, err := e.Explain(ctx, in, nil); err != nil || ex.Decision.Allow || ex.Decision.Revision != active || ex.Tests != nil {
		t.Errorf("Explain(active) after a draft = %+v, %v; want the active set's deny", ex, err)
	}

	t.Run("failing test", func(t *testing.T) {
		draft := denyOrAllow(true)
		draft["authz_test.rego"] = &fstest.MapFile{Data: []byte(`package warden.authz_test

import data.warden.authz

test_closed if not authz.allow
`)}
		if _, err := decision.Check(ctx, draft, decision.CheckOptions{}); err == nil {
			t.Fatal("Check accepted a set with a failing test")
		}
		ex, err := e.Explain(ctx, in, draft)
		if err != nil {
			t.Fatalf("Explain(draft with a failing test) = %v, want it explained", err)
		}
		if !ex.Decision.Allow {
			t.Errorf("decision %+v, want the draft's allow", ex.Decision)
		}
		if ex.Tests == nil || ex.Tests.Counts.Fail != 1 || ex.Tests.Passed() {
			t.Fatalf("Tests = %+v, want the failing test reported", ex.Tests)
		}
		if f := ex.Tests.Tests[0]; f.Name != "test_closed" || f.Outcome != decision.OutcomeFail || f.Row != 5 {
			t.Errorf("test result %+v, want test_closed failing at row 5", f)
		}
	})
}

func TestExplainBrokenDraft(t *testing.T) {
	ctx := context.Background()
	e := shippedEngine(t, decision.Options{})
	active := e.Revision()
	in := decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:approve"}
	tests := []struct {
		name  string
		files map[string]string
		want  []decision.Problem // Message left out
	}{
		{
			name:  "syntax error",
			files: map[string]string{"authz.rego": "package warden.authz\n\nallow if {\n\tinput.x ==\n}\n"},
			want:  []decision.Problem{{File: "authz.rego", Row: 5, Col: 1, Code: "rego_parse_error"}},
		},
		{
			name:  "type error",
			files: map[string]string{"authz.rego": "package warden.authz\n\nallow if {\n\tcount(input.roles) == \"two\"\n}\n"},
			want:  []decision.Problem{{File: "authz.rego", Row: 4, Col: 2, Code: "rego_type_error"}},
		},
		{
			name:  "no allow rule",
			files: map[string]string{"authz.rego": "package warden.authz\n\ndeny := true\n"},
			want:  []decision.Problem{{}},
		},
		{
			name: "restricted built-in",
			files: map[string]string{"authz.rego": `package warden.authz

allow if http.send({"method": "GET", "url": "http://example.com"}).status_code == 200
`},
			want: []decision.Problem{{File: "authz.rego", Row: 3, Col: 10, Code: decision.CodeRestrictedBuiltin}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := e.Explain(ctx, in, files(tt.files))
			var pe *decision.PolicyError
			if !errors.As(err, &pe) || ex != nil {
				t.Fatalf("Explain = %+v, %v; want a *PolicyError", ex, err)
			}
			var got []decision.Problem
			for _, p := range pe.Problems {
				if p.Message == "" {
					t.Errorf("problem %+v has no message", p)
				}
				got = append(got, decision.Problem{File: p.File, Row: p.Row, Col: p.Col, Code: p.Code})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s\n%v", diff, err)
			}
			if e.Revision() != active {
				t.Errorf("revision changed to %s", e.Revision())
			}
		})
	}
}

func TestExplainRevoked(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		reason decision.Reason
		want   decision.Decision
	}{
		{decision.ReasonTokenStale, decision.Decision{Reason: decision.ReasonTokenStale, Refresh: true}},
		{decision.ReasonTokenRevoked, decision.Decision{Reason: decision.ReasonTokenRevoked}},
		{decision.ReasonSubjectDisabled, decision.Decision{Reason: decision.ReasonSubjectDisabled}},
		{decision.ReasonAllowed, decision.Decision{Reason: decision.ReasonPolicyError}}, // a broken ledger
	} {
		t.Run(string(tt.reason), func(t *testing.T) {
			e := shippedEngine(t, decision.Options{Revocations: &ledger{reason: tt.reason}})
			in := decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:approve", Resource: order}
			for _, draft := range []fs.FS{nil, denyOrAllow(true)} {
				ex, err := e.Explain(ctx, in, draft)
				if err != nil {
					t.Fatalf("Explain: %v", err)
				}
				want := tt.want
				want.Revision = e.Revision()
				if draft != nil {
					want.Revision = ex.Decision.Revision // the draft's, checked in TestExplainDraft
				} else if diff := cmp.Diff(e.Decide(ctx, in), ex.Decision); diff != "" {
					t.Errorf("Explain's decision differs from Decide's (-Decide +Explain):\n%s", diff)
				}
				if diff := cmp.Diff(want, ex.Decision); diff != "" {
					t.Errorf("decision (-want +got):\n%s", diff)
				}
				if ex.Revoked != want.Reason {
					t.Errorf("Revoked = %q, want %q", ex.Revoked, want.Reason)
				}
				if len(ex.Trace) != 0 || len(ex.Rules) != 0 || ex.Error != nil {
					t.Errorf("trace %q, rules %v, error %v; want none: the policy was not evaluated", ex.Trace, ex.Rules, ex.Error)
				}
				if ex.Input["subject"] != "alice" {
					t.Errorf("Input = %v, want the input the policy would see", ex.Input)
				}
			}
		})
	}
}

// TestExplainFailsClosed explains the sets of TestDecideFailsClosed that
// cannot decide: each must deny as Decide does and say why.
func TestExplainFailsClosed(t *testing.T) {
	tests := []struct {
		name    string
		policy  string // body of package warden.authz
		in      decision.Input
		timeout time.Duration
		want    decision.Reason
		problem decision.Problem // Message: a part of it
	}{
		{
			name: "conflict",
			policy: `allow := true if input.subject == "alice"
allow := false if input.action == "orders:read"`,
			want:    decision.ReasonPolicyError,
			problem: decision.Problem{File: "p.rego", Row: 4, Col: 1, Code: "eval_conflict_error", Message: "produced conflicting values"},
		},
		{
			name:    "allow a string",
			policy:  `allow := "yes"`,
			want:    decision.ReasonPolicyError,
			problem: decision.Problem{Message: "allow is string"},
		},
		{
			name:    "undefined",
			policy:  `allow if input.action == "never"`,
			want:    decision.ReasonPolicyError,
			problem: decision.Problem{Message: "allow is undefined"},
		},
		{
			name:    "header injection",
			policy:  "allow := true\nheaders := {\"x-a\": \"v\\r\\nx-admin: 1\"}",
			want:    decision.ReasonPolicyError,
			problem: decision.Problem{Message: "want an HTTP header value"},
		},
		{
			name: "timeout",
			policy: `allow if {
	some x in numbers.range(1, 100000)
	some y in numbers.range(1, 100000)
	x * y < 0
}`,
			timeout: 200 * time.Millisecond, // long enough for the trace to start, even under -race
			want:    decision.ReasonPolicyTimeout,
			problem: decision.Problem{Message: "policy evaluation timed out after 200ms"},
		},
		{
			name:    "no claims",
			policy:  "allow := true",
			in:      decision.Input{Action: "orders:read"},
			want:    decision.ReasonPolicyError,
			problem: decision.Problem{Message: "no verified claims"},
		},
		{
			name:    "input not representable",
			policy:  "allow := true",
			in:      decision.Input{Claims: token("alice", nil), Action: "orders:read", Context: map[string]any{"n": json.Number("1e")}},
			want:    decision.ReasonPolicyError,
			problem: decision.Problem{Message: "policy input"},
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
			in := tt.in
			if in.Action == "" {
				in = decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:read", Resource: order}
			}
			ex, err := e.Explain(context.Background(), in, nil)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			want := decision.Decision{Reason: tt.want, Revision: e.Revision()}
			if diff := cmp.Diff(want, ex.Decision); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			if d := e.Decide(context.Background(), in); !cmp.Equal(d, ex.Decision) {
				t.Errorf("Decide = %+v, Explain = %+v; want the same", d, ex.Decision)
			}
			p := ex.Error
			if p == nil {
				t.Fatal("Error = nil, want the cause")
			}
			if !strings.Contains(p.Message, tt.problem.Message) {
				t.Errorf("Error.Message = %q, want it to contain %q", p.Message, tt.problem.Message)
			}
			if p.File != tt.problem.File || p.Row != tt.problem.Row || p.Col != tt.problem.Col || p.Code != tt.problem.Code {
				t.Errorf("Error at %s:%d:%d code %q, want %s:%d:%d code %q", p.File, p.Row, p.Col, p.Code,
					tt.problem.File, tt.problem.Row, tt.problem.Col, tt.problem.Code)
			}
			if tt.want == decision.ReasonPolicyTimeout && !strings.Contains(strings.Join(ex.Trace, "\n"), "numbers.range") {
				t.Errorf("timed-out trace %q, want what was evaluated until the timeout", ex.Trace)
			}
		})
	}
}

func TestExplainTraceBounded(t *testing.T) {
	fsys := files(map[string]string{"authz.rego": `package warden.authz

allow if count(big) > 0

big contains x if {
	some x in numbers.range(1, 10000)
	x % 7 == 0
}
`})
	e, err := decision.NewEngine(context.Background(), fsys, testOptions(t))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	ex, err := e.Explain(context.Background(), decision.Input{Claims: token("alice", nil), Action: "a"}, nil)
	if err != nil {
		t.Fatalf("Explain: %v", err)
	}
	if !ex.Decision.Allow {
		t.Fatalf("decision %+v (%v), want allow", ex.Decision, ex.Error)
	}
	if !ex.TraceTruncated || len(ex.Trace) != decision.MaxExplainTraceLines+1 {
		t.Fatalf("trace of %d lines, truncated %v; want %d and a note", len(ex.Trace), ex.TraceTruncated, decision.MaxExplainTraceLines+1)
	}
	if last := ex.Trace[len(ex.Trace)-1]; !strings.HasPrefix(last, "... ") || !strings.HasSuffix(last, " more not shown") {
		t.Errorf("last line %q, want a note of what was left out", last)
	}
	// Rules are taken from every event, not only from those the trace
	// kept, up to their own bound per rule: allow, produced last, is there.
	if n := len(ex.Rules); n != 1+decision.MaxExplainRuleValues || !ex.RulesTruncated {
		t.Fatalf("%d rule values, truncated %v; want allow and %d of big, truncated", n, ex.RulesTruncated, decision.MaxExplainRuleValues)
	}
	if r := ex.Rules[0]; r.Rule != "allow" || r.Value != true {
		t.Errorf("first rule %+v, want allow = true", r)
	}
	if r := ex.Rules[len(ex.Rules)-1]; r.Rule != "big" || fmt.Sprint(r.Value) != fmt.Sprint(7*decision.MaxExplainRuleValues) {
		t.Errorf("last rule value %+v, want big = %d", r, 7*decision.MaxExplainRuleValues)
	}
}

func TestExplainBypassesDecisionCache(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.DecisionCacheSize = 100
	e := shippedEngine(t, opts)
	alice := decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:approve", Resource: order}
	carol := decision.Input{Claims: token("carol", []any{"staff"}), Action: "orders:approve", Resource: order}
	stats := func(want [2]uint64) {
		t.Helper()
		if h, m := e.DecisionCacheStats(); h != want[0] || m != want[1] {
			t.Fatalf("cache stats = %d hits, %d misses; want %d, %d", h, m, want[0], want[1])
		}
	}

	e.Decide(ctx, alice) // cached
	stats([2]uint64{0, 1})
	for range 2 {
		for _, in := range []decision.Input{alice, carol} {
			ex, err := e.Explain(ctx, in, nil)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			if len(ex.Trace) == 0 || len(ex.Rules) == 0 {
				t.Fatalf("Explain answered without evaluating: %+v", ex)
			}
		}
	}
	stats([2]uint64{0, 1}) // neither read nor counted
	e.Decide(ctx, carol)
	stats([2]uint64{0, 2}) // Explain did not fill it for carol
	e.Decide(ctx, alice)
	stats([2]uint64{1, 2})
}

// TestExplainDuringReload explains, with and without a draft, while the
// active set changes (run it with -race): each explanation is made by one
// set and agrees with its revision.
func TestExplainDuringReload(t *testing.T) {
	ctx := context.Background()
	e, err := decision.NewEngine(ctx, denyOrAllow(false), testOptions(t))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	closed := e.Revision()
	in := decision.Input{Claims: token("alice", nil), Action: "a"}
	stop := make(chan struct{})
	var reloader, explainers sync.WaitGroup
	reloader.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.Reload(ctx, denyOrAllow(i%2 == 0)); err != nil {
				t.Errorf("Reload: %v", err)
				return
			}
		}
	})
	for range 4 {
		explainers.Go(func() {
			for i := range 50 {
				var draft fs.FS
				if i%5 == 0 {
					draft = denyOrAllow(true)
				}
				ex, err := e.Explain(ctx, in, draft)
				if err != nil {
					t.Errorf("Explain: %v", err)
					return
				}
				if ex.Decision.Allow == (ex.Decision.Revision == closed) {
					t.Errorf("decision %+v mixes two sets", ex.Decision)
				}
			}
		})
	}
	explainers.Wait()
	close(stop)
	reloader.Wait()
}

func TestExplanationJSON(t *testing.T) {
	e := shippedEngine(t, decision.Options{})
	ex, err := e.Explain(context.Background(), decision.Input{Claims: token("carol", []any{"staff"}), Action: "orders:approve"}, nil)
	if err != nil {
		t.Fatalf("Explain: %v", err)
	}
	b, err := json.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(got))
	if diff := cmp.Diff([]string{"decision", "input", "rules", "trace"}, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s\n%s", diff, b)
	}
	want := fmt.Sprintf(`{"allow":false,"reason":"policy_denied","reasons":["no role grants orders:approve"],"refresh":false,"policy_revision":%q}`, e.Revision())
	if string(got["decision"]) != want {
		t.Errorf("decision = %s, want %s", got["decision"], want)
	}
	if !strings.Contains(string(got["rules"]), `{"rule":"allow","file":"authz.rego","row":16,"col":1,"default":true,"value":false}`) {
		t.Errorf("rules = %s, want the default allow", got["rules"])
	}
}

// Explain why a member of staff may not approve an order: the decision,
// the rules of data.warden.authz that produced a value, and where.
func ExampleEngine_Explain() {
	ctx := context.Background()
	engine, err := decision.NewEngine(ctx, policies.FS(), decision.Options{})
	if err != nil {
		log.Fatal(err)
	}
	carol := &claims.Claims{
		Subject: "carol",
		Header:  claims.Header{Alg: "ES256"},
		Raw:     map[string]any{"sub": "carol", "roles": []any{"staff"}},
	}
	ex, err := engine.Explain(ctx, decision.Input{Claims: carol, Action: "orders:approve"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ex.Decision.Allow, ex.Decision.Reason, ex.Decision.Reasons)
	for _, r := range ex.Rules {
		fmt.Printf("%s:%d %s = %v\n", r.File, r.Row, r.Rule, r.Value)
	}
	// Output:
	// false policy_denied [no role grants orders:approve]
	// authz.rego:16 allow = false
	// authz.rego:23 action = orders:approve
	// authz.rego:49 roles = [staff]
	// authz.rego:55 reasons = [no role grants orders:approve]
	// authz.rego:57 denials = no role grants orders:approve
	// authz.rego:71 has_roles_claim = true
}

// BenchmarkExplain measures explaining the decision BenchmarkDecide makes,
// against the active set and against the same files as a draft (compiled
// and tested on every call).
//
//	go test -run XXX -bench Explain -benchmem ./decision/
func BenchmarkExplain(b *testing.B) {
	in := decision.Input{Claims: token("alice", []any{"manager"}), Action: "orders:approve", Resource: order}
	for _, bc := range []struct {
		name  string
		draft fs.FS
	}{{"active", nil}, {"draft", policies.FS()}} {
		b.Run(bc.name, func(b *testing.B) {
			e := shippedEngine(b, decision.Options{})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if ex, err := e.Explain(ctx, in, bc.draft); err != nil || !ex.Decision.Allow {
					b.Fatalf("Explain = %+v, %v; want allow", ex, err)
				}
			}
		})
	}
}
