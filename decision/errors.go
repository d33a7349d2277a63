package decision

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// PolicyError reports why a policy set could not be loaded: a module that
// does not parse or compile, a data file that is not valid JSON/YAML, data
// and rules that overlap, a restricted built-in, a failing test. It is
// exported so that callers can tell the author's mistakes (to show them,
// e.g. as HTTP 422 with the problem list) from failures to read the files
// at all.
type PolicyError struct {
	Problems []Problem
	// Tests is the report of the set's tests when they ran and failed
	// (one Problem per failing test is in Problems too); nil when the set
	// did not get as far as its tests.
	Tests *TestReport
}

// Problem is one mistake in a policy set, located as precisely as OPA knows.
// Its JSON form is what an API can return for it.
type Problem struct {
	File    string   `json:"file,omitempty"`    // path inside the policy file system; "" when unknown
	Row     int      `json:"row,omitempty"`     // 1-based; 0 when unknown
	Col     int      `json:"col,omitempty"`     // 1-based; 0 when unknown
	Code    string   `json:"code,omitempty"`    // OPA's error code (rego_parse_error, rego_type_error, ...) or one of Warden's Code* constants
	Message string   `json:"message"`           // what is wrong
	Details []string `json:"details,omitempty"` // further lines, e.g. the types a type error saw, the expression a test failed at
}

// Problem codes Warden adds to OPA's.
const (
	// CodeTestFailed is a *_test.rego test that evaluated to false or
	// undefined; the Problem is located at the test rule.
	CodeTestFailed = "test_failed"
	// CodeTestError is a test whose evaluation failed (a conflict, a
	// built-in error, a timeout).
	CodeTestError = "test_error"
	// CodeDataError is a data file (JSON or YAML) that does not load: not
	// valid JSON or YAML, not an object, or overlapping another data file.
	// The Problem is located in the file as precisely as the parser says.
	CodeDataError = "data_error"
)

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
// module want both. files are the set's files as the loader read them, to
// locate errors in data files (nil when there are none to locate).
func policyError(err error, files map[string][]byte) *PolicyError {
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
			pe.Problems = append(pe.Problems, dataProblem(err, files))
		}
	}
	walk(err)
	return pe
}

// yamlLine is where a YAML parser error says it is: "yaml: line 3: ...".
var yamlLine = regexp.MustCompile(`yaml: line (\d+):`)

// dataProblem locates a loader error in the data file it is about. OPA's
// loader names the file as a prefix of the message and says no more: a JSON
// syntax error carries the byte offset, which becomes a row and column, a
// file cut short is located at its end, and YAML errors name their line.
// An error about no known file is returned as its message alone.
func dataProblem(err error, files map[string][]byte) Problem {
	msg := err.Error()
	for name, content := range files {
		rest, ok := strings.CutPrefix(msg, name+": ")
		if !ok {
			continue
		}
		p := Problem{File: name, Code: CodeDataError, Message: rest}
		var syntax *json.SyntaxError
		switch {
		case errors.As(err, &syntax):
			// Offset counts the bytes read, the offending one included.
			p.Row, p.Col = position(content, max(syntax.Offset-1, 0))
		case errors.Is(err, io.ErrUnexpectedEOF):
			p.Row, p.Col = position(content, int64(len(bytes.TrimRight(content, " \t\r\n"))))
		default:
			if m := yamlLine.FindStringSubmatch(rest); m != nil {
				p.Row, _ = strconv.Atoi(m[1])
				p.Col = 1
			}
		}
		return p
	}
	return Problem{Message: msg}
}

// position is the 1-based row and column (in bytes, as OPA counts them) of
// the byte at offset in content.
func position(content []byte, offset int64) (row, col int) {
	before := content[:min(offset, int64(len(content)))]
	row = 1 + bytes.Count(before, []byte("\n"))
	col = len(before) - bytes.LastIndexByte(before, '\n')
	return row, col
}
