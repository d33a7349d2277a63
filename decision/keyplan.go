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
// to the set for every input, and every place it reads the input is
// explicit in it (rules, functions and data are evaluated away), so:
//
//   - a sub-document of input.resource or input.context that the residual
//     compares, as a whole expression of a rule body, with a constant or
//     another part of the input, or tests with one of the pure built-ins
//     of atomBuiltins (startswith, in, regex.match, ...), matters only
//     through the expression's outcome. For =, == and != that is equal,
//     different, or an operand undefined; for <, <=, > and >= it is less,
//     equal, greater (in the order of values OPA compares by) or
//     undefined; for a built-in it is true, false or undefined, as OPA's
//     own implementation of the built-in answers. Those outcomes are an
//     atom of the key;
//   - any other sub-document it reads is a value of the key, its JSON in
//     full: passed to a function or built-in, used in a rule's value,
//     iterated, compared with a variable, tested for being defined;
//   - a key computed at evaluation (input.resource[k]) makes the document
//     above it a value.
//
// Two inputs with the same token, action, request, AuthZEN entities and
// the same values and atom outcomes make the residual evaluate the same
// way, so the set decides them the same way. A residual that reads the
// input as a whole or rebinds it (with), a partial evaluation that fails,
// runs out of time or grows past maxResidual, all leave the set without a
// plan: its key holds the whole resource and context, as it always may.
type keyPlan struct {
	values [][]string // paths such as ["resource", "owner"]
	atoms  []atom
}

// atom is a test of operands, at least one below input.resource or
// input.context: a comparison by equality (op "equal": =, ==, !=) or by
// order (op "order": <, <=, >, >=), or a call of the built-in op.
type atom struct {
	op  string
	ops []operand
	fn  topdown.BuiltinFunc // op's implementation, for a built-in
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

// operand is a path into the input or a scalar constant.
type operand struct {
	path     []string // ["resource", "owner"], ["subject"], ["token", "claims", "sub"]
	constant *ast.Term
}

const (
	// planTimeout bounds the partial evaluation of a set at activation.
	planTimeout = 2 * time.Second
	// maxResidual bounds the expressions of a residual worth analysing.
	maxResidual = 20000
)

// planKey partially evaluates each part of the decision at entry with the
// input unknown and derives the set's keyPlan; nil when there is none.
func planKey(ctx context.Context, compiler *ast.Compiler, store storage.Store, entry ast.Ref) *keyPlan {
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
	return analyseResidual(residual)
}

// analyseResidual derives the plan from the residual's bodies and modules.
func analyseResidual(residual []any) *keyPlan {
	p := &keyPlan{}
	exprs, whole := 0, false
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case *ast.Expr:
			exprs++
			if len(x.With) > 0 {
				whole = true // the input rebound
			}
			if a, ok := atomOf(x); ok {
				if !slices.ContainsFunc(p.atoms, a.equal) {
					p.atoms = append(p.atoms, a)
				}
				return true // its operands count only through the outcome
			}
		case *ast.Term:
			switch v := x.Value.(type) {
			case ast.Var:
				if v.Equal(ast.InputRootDocument.Value) {
					whole = true // the input as a whole
				}
			case ast.Ref:
				if !v.HasPrefix(ast.InputRootRef) {
					return false
				}
				if path, _ := stringPath(v); len(path) == 0 {
					whole = true
				} else if requestPart(path[0]) && !slices.ContainsFunc(p.values, func(q []string) bool { return slices.Equal(q, path) }) {
					p.values = append(p.values, path)
				}
				for _, k := range v[1:] { // a key computed from the input reads it too
					vis.Walk(k)
				}
				return true
			}
		}
		return false
	})
	for _, x := range residual {
		vis.Walk(x)
	}
	if whole || exprs > maxResidual {
		return nil
	}
	return p
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
// where one operand is below input.resource or input.context and each
// other is too, or is another part of the input (token, subject, action),
// or a constant. As a body expression, false and undefined both fail it,
// so the outcome decides the evaluation.
func atomOf(e *ast.Expr) (atom, bool) {
	if !e.IsCall() || len(e.With) > 0 {
		return atom{}, false
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
			return atom{}, false
		}
		if a.op, a.fn = name, topdown.GetBuiltin(name); a.fn == nil {
			return atom{}, false // outcome takes an atom without fn for a comparison
		}
	}
	if (a.op == "equal" || a.op == "order") && len(e.Operands()) != 2 {
		return atom{}, false
	}
	a.ops = make([]operand, len(e.Operands()))
	request := false
	for i, t := range e.Operands() {
		switch v := t.Value.(type) {
		case ast.Ref:
			if !v.HasPrefix(ast.InputRootRef) {
				return atom{}, false
			}
			path, all := stringPath(v)
			if !all || len(path) == 0 || !inputPart(path) {
				return atom{}, false
			}
			request = request || requestPart(path[0])
			a.ops[i].path = path
		default:
			if !ast.IsConstant(v) {
				return atom{}, false
			}
			a.ops[i].constant = t
		}
	}
	if a.op == ast.RegexMatch.Name && a.ops[0].constant == nil {
		return atom{}, false // a pattern from the input is compiled at evaluation, under its deadline, not for the key
	}
	return a, request
}

