package decision

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Explanation is a decision together with why it came out as it did: what
// POST /v1/explain returns. Its JSON form is the API's.
type Explanation struct {
	// Decision is the decision, made as Decide makes it; against a draft,
	// it carries the draft's revision.
	Decision Decision `json:"decision"`

	// Revoked is the revocation ledger's reason when it decided: the
	// policy was then not evaluated, and Rules and Trace are empty.
	Revoked Reason `json:"revoked,omitempty"`

	// Input is the policy input exactly as the policy saw it (or would
	// have, for a revoked token), as JSON values; it can be pasted into a
	// Rego test as `with input as`. Nil when the input could not be built.
	Input map[string]any `json:"input,omitempty"`

	// Rules are the rules of the entrypoint's package that produced a value
	// during the evaluation, each value once, sorted by file and row; at
	// most MaxExplainRuleValues values of each. A rule that was evaluated
	// but produced nothing, a rule the decision did not need (and so was
	// not evaluated), and the rules of other packages the policy uses are
	// not listed; the trace shows the first and the last.
	Rules []RuleResult `json:"rules"`
	// RulesTruncated says that a rule produced more values than Rules
	// holds; the first ones it produced are kept.
	RulesTruncated bool `json:"rules_truncated,omitempty"`

	// Trace is OPA's evaluation trace, one event per line, as `opa eval
	// --explain=full --var-values` prints it (Unify events left out): the
	// location, the event, and the values of the expression's variables.
	// It holds the first MaxExplainTraceLines events, and when there were
	// more, a last line saying how many.
	Trace []string `json:"trace,omitempty"`
	// TraceTruncated says that the evaluation had more events than Trace
	// holds.
	TraceTruncated bool `json:"trace_truncated,omitempty"`

	// Error says why the policy could not decide when the decision's
	// reason is policy_error or policy_timeout: a conflict, a malformed
	// decision document, the timeout. Decide only logs it.
	Error *Problem `json:"error,omitempty"`

	// Tests is the report of a draft set's tests; nil for the active set.
	// A draft is explained whether or not its tests pass.
	Tests *TestReport `json:"tests,omitempty"`
}

// RuleResult is one value a rule produced during an evaluation.
type RuleResult struct {
	// Rule is the rule's name within its package with any variables of
	// its head filled in, e.g. "allow", "grants" or "limits.orders".
	Rule string `json:"rule"`
	File string `json:"file"`
	Row  int    `json:"row"`
	Col  int    `json:"col"`
	// Default is set when the value came from the rule's default, because
	// no other definition of it applied.
	Default bool `json:"default,omitempty"`
	// Args are a function's arguments; nil for other rules.
	Args []any `json:"args,omitempty"`
	// Value is what the rule produced, as a JSON value: a complete rule's
	// value, the element a `contains` rule added to its set, a function's
	// result. Sets become arrays and object keys strings, as in OPA's own
	// JSON; a value with no JSON form is given as its Rego text.
	Value any `json:"value"`
}

// MaxExplainTraceLines bounds an Explanation's trace. The shipped policies
// trace a few hundred events per decision; a policy that iterates over
// large data can trace millions, and the trace travels over HTTP.
const MaxExplainTraceLines = 2000

// MaxExplainRuleValues bounds the values an Explanation lists for one rule
// (one definition of it), for the same reason: a `contains` rule over large
// data produces a value per element. The bound is per rule so that the
// rules that decide, which produce their values last, are always listed.
const MaxExplainRuleValues = 100

