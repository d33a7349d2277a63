package decision

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/wardenauthz/warden/claims"
)

// A keyPlan says what of input.resource and input.context a set's decision
// depends on, so that the decision cache keys on that and not on the whole
// of them. Real traffic names a new resource on nearly every request (an
// order id out of millions), while a typical policy reads only the
// resource's owner, and only to compare it with the subject: keyed on the
// whole resource, such requests never hit; keyed on whether the owner is the
// subject, a user's requests share a handful of entries.
//
// The plan is derived, once per set, from OPA's partial evaluation of the
// decision with the whole input unknown. The residual policy is equivalent
// to the set for every input on which the set does not fail, and every
// place it reads the input is explicit in it (rules, functions and data
// are evaluated away). Only a set that cannot fail with a conflict
// (conflictFree) gets a plan: partial evaluation drops the definitions of
// a rule that cannot give the value asked for, and turns those of a
// function into ordinary bodies, while the evaluation still runs them all
// and fails when two give different values, on inputs the residual may
// not even read. The other failures do not depend on the input's values
// in a way the key misses: decisions evaluate with OPA's default, under
// which a built-in's error makes its expression undefined. So:
//
//   - a sub-document of input.resource or input.context that the residual
//     compares, as a whole expression of a rule body, with a constant or
//     another part of the input (either possibly read through object.get
//     with a constant key and default), tests with one of the pure built-ins of
//     atomBuiltins (startswith, in, regex.match, ...), or is itself the
//     expression (input.resource.public), matters only through the
//     expression's outcome. For =, == and != that is equal, different, or
//     an operand undefined; for <, <=, > and >= it is less, equal, greater
//     (in the order of values OPA compares by) or undefined; for a
//     built-in it is true, false or undefined, as OPA's own implementation
//     of the built-in answers; for the value itself, passing (defined and
//     not false), false or undefined. Those outcomes are an atom of the
//     key;
//   - any other sub-document it reads is a value of the key, its JSON in
//     full: passed to a function or built-in, used in a rule's value,
//     iterated, compared with a variable, tested for being defined;
//   - a key computed at evaluation (input.resource[k]) makes the document
//     above it a value;
//   - a value read only in residual bodies that each fail for this input is
//     not read at all: a body fails when one of its own top-level
//     expressions does, and such an expression that is an atom, or a test
//     of the same shape on the token, subject, action or a proxied
//     request's method, path or host (a guard), fails on an outcome the
//     key holds anyway. A policy that quotes the order's id only in the
//     reason it gives an owner then keys on the id only for owners;
//   - likewise an atom that is a top-level expression of residual bodies
//     only, each of which fails on a guard for this input, is not keyed:
//     the shipped owner rule tests the owner for reads only, so a user's
//     approvals share one entry whoever owns the order. Only guards decide
//     this, never other atoms, so no two atoms can each excuse the other;
//   - a value read only in bodies that succeed on one answer alone (late:
//     the body tests the decision's allow, follows else after a body that
//     is only that test, or its rule is reached only from such bodies, as reasons := denials if not allow reaches denials) is
//     keyed in a second step, once the first has given the answer
//     (memo.find). No body that decides allow reads it, so every input with
//     the same first step has the same answer. A policy that quotes the
//     order's id in its denials then shares one entry for a user's allowed
//     requests and keys the id for the denied ones.
//
// Partial evaluation leaves some rules as they are (a rule with else, for
// one), and the residual then refers to the set's own rule; the plan reads
// those rules, and the rules they refer to, as it reads the residual's
// (setRules). Before it did, a decision object built with else was keyed on
// nothing it read and a cached answer stood in for another owner's.
//
// Two inputs with the same token, action, request, AuthZEN entities and
// the same values and atom outcomes make the residual evaluate the same
// way, so the set decides them the same way. A residual that reads the
// input as a whole or rebinds it (with), a partial evaluation that fails,
// runs out of time or grows past maxResidual, all leave the set without a
// plan: its key holds the whole resource and context, as it always may.
type keyPlan struct {
	values []keyValue
	// atoms are the key's atoms (request) and the guards, which only
	// decide whether a value is read: their outcome follows from the
	// token, subject and action, which the key holds anyway.
	atoms []atom
}

// keyValue is a sub-document keyed in full, such as ["resource", "id"]:
// always, or only for inputs on which one of the bodies reading it may
// succeed.
type keyValue struct {
	path []string
	uses
	// late says that every body reading it tests the decision's own allow:
	// whether it is read follows from the answer, so it is keyed in a
	// second step, once the first has given allow (memo.find).
	late bool
}

// uses says for which inputs a value or an atom's outcome matters: always,
// or when all the conditions of one of the bodies that read it hold.
type uses struct {
	always bool
	when   [][]cond // each a body's conditions
}

// cond is a top-level expression of a residual body that is an atom or a
// guard: the body fails on every input on which it fails. A late cond
// (atom lateAllow) is the body's test of the decision's own allow, or the
// test of a body through which the body's rule is reached (gates).
type cond struct {
	atom    int    // in keyPlan.atoms, or lateAllow
	op      string // the expression's operator: =, ==, !=, <, ... or the built-in
	negated bool
}

// lateAllow is the atom of a late cond.
const lateAllow = -1

