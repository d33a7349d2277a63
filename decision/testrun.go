package decision

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
)

// TestOptions are the settings of Test. The zero value runs every test.
type TestOptions struct {
	// Run, when set, is a regular expression (RE2 syntax, unanchored) that
	// a test's full name, e.g. "data.warden.authz_test.test_owner_may_read",
	// must match for the test to run, as `opa test --run`.
	Run string

	// Coverage adds a coverage report: which lines of each module the tests
	// that ran evaluated. It evaluates each test three times (as `opa test
	// --coverage` does, to explain lines that rule indexing or early exit
	// skipped), so it is off unless asked for.
	Coverage bool

	// AllowNetworkBuiltins compiles the set with the restricted built-ins
	// available (see RestrictedBuiltins).
	AllowNetworkBuiltins bool

	// Timeout bounds each test. Default 5s, as `opa test`.
	Timeout time.Duration
}

// Outcome is how a test ended.
type Outcome string

// The outcomes of a test.
const (
	OutcomePass  Outcome = "pass"
	OutcomeFail  Outcome = "fail"  // the test rule was false or undefined
	OutcomeError Outcome = "error" // evaluating it failed
	OutcomeSkip  Outcome = "skip"  // a todo_ rule, counted but not run
)

// TestReport is the result of running a policy set's tests. Its JSON form is
// what `warden policy test --format json` prints and what an API can return.
type TestReport struct {
	// Tests are in file order: by file, then row.
	Tests    []TestResult `json:"tests"`
	Counts   TestCounts   `json:"counts"`
	Coverage *Coverage    `json:"coverage,omitempty"` // nil unless asked for
}

// TestCounts counts the tests of a report by outcome.
type TestCounts struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// Total is the number of tests in the report, skipped ones included.
func (c TestCounts) Total() int { return c.Pass + c.Fail + c.Error + c.Skip }

// Passed reports whether no test failed or erred. A report without tests
// passes: a set is not required to have any.
func (r *TestReport) Passed() bool {
	return r.Counts.Fail == 0 && r.Counts.Error == 0
}

// TestResult is one test's outcome.
type TestResult struct {
	Package  string        `json:"package"` // e.g. "data.warden.authz_test"
	Name     string        `json:"name"`    // e.g. "test_owner_may_read"
	File     string        `json:"file"`    // where the test rule is
	Row      int           `json:"row"`
	Col      int           `json:"col"`
	Outcome  Outcome       `json:"outcome"`
	Duration time.Duration `json:"duration_ns"`
	// Failure says where and why a test with OutcomeFail failed.
	Failure *TestFailure `json:"failure,omitempty"`
	// Error is what went wrong in a test with OutcomeError, located where
	// evaluation stopped.
	Error *Problem `json:"error,omitempty"`
	// Output is what the test printed with print().
	Output string `json:"output,omitempty"`
}

// FullName is the test's name as --run matches it, e.g.
// "data.warden.authz_test.test_owner_may_read".
func (t TestResult) FullName() string { return t.Package + "." + t.Name }

// TestFailure is the detail of a failed test, as OPA's tracer sees it.
type TestFailure struct {
	// File, Row and Col locate the expression that failed: the last one
	// of the test's own body to evaluate to false or undefined. Zero when
	// the trace does not say.
	File string `json:"file,omitempty"`
	Row  int    `json:"row,omitempty"`
	Col  int    `json:"col,omitempty"`
	// Expr is that expression with the values of its variables drawn
	// under it, as `opa test --var-values` prints it, one line per element.
	Expr []string `json:"expr,omitempty"`
	// Trace is the test's evaluation reduced to its notes (trace() calls)
	// and failed expressions, with locations, as `opa test -v` prints it.
	// Long traces are cut at maxTraceLines.
	Trace []string `json:"trace,omitempty"`
	// Cases are the failed cases of a test that has them (test rules
	// defined as a set or object, one case per key), slash-separated.
	Cases []string `json:"cases,omitempty"`
}

// maxTraceLines bounds a failure's trace: a policy with many rules can
// trace thousands of failed expressions for one test, and the report also
// travels over HTTP. The failing expression, which matters most, is kept
// apart in Expr.
const maxTraceLines = 100

// Test loads the policy set in fsys and runs its *_test.rego tests, as `opa
// test` does over the same directory. It is what `warden policy test` runs.
//
// Failing tests are not an error: the report says which (Passed). A set
// that does not load or compile is reported as a *PolicyError, an invalid
// Run expression as an error wrapping ErrTestFilter.
func Test(ctx context.Context, fsys fs.FS, opts TestOptions) (*TestReport, error) {
	if err := checkTestFilter(opts.Run); err != nil {
		return nil, err
	}
	ls, err := loadFiles(fsys)
	if err != nil {
		return nil, err
	}
	return runTests(ctx, ls, opts)
}