// Explain makes the decision Decide would make for in, and says why: the
// policy input, the rules that produced a value, and OPA's evaluation trace.
// As in Decide, the token's revocation state is checked first, and an
// error, an undefined or malformed decision document and a timeout
// (Options.EvalTimeout) deny with policy_error or policy_timeout; the cause
// is in the Explanation's Error rather than an error return.
//
// With draft nil the active set decides. Otherwise the policy set in draft
// decides instead: it is loaded and compiled with the engine's settings, as
// Check would, but a draft whose tests fail is explained all the same (an
// author wants to see why a test fails) and its test report is returned
// alongside. The draft is not activated, and the active set, its revision
// and its decisions are unaffected.
//
// Explain neither reads nor fills the decision cache: it always evaluates
// the policy, with tracing, which makes it several times slower than an
// uncached Decide. A tracing evaluation can time out where Decide's would
// not.
//
// The error is a *PolicyError when the draft does not load or compile (with
// every problem's position), and otherwise only when the draft cannot be
// read or its tests cannot run (a cancelled ctx).
func (e *Engine) Explain(ctx context.Context, in Input, draft fs.FS) (*Explanation, error) {
	var (
		revision string
		query    rego.PreparedEvalQuery
		tests    *TestReport
		offload  bool // as eval decides it for the set
	)
	if draft == nil {
		set := e.set.Load()
		revision, query, offload = set.revision, set.authz, set.offload
	} else {
		ls, compiler, err := e.checker.compileSet(ctx, draft)
		if err != nil {
			return nil, err
		}
		if tests, err = e.checker.test(ctx, ls); err != nil {
			return nil, fmt.Errorf("test the draft policy set: %w", err)
		}
		if query, err = prepare(ctx, compiler, ls.store, decisionQuery(e.checker.entry)); err != nil {
			return nil, fmt.Errorf("prepare the draft's decision query at %v: %w", e.checker.entry, err)
		}
		revision, offload = ls.revision, calls(compiler, waitsOnNetwork)
	}

	ex := &Explanation{Decision: Decision{Revision: revision}, Rules: []RuleResult{}, Tests: tests}
	if in.Claims == nil {
		ex.Decision.Reason = ReasonPolicyError
		ex.Error = &Problem{Message: errNoClaims.Error()}
		return ex, nil
	}
	// In Decide's order: the ledger first, then the input, then the policy.
	reason, revoked := e.revoked(in.Claims)
	input, inputErr := buildInput(&in, nil)
	if inputErr == nil {
		ex.Input = inputJSON(input)
	}
	switch {
	case revoked:
		ex.Decision.Reason = reason
		ex.Decision.Refresh = reason == ReasonTokenStale
		ex.Revoked = reason
		return ex, nil
	case inputErr != nil:
		ex.Decision.Reason = ReasonPolicyError
		ex.Error = &Problem{Message: "policy input: " + inputErr.Error()}
		return ex, nil
	}

	tr := &explainTracer{pkg: e.checker.entry, seen: map[ruleValue]bool{}, values: map[*ast.Rule]int{}}
	r, err := e.eval(ctx, query, input, tr, offload)
	if err == nil {
		var v verdict
		if v, err = readDecision(r); err == nil {
			ex.Decision = v.apply(ex.Decision)
		}
	}
	if err != nil {
		ex.Decision.Reason = failureReason(err)
		ex.Error = evalProblem(err)
	}
	if errors.Is(err, errAbandoned) {
		// The evaluation may still be writing to the tracer.
		return ex, nil
	}
	ex.Rules = append(ex.Rules, tr.sortedRules()...)
	ex.RulesTruncated = tr.rulesTruncated
	ex.Trace, ex.TraceTruncated = tr.trace()
	return ex, nil
}

// evalProblem describes an evaluation failure for an Explanation. OPA's own
// errors (a conflict, a built-in error) are located where evaluation
// stopped; a timeout is said as one, not as OPA's cancellation.
func evalProblem(err error) *Problem {
	var te *topdown.Error
	if failureReason(err) == ReasonPolicyError && errors.As(err, &te) {
		return errorProblem(err)
	}
	return &Problem{Message: err.Error()}
}

// explainTracer records one evaluation for Explain. It keeps the first
// MaxExplainTraceLines events for the printed trace and counts the rest, and
// it takes the rules' values from every event as it happens, because the
// value of a rule's head can only be read while its bindings are live.
type explainTracer struct {
	pkg            ast.Ref // the package whose rules are reported
	events         []*topdown.Event
	dropped        int // events past MaxExplainTraceLines
	rules          []RuleResult
	rulesTruncated bool
	seen           map[ruleValue]bool
	values         map[*ast.Rule]int // values listed per rule
}

var _ topdown.QueryTracer = (*explainTracer)(nil)

// ruleValue identifies one value of one rule, to report it once however
// often it is produced.
type ruleValue struct {
	rule              *ast.Rule
	name, args, value string
}

// Enabled reports that the tracer wants events.
func (*explainTracer) Enabled() bool { return true }

// Config asks OPA for the variables' values in each event, which the
// printed trace shows under their names in the policy (OPA renames them).
func (*explainTracer) Config() topdown.TraceConfig {
	return topdown.TraceConfig{PlugLocalVars: true}
}