// atom is a test of operands: a comparison by equality (op "equal": =, ==,
// !=) or by order (op "order": <, <=, >, >=), or a call of the built-in op.
// request says that an operand is below input.resource or input.context:
// its outcome is part of the key. The others are guards.
type atom struct {
	op      string
	ops     []operand
	fn      topdown.BuiltinFunc // op's implementation, for a built-in
	request bool
	// uses, for a request atom: the guards of the bodies it is a test of.
	// Its outcome is keyed only where one of those bodies may succeed.
	uses
}

// atomBuiltins are the built-ins whose calls can be atoms: deterministic,
// free of side effects and of the evaluation's state, answering from their
// operands alone.
var atomBuiltins = map[string]bool{
	ast.StartsWith.Name: true, ast.EndsWith.Name: true, ast.Contains.Name: true,
	ast.Member.Name: true, ast.RegexMatch.Name: true,
	ast.AnyPrefixMatch.Name: true, ast.AnySuffixMatch.Name: true,
	ast.IsString.Name: true, ast.IsNumber.Name: true, ast.IsBoolean.Name: true,
	ast.IsArray.Name: true, ast.IsObject.Name: true, ast.IsSet.Name: true, ast.IsNull.Name: true,
}

// operand is a path into the input or a scalar constant. With orElse, it
// is object.get(input.<path but its last key>, <last key>, orElse).
type operand struct {
	path     []string // ["resource", "owner"], ["subject"], ["token", "claims", "sub"]
	constant *ast.Term
	orElse   *ast.Term
}

const (
	// planTimeout bounds the partial evaluation of a set at activation.
	planTimeout = 2 * time.Second
	// maxResidual bounds the expressions of a residual worth analysing.
	maxResidual = 20000
)

// planKey partially evaluates each part of the decision at entry with the
// input unknown and derives the set's keyPlan; nil when there is none. A set
// that may fail with a conflict has none (conflictFree).
func planKey(ctx context.Context, compiler *ast.Compiler, store storage.Store, entry ast.Ref) *keyPlan {
	if !conflictFree(compiler) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, planTimeout)
	defer cancel()
	var residual []any // ast.Body and *ast.Module, to walk
	for _, key := range decisionKeys {
		query := ast.NewBody(ast.Equality.Expr(ast.VarTerm("x"), ast.NewTerm(entry.Append(key))))
		pq, err := rego.New(
			rego.ParsedQuery(query),
			rego.Compiler(compiler),
			rego.Store(store),
			rego.Unknowns([]string{"input"}),
		).Partial(ctx)
		if err != nil {
			return nil
		}
		for _, q := range pq.Queries {
			residual = append(residual, q)
		}
		for _, m := range pq.Support {
			residual = append(residual, m)
		}
	}
	// The residual's rules live below data.partial (rego.Partial's default
	// namespace): the decision's allow is data.partial.<entry>.allow there.
	partial := ast.Ref{ast.DefaultRootDocument, ast.InternedTerm("partial")}
	for _, r := range setRules(compiler, residual, partial) {
		residual = append(residual, r)
	}
	allow := []ast.Ref{append(slices.Clip(partial), entry[1:]...).Append(keyAllow), entry.Append(keyAllow)}
	return analyseResidual(residual, allow)
}

// setRules are the rules of the set itself that the residual refers to,
// outside its own support rules below partial, and the rules those refer
// to in turn. Partial evaluation leaves some rules as they are (one with
// else, for one); the plan must read what they read of the input too.
func setRules(c *ast.Compiler, residual []any, partial ast.Ref) []*ast.Rule {
	seen := map[*ast.Rule]bool{}
	var rules []*ast.Rule
	var visit func(x any)
	visit = func(x any) {
		ast.WalkTerms(x, func(t *ast.Term) bool {
			r, ok := t.Value.(ast.Ref)
			if !ok || !r.HasPrefix(ast.DefaultRootRef) || r.HasPrefix(partial) {
				return false
			}
			for _, rule := range c.GetRulesDynamicWithOpts(r, ast.RulesOptions{}) {
				if !seen[rule] {
					seen[rule] = true
					rules = append(rules, rule)
					visit(rule)
				}
			}
			return false
		})
	}
	for _, x := range residual {
		visit(x)
	}
	return rules
}

// analyseResidual derives the plan from the residual's bodies, modules and
// rules, in which allow are the paths of the decision's allow rule.
func analyseResidual(residual []any, allow []ast.Ref) *keyPlan {
	a := &analysis{plan: &keyPlan{}, allow: allow}
	var units []residualUnit
	for _, x := range residual {
		switch x := x.(type) {
		case ast.Body:
			units = append(units, newUnit(x, nil, nil))
		case *ast.Module:
			for _, r := range x.Rules {
				units = ruleUnits(units, r)
			}
		case *ast.Rule:
			units = ruleUnits(units, x)
		}
	}
	gate := a.gates(units)
	for _, u := range units {
		a.unit(u.body, u.head, gate(u))
	}
	if a.whole || a.exprs > maxResidual {
		return nil
	}
	a.plan.prune()
	for i := range a.plan.values {
		v := &a.plan.values[i]
		v.late = !v.always && !slices.ContainsFunc(v.when, func(body []cond) bool {
			return !slices.ContainsFunc(body, func(c cond) bool { return c.atom == lateAllow })
		})
	}
	return a.plan
}