// ErrTestFilter is wrapped by the error for a TestOptions.Run that is not a
// regular expression.
var ErrTestFilter = errors.New("invalid test filter")

func checkTestFilter(run string) error {
	if run == "" {
		return nil
	}
	if _, err := regexp.Compile(run); err != nil {
		return fmt.Errorf("%w %q: %v", ErrTestFilter, run, err)
	}
	return nil
}

// runTests runs the tests of a loaded set. A failing test's detail comes
// from a second run of only the failed tests with tracing on: tracing every
// test would slow down each Reload for the sake of tests that pass, and OPA
// cannot trace and measure coverage in the same run.
func runTests(ctx context.Context, ls *loadedSet, opts TestOptions) (*TestReport, error) {
	caps := capabilities(opts.AllowNetworkBuiltins)
	timeout := cmp.Or(opts.Timeout, defaultTestTimeout)
	var cov *cover.Cover
	if opts.Coverage {
		cov = cover.New()
	}
	results, err := execTests(ctx, ls, testRun{caps: caps, filter: opts.Run, timeout: timeout, cover: cov})
	if err != nil {
		return nil, err
	}

	report := &TestReport{Tests: make([]TestResult, 0, len(results))}
	var failed []string
	for _, r := range results {
		t := testResult(r)
		report.Tests = append(report.Tests, t)
		switch t.Outcome {
		case OutcomePass:
			report.Counts.Pass++
		case OutcomeFail:
			report.Counts.Fail++
			failed = append(failed, regexp.QuoteMeta(t.FullName()))
		case OutcomeError:
			report.Counts.Error++
		case OutcomeSkip:
			report.Counts.Skip++
		}
	}
	slices.SortFunc(report.Tests, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Row, b.Row), cmp.Compare(a.Name, b.Name))
	})

	if len(failed) > 0 {
		traced, err := execTests(ctx, ls, testRun{
			caps:    caps,
			filter:  "^(" + strings.Join(failed, "|") + ")$",
			timeout: timeout,
			trace:   true,
		})
		if err != nil {
			return nil, fmt.Errorf("trace the failed tests: %w", err)
		}
		byName := make(map[string]*tester.Result, len(traced))
		for _, r := range traced {
			byName[r.Package+"."+r.Name] = r
		}
		for i := range report.Tests {
			t := &report.Tests[i]
			if r := byName[t.FullName()]; t.Outcome == OutcomeFail && r != nil {
				explainFailure(t.Failure, r.Trace)
			}
		}
	}
	if cov != nil {
		report.Coverage = newCoverage(cov.Report(ls.modules))
	}
	return report, nil
}

// testRun is one pass of OPA's test runner.
type testRun struct {
	caps    *ast.Capabilities
	filter  string
	timeout time.Duration
	cover   *cover.Cover // nil: no coverage
	trace   bool
}

// execTests compiles the set for testing and runs the tests that match the
// filter. The compile is separate from the decision one because OPA's
// runner adds its own stages (duplicate test names, test cases) and keeps
// print() calls, which the decision compile drops.
func execTests(ctx context.Context, ls *loadedSet, run testRun) ([]*tester.Result, error) {
	var results []*tester.Result
	err := storage.Txn(ctx, ls.store, storage.TransactionParams{}, func(txn storage.Transaction) error {
		compiler := ast.NewCompiler().
			WithDefaultRegoVersion(ast.RegoV1).
			WithCapabilities(run.caps).
			WithEnablePrintStatements(true).
			WithRewriteTestRules(run.trace). // lets the trace show the failing expression's variables
			WithPathConflictsCheck(storage.NonEmpty(ctx, ls.store, txn))
		runner := tester.NewRunner().
			SetCompiler(compiler).
			SetStore(ls.store).
			SetModules(ls.modules).
			SetTimeout(run.timeout).
			CapturePrintOutput(true).
			StackTraces(true).
			EnableTracing(run.trace).
			Filter(run.filter)
		if run.cover != nil {
			runner.SetCoverageQueryTracer(run.cover)
		}
		ch, err := runner.RunTests(ctx, txn)
		if err != nil {
			return err
		}
		for r := range ch {
			results = append(results, r)
		}
		return nil
	})
	if err != nil {
		var astErrs ast.Errors
		if errors.As(err, &astErrs) {
			astErrs.Sort()
			explainRestricted(astErrs)
			return nil, policyError(astErrs, nil)
		}
		return nil, err
	}
	// A cancelled ctx shows in the results as tests that erred; say why
	// instead of blaming the tests.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return results, nil
}

