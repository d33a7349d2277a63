package decision

import (
	"errors"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"golang.org/x/net/http/httpguts"
)

// The parts of the decision document (DESIGN §3), in query order.
var (
	keyAllow   = ast.InternedTerm("allow")
	keyReasons = ast.InternedTerm("reasons")
	// keyHeaders is shared with the input's request.headers.

	decisionKeys = []*ast.Term{keyAllow, keyReasons, keyHeaders}
)

// errUndefined is an undefined result: the query produced nothing.
var errUndefined = errors.New("result is undefined")

// rawTerm is passed to rego.EvalGenerateJSON so that results stay OPA terms
// and are never converted to Go values, which readDecision would only have
// to check again.
func rawTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

// onlyResult returns the single result of a query.
func onlyResult(rs rego.ResultSet) (rego.Result, error) {
	switch len(rs) {
	case 0:
		return rego.Result{}, errUndefined
	case 1:
		return rs[0], nil
	default:
		return rego.Result{}, fmt.Errorf("query produced %d results, want 1", len(rs))
	}
}

// verdict is what a decision document says, once its shape is checked.
type verdict struct {
	allow   bool
	reasons []string
	headers map[string]string
	// partial marks a decision cache entry that holds only allow, for a
	// key's first step (memo.find).
	partial bool
}

// apply fills d with the verdict. Reasons and headers are shared with the
// decision cache, so Decision documents them as read-only.
func (v verdict) apply(d Decision) Decision {
	d.Allow = v.allow
	d.Reasons = v.reasons
	if v.allow {
		d.Reason = ReasonAllowed
		d.Headers = v.headers
	} else {
		d.Reason = ReasonPolicyDenied
	}
	return d
}

// readDecision checks the shape of the decision document that decisionQuery
// returned and extracts it. Anything but the documented shape is an error,
// which denies: allow must be a boolean, reasons a set or array of strings,
// headers an object of valid HTTP header names to valid values.
func readDecision(r rego.Result) (verdict, error) {
	var v verdict
	allow, err := part(r, keyAllow)
	if err != nil {
		return v, err
	}
	if allow == nil {
		return v, errors.New("allow is undefined")
	}
	b, ok := allow.Value.(ast.Boolean)
	if !ok {
		return v, fmt.Errorf("allow is %s %v, want a boolean", ast.ValueName(allow.Value), allow)
	}
	v.allow = bool(b)

	if t, err := part(r, keyReasons); err != nil {
		return verdict{}, err
	} else if t != nil {
		if v.reasons, err = readReasons(t); err != nil {
			return verdict{}, err
		}
	}
	if t, err := part(r, keyHeaders); err != nil {
		return verdict{}, err
	} else if t != nil {
		if v.headers, err = readHeaders(t); err != nil {
			return verdict{}, err
		}
	}
	return v, nil
}

// part returns one part of the decision document, or nil when the policy
// leaves it undefined. decisionQuery binds each part to an array holding
// its value, or nothing.
func part(r rego.Result, key *ast.Term) (*ast.Term, error) {
	name := string(key.Value.(ast.String))
	t, ok := r.Bindings[name].(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("query result has no %s binding", name)
	}
	arr, ok := t.Value.(*ast.Array)
	if !ok || arr.Len() > 1 {
		return nil, fmt.Errorf("query bound %s to %v, want an array of at most one value", name, t)
	}
	if arr.Len() == 0 {
		return nil, nil
	}
	return arr.Elem(0), nil
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