// ruleUnits appends the units of r and its else chain.
func ruleUnits(units []residualUnit, r *ast.Rule) []residualUnit {
	path := r.Path()
	var before []ast.Body
	for ; r != nil; r = r.Else {
		u := newUnit(r.Body, r.Head, path)
		u.after = before
		units = append(units, u)
		before = append(slices.Clip(before), r.Body)
	}
	return units
}

// residualUnit is a body of the residual: a query's, or a definition's of
// the rule at rule, with its head.
type residualUnit struct {
	body ast.Body
	head *ast.Head
	rule ast.Ref   // nil for a query
	refs []ast.Ref // the ground prefixes of its references to data, in body and head
	// after are the bodies before it in its rule's else chain: it is
	// evaluated only when they all fail.
	after []ast.Body
}

func newUnit(body ast.Body, head *ast.Head, rule ast.Ref) residualUnit {
	u := residualUnit{body: body, head: head, rule: rule}
	collect := func(t *ast.Term) bool {
		if r, ok := t.Value.(ast.Ref); ok && r.HasPrefix(ast.DefaultRootRef) {
			u.refs = append(u.refs, r.GroundPrefix()) // data.partial.p[x] may be any rule of p
		}
		return false
	}
	ast.WalkTerms(body, collect)
	if head != nil {
		ast.WalkTerms(head, collect)
	}
	return u
}

// reaches says whether u refers to the rule at path, or to a document
// holding it.
func (u residualUnit) reaches(path ast.Ref) bool {
	return slices.ContainsFunc(u.refs, func(r ast.Ref) bool { return path.HasPrefix(r) || r.HasPrefix(path) })
}

// gates says, for each unit, whether it succeeds only when the decision
// allows (1) or only when it denies (-1), or either (0): its body tests
// allow itself, or every body that refers to its rule succeeds only on the
// same answer (reasons := denials if not allow makes every definition of
// denials a denial's). The allow rule's own definitions are never gated.
func (a *analysis) gates(units []residualUnit) func(residualUnit) int8 {
	byRule := map[string]int8{} // each rule's gate, once computed
	var ofUnit func(residualUnit) int8
	ofRule := func(path ast.Ref) int8 {
		key := path.String()
		if g, ok := byRule[key]; ok {
			return g
		}
		byRule[key] = 0 // while computing: Rego has no recursion, but do not loop
		if slices.ContainsFunc(a.allow, func(r ast.Ref) bool { return r.Equal(path) }) {
			return 0
		}
		g, seen := int8(0), false
		for _, u := range units {
			if !u.reaches(path) || u.rule.Equal(path) {
				continue
			}
			ug := ofUnit(u)
			if !seen {
				g, seen = ug, true
			} else if g != ug {
				g = 0
			}
			if g == 0 {
				break
			}
		}
		byRule[key] = g
		return g
	}
	ofUnit = func(u residualUnit) int8 {
		for _, e := range u.body {
			if g := a.allowTest(e); g != 0 {
				return g
			}
		}
		for _, b := range u.after { // an else after a body that is only a test of allow
			if len(b) == 1 {
				if g := a.allowTest(b[0]); g != 0 {
					return -g
				}
			}
		}
		if u.rule == nil {
			return 0
		}
		return ofRule(u.rule)
	}
	return ofUnit
}

// allowTest says whether e tests the decision's allow: 1 for allow, -1 for
// not allow, 0 when it is not such a test.
func (a *analysis) allowTest(e *ast.Expr) int8 {
	t, ok := e.Terms.(*ast.Term)
	if !ok || len(e.With) > 0 || !slices.ContainsFunc(a.allow, func(r ast.Ref) bool { return t.Value.Compare(r) == 0 }) {
		return 0
	}
	if e.Negated {
		return -1
	}
	return 1
}

// prune drops the guards that no keyed value or atom depends on, so that
// writeKey computes no outcome it does not use.
func (p *keyPlan) prune() {
	used := make([]bool, len(p.atoms))
	mark := func(u uses) {
		for _, body := range u.when {
			for _, c := range body {
				if c.atom != lateAllow {
					used[c.atom] = true
				}
			}
		}
	}
	for i, a := range p.atoms {
		if a.request {
			used[i] = true
			mark(a.uses)
		}
	}
	for _, v := range p.values {
		mark(v.uses)
	}
	index := make([]int, len(p.atoms))
	var kept []atom
	for i, a := range p.atoms {
		if used[i] {
			index[i] = len(kept)
			kept = append(kept, a)
		}
	}
	renumber := func(u *uses) { // bodies share their conditions' slices: copy, do not renumber twice
		when := make([][]cond, len(u.when))
		for i, body := range u.when {
			when[i] = make([]cond, len(body))
			for j, c := range body {
				if c.atom != lateAllow {
					c.atom = index[c.atom]
				}
				when[i][j] = c
			}
		}
		u.when = when
	}
	for i := range kept {
		renumber(&kept[i].uses)
	}
	for i := range p.values {
		renumber(&p.values[i].uses)
	}
	p.atoms = kept
}