// testResult converts one result of OPA's runner.
func testResult(r *tester.Result) TestResult {
	t := TestResult{Package: r.Package, Name: r.Name, Duration: r.Duration, Output: string(r.Output)}
	if loc := r.Location; loc != nil {
		t.File, t.Row, t.Col = loc.File, loc.Row, loc.Col
	}
	switch {
	case r.Skip:
		t.Outcome = OutcomeSkip
	case r.Error != nil:
		t.Outcome = OutcomeError
		t.Error = errorProblem(r.Error)
	case r.Fail:
		t.Outcome = OutcomeFail
		t.Failure = &TestFailure{}
		for name, sr := range r.SubResults.Iter {
			if sr.Fail && len(sr.SubResults) == 0 {
				t.Failure.Cases = append(t.Failure.Cases, strings.Join(name, "/"))
			}
		}
	default:
		t.Outcome = OutcomePass
	}
	return t
}

// errorProblem locates a test's evaluation error. OPA's errors carry the
// expression where evaluation stopped and, with stack traces on, the
// queries it was in.
func errorProblem(err error) *Problem {
	var te *topdown.Error
	if !errors.As(err, &te) {
		return &Problem{Message: err.Error()}
	}
	p := &Problem{Code: te.Code, Message: te.Message}
	if loc := te.Location; loc != nil {
		p.File, p.Row, p.Col = loc.File, loc.Row, loc.Col
	}
	for _, f := range te.StackTrace {
		p.Details = append(p.Details, f.String())
	}
	return p
}

// explainFailure fills f from the trace of a failed test: its notes and
// failures, and the expression it failed at, drawn with its variables'
// values.
func explainFailure(f *TestFailure, trace []*topdown.Event) {
	var b bytes.Buffer
	topdown.PrettyTraceWithOpts(&b, lineage.Filter(trace, func(e *topdown.Event) bool {
		return e.Op == topdown.NoteOp || e.Op == topdown.FailOp
	}), topdown.PrettyTraceOptions{Locations: true})
	f.Trace = splitLines(b.String())
	if n := len(f.Trace); n > maxTraceLines {
		f.Trace = append(f.Trace[:maxTraceLines], fmt.Sprintf("... %d more lines", n-maxTraceLines))
	}

	// The failing expression is the last one to fail in a query of the
	// test (QueryID 0 is the runner's own query). An every expression
	// fails because an expression in its body did; that one says more.
	for _, e := range slices.Backward(trace) {
		if e.Op != topdown.FailOp || e.Location == nil || e.QueryID == 0 {
			continue
		}
		if expr, ok := e.Node.(*ast.Expr); ok {
			if _, every := expr.Terms.(*ast.Every); every {
				continue
			}
		}
		f.File, f.Row, f.Col = e.Location.File, e.Location.Row, e.Location.Col
		b.Reset()
		if err := topdown.PrettyEvent(&b, e, topdown.PrettyEventOpts{PrettyVars: true}); err == nil {
			f.Expr = splitLines(b.String())
		}
		return
	}
}

// splitLines splits OPA's pretty output into lines without their trailing
// blanks or the tab OPA indents an event with.
func splitLines(s string) []string {
	var lines []string
	for line := range strings.Lines(strings.TrimRight(s, "\n")) {
		line = strings.TrimPrefix(strings.TrimRight(line, " \t\n"), "\t")
		lines = append(lines, line)
	}
	return lines
}

// problems are the failing and erring tests as Problems, located at the test
// rule, for a PolicyError.
func (r *TestReport) problems() []Problem {
	var ps []Problem
	for _, t := range r.Tests {
		p := Problem{File: t.File, Row: t.Row, Col: t.Col}
		switch t.Outcome {
		case OutcomeFail:
			p.Code, p.Message = CodeTestFailed, t.FullName()+" failed"
			if f := t.Failure; f != nil {
				if f.Row > 0 {
					p.Details = append(p.Details, fmt.Sprintf("at %s:%d:%d:", f.File, f.Row, f.Col))
					p.Details = append(p.Details, f.Expr...)
				}
				for _, c := range f.Cases {
					p.Details = append(p.Details, "case "+c+" failed")
				}
			}
		case OutcomeError:
			e := t.Error
			p.Code, p.Message = CodeTestError, t.FullName()+": "+e.Message
			if e.Code != "" {
				p.Message = t.FullName() + ": " + e.Code + ": " + e.Message
			}
			if e.Row > 0 {
				p.Details = append(p.Details, fmt.Sprintf("at %s:%d:%d", e.File, e.Row, e.Col))
			}
		default:
			continue
		}
		ps = append(ps, p)
	}
	return ps
}
