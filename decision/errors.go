package decision

import (
	"errors"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// PolicyError reports why a policy set could not be loaded: a module that
// does not parse or compile, a data file that is not valid JSON/YAML, data
// and rules that overlap. It is exported so that callers can tell the
// author's mistakes (to show them, e.g. as HTTP 422 with the problem list)
// from failures to read the files at all.
type PolicyError struct {
	Problems []Problem
}

// Problem is one mistake in a policy set, located as precisely as OPA knows.
type Problem struct {
	File    string   // path inside the policy file system; "" when unknown
	Row     int      // 1-based; 0 when unknown
	Col     int      // 1-based; 0 when unknown
	Code    string   // OPA's error code, e.g. rego_parse_error, rego_type_error
	Message string   // what is wrong
	Details []string // further lines OPA gives, e.g. the types a type error saw
}

// String formats p as "file:row:col: code: message" followed by its details.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Row > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Row))
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Col))
		}
		b.WriteString(": ")
	}
	if p.Code != "" {
		b.WriteString(p.Code)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	for _, d := range p.Details {
		b.WriteString("\n\t\t")
		b.WriteString(d)
	}
	return b.String()
}

// Error lists every problem, one per line after the first.
func (e *PolicyError) Error() string {
	switch len(e.Problems) {
	case 0:
		return "invalid policy set"
	case 1:
		return "invalid policy set: " + e.Problems[0].String()
	}
	var b strings.Builder
	b.WriteString("invalid policy set: ")
	b.WriteString(strconv.Itoa(len(e.Problems)))
	b.WriteString(" problems:")
	for _, p := range e.Problems {
		b.WriteString("\n\t")
		b.WriteString(p.String())
	}
	return b.String()
}

// policyError collects the problems of an OPA loader or compiler error. OPA
// formats its own errors as "file:row" without the column; authors fixing a
// module want both.
func policyError(err error) *PolicyError {
	pe := &PolicyError{}
	var walk func(error)
	walk = func(err error) {
		var (
			loadErrs loader.Errors
			astErrs  ast.Errors
			astErr   *ast.Error
		)
		switch {
		case errors.As(err, &loadErrs):
			for _, e := range loadErrs {
				walk(e)
			}
		case errors.As(err, &astErrs):
			for _, e := range astErrs {
				walk(e)
			}
		case errors.As(err, &astErr):
			p := Problem{Code: astErr.Code, Message: astErr.Message}
			if loc := astErr.Location; loc != nil {
				p.File, p.Row, p.Col = loc.File, loc.Row, loc.Col
			}
			if astErr.Details != nil {
				p.Details = astErr.Details.Lines()
			}
			pe.Problems = append(pe.Problems, p)
		default:
			pe.Problems = append(pe.Problems, Problem{Message: err.Error()})
		}
	}
	walk(err)
	return pe
}