// analysis is the state of analyseResidual.
type analysis struct {
	plan  *keyPlan
	allow []ast.Ref // the decision's allow: the residual's, the set's
	exprs int
	whole bool // the residual reads the input as a whole or rebinds it
}

// unit analyses one residual body, with the head of its rule (nil for a
// query): what the head reads is read only when the body succeeds, and
// only on the answer gate says (gates).
func (a *analysis) unit(body ast.Body, head *ast.Head, gate int8) {
	// The body's conditions: its top-level atoms and guards. A guard's
	// outcome follows from what the key holds whatever it writes, so the
	// guards alone decide whether the body's atoms are keyed.
	var conds, guards []cond
	for _, e := range body {
		if at, op, ok := atomOf(e); ok {
			c := cond{atom: a.atomIndex(at), op: op, negated: e.Negated}
			conds = append(conds, c)
			if !at.request {
				guards = append(guards, c)
			}
		}
	}
	var reads [][]string
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case *ast.Expr:
			a.exprs++
			if len(x.With) > 0 {
				a.whole = true // the input rebound
			}
			if at, _, ok := atomOf(x); ok {
				if at.request {
					u := &a.plan.atoms[a.atomIndex(at)].uses
					if slices.Contains(body, x) {
						u.add(guards)
					} else {
						u.add(nil) // nested: in a comprehension, a negation's body, ...
					}
				}
				return true // its operands count only through the outcome
			}
		case *ast.Term:
			switch v := x.Value.(type) {
			case ast.Var:
				if v.Equal(ast.InputRootDocument.Value) {
					a.whole = true // the input as a whole
				}
			case ast.Ref:
				if !v.HasPrefix(ast.InputRootRef) {
					return false
				}
				if path, _ := stringPath(v); len(path) == 0 {
					a.whole = true
				} else if requestPart(path[0]) && !slices.ContainsFunc(reads, func(q []string) bool { return slices.Equal(q, path) }) {
					reads = append(reads, path)
				}
				for _, k := range v[1:] { // a key computed from the input reads it too
					vis.Walk(k)
				}
				return true
			}
		}
		return false
	})
	vis.Walk(body)
	if head != nil {
		vis.Walk(head)
	}
	if gate != 0 {
		conds = append(slices.Clip(conds), cond{atom: lateAllow, negated: gate < 0})
	}
	for _, path := range reads {
		a.read(path, conds)
	}
}

// atomIndex is at's index in the plan's atoms, added if new.
func (a *analysis) atomIndex(at atom) int {
	if i := slices.IndexFunc(a.plan.atoms, at.equal); i >= 0 {
		return i
	}
	a.plan.atoms = append(a.plan.atoms, at)
	return len(a.plan.atoms) - 1
}

// read records that path is read in a body with conds (none: always).
func (a *analysis) read(path []string, conds []cond) {
	i := slices.IndexFunc(a.plan.values, func(v keyValue) bool { return slices.Equal(v.path, path) })
	if i < 0 {
		a.plan.values = append(a.plan.values, keyValue{path: path})
		i = len(a.plan.values) - 1
	}
	a.plan.values[i].add(conds)
}

// add records a body reading it with conds (none: always).
func (u *uses) add(conds []cond) {
	switch {
	case u.always:
	case len(conds) == 0:
		u.always, u.when = true, nil
	case !slices.ContainsFunc(u.when, func(w []cond) bool { return slices.Equal(w, conds) }):
		u.when = append(u.when, conds)
	}
}

// requestPart says whether the input document name is one the plan covers:
// input.resource and input.context. The token and subject are in the key
// by identity, the action as it is, the request and AuthZEN entities as
// unreadInput leaves them.
func requestPart(name string) bool { return name == "resource" || name == "context" }

// stringPath is the path of r below input up to its first key that is not a
// string, and whether that is all of r.
func stringPath(r ast.Ref) ([]string, bool) {
	path := make([]string, 0, len(r)-1)
	for _, k := range r[1:] {
		s, ok := k.Value.(ast.String)
		if !ok {
			return path, false
		}
		path = append(path, string(s))
	}
	return path, true
}

