package decision

import (
	"errors"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"golang.org/x/net/http/httpguts"
)

// Keys of the decision document (DESIGN §3).
var (
	keyAllow   = ast.InternedTerm("allow")
	keyReasons = ast.InternedTerm("reasons")
	// keyHeaders is shared with the input's request.headers.
)

// errUndefined is an undefined decision: the query produced no result.
var errUndefined = errors.New("decision is undefined")

// resultTerm returns the value of the query's only expression. The engine
// evaluates with rawTerm, so results stay OPA terms and are never converted
// to Go values and back.
func resultTerm(rs rego.ResultSet) (*ast.Term, error) {
	switch {
	case len(rs) == 0:
		return nil, errUndefined
	case len(rs) > 1:
		return nil, fmt.Errorf("query produced %d results, want 1", len(rs))
	case len(rs[0].Expressions) != 1:
		return nil, fmt.Errorf("query produced %d expressions, want 1", len(rs[0].Expressions))
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("query result is %T, want *ast.Term", rs[0].Expressions[0].Value)
	}
	return t, nil
}

// rawTerm is passed to rego.EvalGenerateJSON to keep results as terms.
func rawTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

// verdict is what a decision document says, once its shape is checked.
type verdict struct {
	allow   bool
	reasons []string
	headers map[string]string
}

// readDecision checks the shape of a decision document and extracts it.
// Anything other than the documented shape is an error, which denies: allow
// must be a boolean, reasons a set or array of strings, headers an object of
// valid HTTP header names to valid values.
func readDecision(doc *ast.Term) (verdict, error) {
	var v verdict
	obj, ok := doc.Value.(ast.Object)
	if !ok {
		return v, fmt.Errorf("decision is %s, want an object", ast.ValueName(doc.Value))
	}

	allow := obj.Get(keyAllow)
	if allow == nil {
		return v, errors.New("allow is undefined")
	}
	b, ok := allow.Value.(ast.Boolean)
	if !ok {
		return v, fmt.Errorf("allow is %s %v, want a boolean", ast.ValueName(allow.Value), allow)
	}
	v.allow = bool(b)

	var err error
	if t := obj.Get(keyReasons); t != nil {
		if v.reasons, err = readReasons(t); err != nil {
			return verdict{}, err
		}
	}
	if t := obj.Get(keyHeaders); t != nil {
		if v.headers, err = readHeaders(t); err != nil {
			return verdict{}, err
		}
	}
	return v, nil
}

// readReasons accepts a set or an array of strings and returns them sorted,
// so that the same decision always reads the same.
func readReasons(t *ast.Term) ([]string, error) {
	var out []string
	add := func(e *ast.Term) error {
		s, ok := e.Value.(ast.String)
		if !ok {
			return fmt.Errorf("reasons holds %s %v, want strings", ast.ValueName(e.Value), e)
		}
		out = append(out, string(s))
		return nil
	}
	var err error
	switch x := t.Value.(type) {
	case ast.Set:
		out = make([]string, 0, x.Len())
		err = x.Iter(add)
	case *ast.Array:
		out = make([]string, 0, x.Len())
		err = x.Iter(add)
	default:
		return nil, fmt.Errorf("reasons is %s, want a set or array of strings", ast.ValueName(t.Value))
	}
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.Sort(out)
	return out, nil
}

// readHeaders accepts an object of strings. Names and values are checked as
// HTTP would, because a proxy copies them into the upstream request: a
// policy bug must not become header injection.
func readHeaders(t *ast.Term) (map[string]string, error) {
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("headers is %s, want an object of strings", ast.ValueName(t.Value))
	}
	out := make(map[string]string, obj.Len())
	err := obj.Iter(func(k, v *ast.Term) error {
		name, ok := k.Value.(ast.String)
		if !ok || !httpguts.ValidHeaderFieldName(string(name)) {
			return fmt.Errorf("headers has key %v, want an HTTP header name", k)
		}
		value, ok := v.Value.(ast.String)
		if !ok || !httpguts.ValidHeaderFieldValue(string(value)) {
			return fmt.Errorf("headers[%v] is %v, want an HTTP header value", k, v)
		}
		out[string(name)] = string(value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