// TraceEvent records evt. A rule's Exit event is the rule producing a value:
// its body succeeded with the bindings the event carries. Unify events are
// left out of the trace, as `opa eval --explain=full` leaves them out: they
// repeat the expression evaluated just before.
func (t *explainTracer) TraceEvent(evt topdown.Event) {
	if rule, ok := evt.Node.(*ast.Rule); ok && evt.Op == topdown.ExitOp {
		t.exited(&evt, rule)
	}
	if evt.Op == topdown.UnifyOp {
		return
	}
	if len(t.events) < MaxExplainTraceLines {
		t.events = append(t.events, &evt)
	} else {
		t.dropped++
	}
}

// exited records the value a rule of the reported package produced.
func (t *explainTracer) exited(evt *topdown.Event, rule *ast.Rule) {
	if rule.Module == nil || !rule.Module.Package.Path.Equal(t.pkg) {
		return
	}
	head := rule.Head
	name := evt.Plug(ast.NewTerm(head.Ref()))
	var args []*ast.Term
	for _, a := range head.Args {
		args = append(args, evt.Plug(a))
	}
	value := head.Value
	if head.RuleKind() == ast.MultiValue {
		value = head.Key // the element added to the set
	}
	if value != nil {
		value = evt.Plug(value)
	}

	key := ruleValue{rule: rule, name: name.String()}
	if args != nil {
		key.args = ast.NewArray(args...).String()
	}
	if value != nil {
		key.value = value.String()
	}
	if t.seen[key] {
		return
	}
	if t.values[rule] == MaxExplainRuleValues {
		t.rulesTruncated = true
		return
	}
	t.seen[key] = true
	t.values[rule]++

	r := RuleResult{Rule: key.name, Default: rule.Default}
	if loc := rule.Location; loc != nil {
		r.File, r.Row, r.Col = loc.File, loc.Row, loc.Col
	}
	for _, a := range args {
		r.Args = append(r.Args, jsonValue(a))
	}
	if value != nil {
		r.Value = jsonValue(value)
	}
	t.rules = append(t.rules, r)
}

// inputJSON converts the policy input to JSON values. It cannot fail: the
// input was built from JSON values.
func inputJSON(input ast.Value) map[string]any {
	v, err := ast.JSON(input)
	if err != nil {
		return nil
	}
	m, _ := v.(map[string]any)
	return m
}

// jsonValue converts a term to a JSON value, or to its Rego text when it
// has no JSON form.
func jsonValue(t *ast.Term) any {
	if v, err := ast.JSON(t.Value); err == nil {
		return v
	}
	return t.String()
}

// sortedRules returns the rules in file order. Within a rule, values keep
// the order the evaluation produced them in.
func (t *explainTracer) sortedRules() []RuleResult {
	slices.SortStableFunc(t.rules, func(a, b RuleResult) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Row, b.Row), cmp.Compare(a.Col, b.Col))
	})
	return t.rules
}

// trace prints the recorded events, saying how many were left out.
//
// OPA prints a trace as a table whose columns are padded to their widest
// cell, so one long expression (the decision query is one) would pad the
// variables of every line far to the right. The trace is printed twice,
// without and with the variables, and each line's variables are moved next
// to its event; a line where the two printings do not line up keeps OPA's
// padding.
func (t *explainTracer) trace() (lines []string, truncated bool) {
	if len(t.events) == 0 {
		return nil, false
	}
	var b bytes.Buffer
	topdown.PrettyTraceWithLocation(&b, t.events)
	lines = splitLines(b.String())
	b.Reset()
	topdown.PrettyTraceWithOpts(&b, t.events, topdown.PrettyTraceOptions{Locations: true, ExprVariables: true})
	if withVars := splitLines(b.String()); len(withVars) == len(lines) {
		for i, line := range lines {
			rest, ok := strings.CutPrefix(withVars[i], line)
			if !ok {
				lines[i] = withVars[i]
				continue
			}
			if vars := strings.TrimLeft(rest, " "); vars != "{}" {
				lines[i] = line + "    " + vars
			}
		}
	}

	dropped := t.dropped
	if n := len(lines); n > MaxExplainTraceLines { // an event printed on several lines
		dropped += n - MaxExplainTraceLines
		lines = lines[:MaxExplainTraceLines]
	}
	if dropped > 0 {
		lines = append(lines, fmt.Sprintf("... %d more not shown", dropped))
	}
	return lines, dropped > 0
}