// atomOf recognises a test whose only use is its outcome: a whole body
// expression, possibly negated, that is =, ==, !=, <, <=, > or >= between
// two operands, or a call of one of atomBuiltins with no output operand,
// where each operand is below input.resource or input.context, another
// part of the input (token, subject, action), or a constant, and one is
// not a constant. As a body expression, false and undefined both fail it,
// so the outcome decides the evaluation. It also gives the test's operator,
// as cond.holds reads an outcome: the call's (=, ==, <, startswith, ...),
// or truthy.
func atomOf(e *ast.Expr) (atom, string, bool) {
	e = callForm(e)
	if t, ok := e.Terms.(*ast.Term); ok && len(e.With) == 0 { // a value as a test: defined and not false
		r, ok := t.Value.(ast.Ref)
		if !ok || !r.HasPrefix(ast.InputRootRef) {
			return atom{}, "", false
		}
		path, all := stringPath(r)
		if !all || len(path) == 0 || !inputPart(path) {
			return atom{}, "", false
		}
		return atom{op: truthy, ops: []operand{{path: path}}, request: requestPart(path[0])}, truthy, true
	}
	if !e.IsCall() || len(e.With) > 0 {
		return atom{}, "", false
	}
	var a atom
	switch name := e.Operator().String(); name {
	case ast.Equality.Name, ast.Equal.Name, ast.NotEqual.Name:
		a.op = "equal"
	case ast.LessThan.Name, ast.LessThanEq.Name, ast.GreaterThan.Name, ast.GreaterThanEq.Name:
		a.op = "order"
	default:
		b, ok := ast.BuiltinMap[name]
		if !atomBuiltins[name] || !ok || len(e.Operands()) != b.Decl.Arity() {
			return atom{}, "", false
		}
		if a.op, a.fn = name, topdown.GetBuiltin(name); a.fn == nil {
			return atom{}, "", false // outcome takes an atom without fn for a comparison
		}
	}
	if (a.op == "equal" || a.op == "order") && len(e.Operands()) != 2 {
		return atom{}, "", false
	}
	a.ops = make([]operand, len(e.Operands()))
	input := false
	for i, t := range e.Operands() {
		switch v := t.Value.(type) {
		case ast.Ref:
			if !v.HasPrefix(ast.InputRootRef) {
				return atom{}, "", false
			}
			path, all := stringPath(v)
			if !all || len(path) == 0 || !inputPart(path) {
				return atom{}, "", false
			}
			a.request = a.request || requestPart(path[0])
			input = true
			a.ops[i].path = path
		case ast.Call: // object.get(input.resource, "owner", ""), a common guard against a missing key
			o, ok := objectGetOperand(v)
			if !ok {
				return atom{}, "", false
			}
			a.request = a.request || requestPart(o.path[0])
			input = true
			a.ops[i] = o
		default:
			if !ast.IsConstant(v) {
				return atom{}, "", false
			}
			a.ops[i].constant = t
		}
	}
	if a.op == ast.RegexMatch.Name && a.ops[0].constant == nil {
		return atom{}, "", false // a pattern from the input is compiled at evaluation, under its deadline, not for the key
	}
	return a, e.Operator().String(), input
}

// objectGetOperand recognises object.get(input.<path>, <string>, <constant>) as
// an operand, for an object below the resource, the context or the token
// (operand.term looks up no other document whole).
func objectGetOperand(c ast.Call) (operand, bool) {
	if len(c) != 4 || c[0].Value.Compare(ast.ObjectGet.Ref()) != 0 {
		return operand{}, false
	}
	r, ok := c[1].Value.(ast.Ref)
	key, isString := c[2].Value.(ast.String)
	if !ok || !isString || !r.HasPrefix(ast.InputRootRef) || !ast.IsConstant(c[3].Value) {
		return operand{}, false
	}
	parent, all := stringPath(r)
	if !all || len(parent) == 0 || !slices.Contains([]string{"resource", "context", "token"}, parent[0]) {
		return operand{}, false
	}
	path := append(slices.Clip(parent), string(key))
	return operand{path: path, orElse: c[3]}, true
}

// callForm is e as a call expression when it is a call used as a value,
// which passes on the same outcomes: is_owner := input.resource.owner ==
// input.subject, inlined by partial evaluation as the body expression
// equal(input.resource.owner, input.subject).
// Partial evaluation also writes object.get(x, k, d) == c as
// object.get(x, k, d, c), which is given back as the comparison.
func callForm(e *ast.Expr) *ast.Expr {
	var x *ast.Expr
	switch terms := e.Terms.(type) {
	case *ast.Term:
		c, ok := terms.Value.(ast.Call)
		if !ok {
			return e
		}
		x = ast.NewExpr([]*ast.Term(c))
	case []*ast.Term:
		if len(terms) != 5 || terms[0].Value.Compare(ast.ObjectGet.Ref()) != 0 || !ast.IsConstant(terms[4].Value) {
			return e
		}
		x = ast.Equality.Expr(ast.CallTerm(terms[:4]...), terms[4])
	default:
		return e
	}
	x.Negated, x.With = e.Negated, e.With
	return x
}

// truthy is the op of an atom that is a value used as a test.
const truthy = "truthy"

// inputPart says whether path names something the key can look up: below
// the resource, the context or the token, the subject or action, or the
// method, path or host of a proxied request.
func inputPart(path []string) bool {
	switch path[0] {
	case "resource", "context":
		return len(path) > 1
	case "token":
		return true
	case "subject", "action":
		return len(path) == 1
	case "request":
		return len(path) == 2 && (path[1] == "method" || path[1] == "path" || path[1] == "host")
	}
	return false
}

func (a atom) equal(b atom) bool {
	return a.op == b.op && slices.EqualFunc(a.ops, b.ops, operand.equal)
}

// holds says whether the condition's expression succeeds on an input on
// which its atom has outcome.
func (c cond) holds(outcome byte) bool {
	var ok bool
	switch c.op {
	case ast.Equality.Name, ast.Equal.Name:
		ok = outcome == '='
	case ast.NotEqual.Name:
		ok = outcome == '!'
	case ast.LessThan.Name:
		ok = outcome == '<'
	case ast.LessThanEq.Name:
		ok = outcome == '<' || outcome == '='
	case ast.GreaterThan.Name:
		ok = outcome == '>'
	case ast.GreaterThanEq.Name:
		ok = outcome == '>' || outcome == '='
	default:
		ok = outcome == 't'
	}
	return ok != c.negated
}

