package decision

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/wardenauthz/warden/claims"
)

// Query is a question about any document of the active set, as OPA's Data
// API asks it: the value of data.<Path> over Input.
type Query struct {
	// Path is the document's path below data as OPA's URLs spell it, with
	// each segment URL-escaped: "warden/authz/allow", "" for data itself.
	// A segment that is an integer indexes an array, as in OPA.
	Path string
	// Input is the decoded JSON input (json.Number numbers); HasInput
	// false evaluates without one, so that input is undefined.
	Input    any
	HasInput bool
	// Tokens are the verified claims of the tokens the input carries. Each
	// is checked against the revocation ledger before the policy runs.
	Tokens []*claims.Claims
	// StrictBuiltinErrors makes a built-in's error fail the evaluation
	// instead of leaving the expression undefined (OPA's
	// ?strict-builtin-errors).
	StrictBuiltinErrors bool
}

// QueryResult is the answer to a Query.
type QueryResult struct {
	// Value is the document as JSON (json.Number numbers, sets as arrays);
	// meaningful only when Defined.
	Value   any
	Defined bool
	// Refused is the revocation reason of a token of Query.Tokens, when
	// one is no longer honoured; the policy did not run and the result is
	// undefined.
	Refused Reason
	// Revision is the policy set that answered.
	Revision string
}

// Errors of Engine.Query that are the caller's: a path OPA refuses too,
// an input that is not JSON.
var (
	ErrBadPath  = errors.New("invalid data path")
	ErrBadInput = errors.New("invalid input")
)

// maxPreparedQueries bounds the prepared queries a set keeps: paths come
// from callers, and each prepared query holds a compiled plan. Past it a
// query is prepared, evaluated and forgotten.
const maxPreparedQueries = 512

// queryCache holds a set's prepared queries by path, as OPA's server keeps
// them, so that a path asked again is only evaluated.
type queryCache struct {
	mu sync.Mutex
	m  map[queryKey]rego.PreparedEvalQuery
}

type queryKey struct {
	path   string
	strict bool
}

// Query evaluates the document at q.Path of the active set, within the
// engine's evaluation timeout. An undefined document is a result with
// Defined false, not an error. A token of q.Tokens that the revocation
// ledger no longer honours makes the result undefined with Refused set,
// without evaluating: the policy may decode the token itself and would not
// know. Errors: ErrBadPath for a path OPA refuses; an evaluation error
// (a conflict, a strict built-in error, the timeout) otherwise, whose
// reason is FailureReason.
func (e *Engine) Query(ctx context.Context, q Query) (QueryResult, error) {
	set := e.set.Load()
	res := QueryResult{Revision: set.revision}
	ref, err := dataRef(q.Path)
	if err != nil {
		return res, err
	}
	for _, c := range q.Tokens {
		if reason, revoked := e.revoked(c); revoked {
			res.Refused = reason
			return res, nil
		}
	}
	var input ast.Value // nil: no input
	if q.HasInput {
		t, err := valueTerm(q.Input)
		if err != nil {
			return res, fmt.Errorf("%w: input: %w", ErrBadInput, err)
		}
		input = t.Value
	}
	pq, err := set.prepared(ctx, ref, q.StrictBuiltinErrors)
	if err != nil {
		return res, err
	}
	r, err := e.eval(ctx, pq, input, nil, set.offload)
	if errors.Is(err, errUndefined) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	t, ok := r.Expressions[0].Value.(*ast.Term)
	if !ok {
		return res, fmt.Errorf("query result is %T", r.Expressions[0].Value)
	}
	if res.Value, err = ast.JSON(t.Value); err != nil {
		return res, err
	}
	res.Defined = true
	return res, nil
}

// FailureReason is the reason code for an error of Engine.Query:
// policy_timeout or policy_error.
func FailureReason(err error) Reason { return failureReason(err) }

// prepared is the prepared query for ref, from the set's cache or made now.
func (s *policySet) prepared(ctx context.Context, ref ast.Ref, strict bool) (rego.PreparedEvalQuery, error) {
	key := queryKey{path: ref.String(), strict: strict}
	s.queries.mu.Lock()
	pq, ok := s.queries.m[key]
	s.queries.mu.Unlock()
	if ok {
		return pq, nil
	}
	pq, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))),
		rego.Compiler(s.compiler),
		rego.Store(s.store),
		rego.StrictBuiltinErrors(strict),
	).PrepareForEval(ctx)
	if err != nil {
		return pq, fmt.Errorf("prepare %v: %w", ref, err)
	}
	s.queries.mu.Lock()
	if s.queries.m == nil {
		s.queries.m = map[queryKey]rego.PreparedEvalQuery{}
	}
	if len(s.queries.m) < maxPreparedQueries {
		s.queries.m[key] = pq
	}
	s.queries.mu.Unlock()
	return pq, nil
}

// dataRef is data.<path> by OPA's rules for Data API URLs: empty segments
// are skipped, each is URL-unescaped, an integer segment is a number (an
// array index) and a segment with a double quote is refused.
func dataRef(path string) (ast.Ref, error) {
	ref := ast.Ref{ast.DefaultRootDocument}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" {
			continue
		}
		if s, err := url.PathUnescape(seg); err == nil {
			seg = s
		}
		if strings.Contains(seg, `"`) {
			return nil, fmt.Errorf("%w: invalid ref term '%s'", ErrBadPath, seg)
		}
		if i, ok := util.Atoi64(seg); ok {
			ref = append(ref, ast.IntNumberTerm(int(i)))
		} else {
			ref = append(ref, ast.StringTerm(seg))
		}
	}
	return ref, nil
}