// inputPart says whether path names something the key can look up: below
// the resource, the context or the token, or the subject or action.
func inputPart(path []string) bool {
	switch path[0] {
	case "resource", "context":
		return len(path) > 1
	case "token":
		return true
	case "subject", "action":
		return len(path) == 1
	}
	return false
}

func (a atom) equal(b atom) bool {
	return a.op == b.op && slices.EqualFunc(a.ops, b.ops, operand.equal)
}

func (o operand) equal(p operand) bool {
	if o.constant != nil || p.constant != nil {
		return o.constant != nil && p.constant != nil && o.constant.Equal(p.constant)
	}
	return slices.Equal(o.path, p.path)
}

// writeKey writes in's part of the key the plan asks for: each value's
// JSON, then each atom's outcome. token gives input.token for claims (nil
// when they do not convert). It reports false when a value cannot be
// encoded; the decision is then not cached.
func (p *keyPlan) writeKey(b *strings.Builder, in *Input, token func(*claims.Claims) *ast.Term) bool {
	for _, path := range p.values {
		b.WriteByte(0)
		v, found := lookup(in, path)
		if !found {
			b.WriteByte(1) // undefined; JSON never starts with 1
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return false
		}
		b.Write(raw)
	}
	if len(p.atoms) == 0 {
		return true
	}
	b.WriteByte(0)
	for _, a := range p.atoms {
		outcome, ok := a.outcome(in, token)
		if !ok {
			return false
		}
		b.WriteByte(outcome)
	}
	return true
}

// outcome is the atom's outcome for in, one byte: 'u' when an operand or
// the built-in's result is undefined, else '=' or '!' for equality, '<',
// '=' or '>' for order, 't' or 'f' for a built-in (a result other than
// false passes a body expression, as true does). It reports false when an
// operand cannot be converted or the built-in fails; the decision is then
// not cached, and the evaluation meets the failure itself.
func (a atom) outcome(in *Input, token func(*claims.Claims) *ast.Term) (byte, bool) {
	if a.fn == nil { // a comparison: its two operands stay on the stack
		var pair [2]*ast.Term
		switch defined, ok := a.operands(in, token, pair[:]); {
		case !ok:
			return 0, false
		case !defined:
			return 'u', true
		case a.op == "order": // as OPA's <, <=, > and >= compare
			return "<=>"[cmp.Compare(pair[0].Value.Compare(pair[1].Value), 0)+1], true
		case pair[0].Equal(pair[1]):
			return '=', true
		default:
			return '!', true
		}
	}
	terms := make([]*ast.Term, len(a.ops)) // the built-in may keep its operands
	switch defined, ok := a.operands(in, token, terms); {
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
func (a atom) operands(in *Input, token func(*claims.Claims) *ast.Term, dst []*ast.Term) (defined, ok bool) {
	defined = true
	for i, o := range a.ops {
		t, ok := o.term(in, token)
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
func (o operand) term(in *Input, token func(*claims.Claims) *ast.Term) (*ast.Term, bool) {
	if o.constant != nil {
		return o.constant, true
	}
	switch o.path[0] {
	case "subject":
		return stringTerm(in.subject()), true
	case "action":
		return stringTerm(in.Action), true
	case "token":
		if in.Claims == nil {
			return nil, true // an asserted subject has no token
		}
		t := token(in.Claims)
		return find(t, o.path[1:]), t != nil
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