// read says whether the input k keys may read it: whether all the
// conditions of one of its bodies hold.
func (u *uses) read(k *keying) bool {
	if u.always {
		return true
	}
	for _, body := range u.when {
		if k.hold(body) {
			return true
		}
	}
	return false
}

// keying is writeKey's state for one input: the outcomes of the plan's
// atoms, each computed when first asked for, and the subject and action as
// terms, made once.
type keying struct {
	in              *Input
	token           func(*claims.Claims) *ast.Term
	atoms           []atom
	outcomes        [16]byte // 0 until computed; past 16 atoms, in more
	more            []byte
	subject, action *ast.Term
	failed          bool // an outcome could not be computed
	// allow is the decision's answer in writeLate: 1 allows, -1 denies; 0
	// in writeKey, before it is known, where a late cond may hold.
	allow int8
}

// keying starts writing the key of in.
func (p *keyPlan) keying(in *Input, token func(*claims.Claims) *ast.Term) keying {
	k := keying{in: in, token: token, atoms: p.atoms}
	if n := len(p.atoms) - len(k.outcomes); n > 0 {
		k.more = make([]byte, n)
	}
	return k
}

// hold says whether all conds hold for the input.
func (k *keying) hold(conds []cond) bool {
	for _, c := range conds {
		switch {
		case c.atom != lateAllow:
			if !c.holds(k.outcome(c.atom)) {
				return false
			}
		case k.allow != 0:
			if (k.allow > 0) == c.negated {
				return false
			}
		}
	}
	return true
}

// outcome is atom i's outcome for the input.
func (k *keying) outcome(i int) byte {
	var slot *byte
	if i < len(k.outcomes) {
		slot = &k.outcomes[i]
	} else {
		slot = &k.more[i-len(k.outcomes)]
	}
	if *slot == 0 {
		o, ok := k.atoms[i].outcome(k)
		if !ok {
			k.failed, o = true, 'x'
		}
		*slot = o
	}
	return *slot
}

func (o operand) equal(p operand) bool {
	if o.constant != nil || p.constant != nil {
		return o.constant != nil && p.constant != nil && o.constant.Equal(p.constant)
	}
	if (o.orElse == nil) != (p.orElse == nil) || o.orElse != nil && !o.orElse.Equal(p.orElse) {
		return false
	}
	return slices.Equal(o.path, p.path)
}

// writeKey writes in's part of the key the plan asks for: each atom's
// outcome, then each value's JSON, or that this input does not read it.
// token gives input.token for claims (nil when they do not convert). It
// reports false when an outcome it needs or a value cannot be computed;
// the decision is then not cached.
func (p *keyPlan) writeKey(b *strings.Builder, in *Input, token func(*claims.Claims) *ast.Term) bool {
	k := p.keying(in, token)
	b.WriteByte(0)
	for i := range p.atoms {
		switch a := &p.atoms[i]; {
		case !a.request:
		case a.read(&k):
			b.WriteByte(k.outcome(i))
		default:
			b.WriteByte('-') // every body testing it fails on a guard
		}
	}
	for i := range p.values {
		if v := &p.values[i]; !v.late {
			k.writeValue(b, v)
		}
	}
	return !k.failed
}

// writeLate writes the second step of in's key, for an input on which the
// decision's answer is allow: the late values, or that this answer does
// not read them. It reports whether one is read; and false, as writeKey,
// when one cannot be computed.
func (p *keyPlan) writeLate(b *strings.Builder, in *Input, token func(*claims.Claims) *ast.Term, allow bool) (reads, ok bool) {
	k := p.keying(in, token)
	k.allow = -1
	if allow {
		k.allow = 1
	}
	for i := range p.values {
		if v := &p.values[i]; v.late {
			reads = k.writeValue(b, v) || reads
		}
	}
	return reads, !k.failed
}

// writeValue writes v's part of the key, and reports whether the input
// reads it.
func (k *keying) writeValue(b *strings.Builder, v *keyValue) bool {
	b.WriteByte(0)
	if !v.read(k) {
		b.WriteByte(2) // not read: every body reading it fails
		return false
	}
	x, found := lookup(k.in, v.path)
	if !found {
		b.WriteByte(1) // undefined; JSON never starts with 1
		return true
	}
	raw, err := json.Marshal(x)
	if err != nil {
		k.failed = true
		return true
	}
	b.Write(raw)
	return true
}

// late says whether the plan keys a value in a second step.
func (p *keyPlan) late() bool {
	return slices.ContainsFunc(p.values, func(v keyValue) bool { return v.late })
}

// outcome is the atom's outcome for in, one byte: 'u' when an operand or
// the built-in's result is undefined, else '=' or '!' for equality, '<',
// '=' or '>' for order, 't' or 'f' for a built-in (a result other than
// false passes a body expression, as true does). It reports false when an
// operand cannot be converted or the built-in fails; the decision is then
// not cached, and the evaluation meets the failure itself.
func (a *atom) outcome(k *keying) (byte, bool) {
	if a.fn == nil { // a comparison or a test: its operands stay on the stack
		var pair [2]*ast.Term
		switch defined, ok := a.operands(k, pair[:]); {
		case !ok:
			return 0, false
		case !defined:
			return 'u', true
		case a.op == truthy:
			if pair[0].Value.Compare(ast.Boolean(false)) == 0 {
				return 'f', true
			}
			return 't', true
		case a.op == "order": // as OPA's <, <=, > and >= compare
			return "<=>"[cmp.Compare(pair[0].Value.Compare(pair[1].Value), 0)+1], true
		case pair[0].Equal(pair[1]):
			return '=', true
		default:
			return '!', true
		}
	}
	terms := make([]*ast.Term, len(a.ops)) // the built-in may keep its operands
	switch defined, ok := a.operands(k, terms); {
	case !ok:
		return 0, false
	case !defined:
		return 'u', true
	}
	var result *ast.Term
	err := a.fn(topdown.BuiltinContext{Context: context.Background()}, terms, func(t *ast.Term) error {
		result = t
		return nil
	})
	switch {
	case err != nil:
		return 0, false
	case result == nil:
		return 'u', true
	case result.Value.Compare(ast.Boolean(false)) == 0:
		return 'f', true
	default:
		return 't', true
	}
}

// operands fills dst with the atom's operands for in, and reports whether
// all are defined, and false when one cannot be converted.
func (a *atom) operands(k *keying, dst []*ast.Term) (defined, ok bool) {
	defined = true
	for i, o := range a.ops {
		t, ok := o.term(k)
		if !ok {
			return false, false
		}
		defined = defined && t != nil
		dst[i] = t
	}
	return defined, true
}

// lookup finds the Go value at path in in.Resource or in.Context. Below a
// value that is not a JSON object, it answers that value: it holds the path,
// and keying on more of the input only makes the key finer.
func lookup(in *Input, path []string) (any, bool) {
	v, _, found := walk(in, path)
	return v, found
}

// walk follows path (["resource", ...] or ["context", ...]) through the
// decoded JSON objects of in: the value reached, the rest of the path below
// a value that is not a map[string]any, and whether the value is defined.
func walk(in *Input, path []string) (v any, rest []string, found bool) {
	v = in.Resource
	if path[0] == "context" {
		v = in.Context
	}
	for i, k := range path[1:] {
		m, ok := v.(map[string]any)
		if !ok {
			return v, path[1+i:], true
		}
		if v, ok = m[k]; !ok {
			return nil, nil, false
		}
	}
	return v, nil, true
}

// term is the operand's value for in as the policy sees it: nil when it
// is undefined, false when it cannot be converted.
func (o operand) term(k *keying) (*ast.Term, bool) {
	if o.constant != nil {
		return o.constant, true
	}
	if o.orElse != nil {
		return o.objectGet(k)
	}
	in := k.in
	switch o.path[0] {
	case "subject":
		if k.subject == nil {
			k.subject = stringTerm(in.subject())
		}
		return k.subject, true
	case "action":
		if k.action == nil {
			k.action = stringTerm(in.Action)
		}
		return k.action, true
	case "token":
		if in.Claims == nil {
			return nil, true // an asserted subject has no token
		}
		t := k.token(in.Claims)
		return find(t, o.path[1:]), t != nil
	case "request": // as requestTerm writes it
		if in.Request == nil {
			return nil, true
		}
		switch o.path[1] {
		case "method":
			return stringTerm(in.Request.Method), true
		case "path":
			return stringTerm(in.Request.Path), true
		}
		return stringTerm(in.Request.Host), true
	}
	v, rest, found := walk(in, o.path)
	if !found {
		return nil, true
	}
	t, err := valueTerm(v)
	if err != nil {
		return nil, false
	}
	if len(rest) > 0 { // not decoded JSON: look below its conversion
		t = find(t, rest)
	}
	return t, true
}

// objectGet answers object.get for the operand as OPA does: undefined when
// the object is; the key's value, or orElse where the object lacks it. On
// a value that is not an object, where object.get fails, it reports false:
// the decision is not cached and the evaluation meets the failure.
func (o operand) objectGet(k *keying) (*ast.Term, bool) {
	// Defined at the path, the value is below an object: object.get's
	// answer. Only a missing key looks at its parent, which the resource's
	// costs converting whole.
	if t, ok := (operand{path: o.path}).term(k); !ok || t != nil {
		return t, ok
	}
	t, ok := operand{path: o.path[:len(o.path)-1]}.term(k)
	if !ok || t == nil {
		return nil, ok
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return nil, false
	}
	if v := obj.Get(stringTerm(o.path[len(o.path)-1])); v != nil {
		return v, true
	}
	return o.orElse, true
}

// find is the term at path below t, nil when undefined.
func find(t *ast.Term, path []string) *ast.Term {
	for _, k := range path {
		obj, ok := t.Value.(ast.Object)
		if !ok {
			return nil
		}
		if t = obj.Get(stringTerm(k)); t == nil {
			return nil
		}
	}
	return t
}

// conflictFree says whether no evaluation of the set can fail with a
// conflict that depends on the input, which a keyPlan cannot see (see
// there). Among the rules that read the input, directly or through other
// rules, there must be no object comprehension, no rule with a variable in
// its head (p[k] := v), and no complete rule or function that can have two
// values. Several definitions of one (defaults aside) must have the same
// constant value, or exclude each other: one requires a test the other
// negates, a test without variables (the shipped action := input.action if
// not http.proxied and action := http.match.action if http.proxied). A
// definition with another value must bind it once: no some, no `in` on a
// variable, no variable among a reference's keys. Rules that read only the
// data give every input the same outcome. The check is conservative: a set
// it refuses gets no plan, and its decisions are cached on the whole input.
func conflictFree(c *ast.Compiler) bool {
	reads := inputReaders(c)
	defs := map[string][]*ast.Rule{}
	for _, m := range c.Modules {
		for _, r := range m.Rules {
			if !reads(r) {
				continue
			}
			objects := false
			ast.WalkTerms(r, func(t *ast.Term) bool {
				_, ok := t.Value.(*ast.ObjectComprehension)
				objects = objects || ok // the walk goes on past a true: keep what was found
				return objects
			})
			switch {
			case objects:
				return false // two values for one key conflict
			case r.Head.RuleKind() == ast.MultiValue:
				continue // a set: its elements cannot conflict
			case !r.Head.Ref().IsGround():
				return false // an object rule: two values for one key conflict
			case r.Default:
				continue
			}
			path := r.Ref().String()
			defs[path] = append(defs[path], r)
		}
	}
	for _, rules := range defs {
		if len(rules) > 1 && sameConstant(rules) {
			continue
		}
		for i, r := range rules {
			if len(rules) > 1 && r.Else != nil {
				return false
			}
			for b := r; b != nil; b = b.Else {
				if !ast.IsConstant(b.Head.Value.Value) && !bindsOnce(b.Body) {
					return false
				}
			}
			for _, o := range rules[i+1:] {
				if !excludes(r.Body, o.Body) {
					return false
				}
			}
		}
	}
	return true
}

// inputReaders returns whether a rule of c reads the input: itself, in one
// of its else branches, or through a rule or function it uses. Every
// function counts: its arguments may come from the input.
func inputReaders(c *ast.Compiler) func(*ast.Rule) bool {
	memo := map[*ast.Rule]bool{}
	var reads func(r *ast.Rule) bool
	reads = func(r *ast.Rule) bool {
		if v, ok := memo[r]; ok {
			return v
		}
		memo[r] = true                // a cycle (refused by the compiler) counts as reading
		found := len(r.Head.Args) > 0 // a function reads what it is given
		ast.WalkTerms(r, func(t *ast.Term) bool {
			switch v := t.Value.(type) {
			case ast.Ref:
				found = found || v.HasPrefix(ast.InputRootRef)
			case ast.Var:
				found = found || v.Equal(ast.InputRootDocument.Value)
			}
			return found
		})
		for b := r; b != nil && !found; b = b.Else {
			for d := range c.Graph.Dependencies(b) {
				if dr, ok := d.(*ast.Rule); !ok || reads(dr) {
					found = true
					break
				}
			}
		}
		memo[r] = found
		return found
	}
	return reads
}

// sameConstant says whether every definition, else branches included, has
// one constant value.
func sameConstant(rules []*ast.Rule) bool {
	first := rules[0].Head.Value
	for _, r := range rules {
		for b := r; b != nil; b = b.Else {
			if !ast.IsConstant(b.Head.Value.Value) || !b.Head.Value.Equal(first) {
				return false
			}
		}
	}
	return true
}

// excludes says whether the two bodies cannot both succeed: one has a
// top-level test that the other has negated, and the test reads only the
// input, the data and constants.
func excludes(a, b ast.Body) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Negated == y.Negated || len(x.With) > 0 || len(y.With) > 0 || !closed(x) {
				continue
			}
			xc, yc := x.Copy(), y.Copy()
			xc.Negated, yc.Negated, xc.Index, yc.Index = false, false, 0, 0
			if xc.Equal(yc) {
				return true
			}
		}
	}
	return false
}

// closed says whether e has no variables but the roots data and input.
func closed(e *ast.Expr) bool {
	for v := range e.Vars(ast.VarVisitorParams{SkipRefCallHead: true}) {
		if !v.Equal(ast.DefaultRootDocument.Value) && !v.Equal(ast.InputRootDocument.Value) {
			return false
		}
	}
	return true
}

// bindsOnce says whether body succeeds with one binding at most: it has no
// some declaration, no `in` on a variable, no call of a built-in that is a
// relation (walk, which gives many outputs) and no reference with a
// variable among its keys, outside comprehensions (which make one
// collection).
func bindsOnce(body ast.Body) bool {
	once := true
	vis := ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case *ast.ArrayComprehension, *ast.SetComprehension, *ast.ObjectComprehension, *ast.Every:
			return true
		case *ast.SomeDecl:
			once = false
		case *ast.Expr:
			if !x.IsCall() {
				break
			}
			switch op := x.Operator().String(); {
			case op == ast.Member.Name || op == ast.MemberWithKey.Name:
				for _, t := range x.Operands() {
					if _, ok := t.Value.(ast.Var); ok {
						once = false
					}
				}
			case ast.BuiltinMap[op] != nil && ast.BuiltinMap[op].Relation:
				once = false
			}
		case ast.Ref:
			for _, k := range x[1:] {
				if _, ok := k.Value.(ast.Var); ok {
					once = false
				}
			}
		}
		return !once
	})
	vis.Walk(body)
	return once
}
