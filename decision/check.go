package decision

import (
	"context"
	"errors"
	"io/fs"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// CheckOptions are the settings of Check. The zero value checks a set the
// way an Engine with zero Options would load it.
type CheckOptions struct {
	// Entrypoint is the package path of the decision document; the set
	// must define its allow rule. Default "warden/authz".
	Entrypoint string

	// AllowNetworkBuiltins compiles the set with the restricted built-ins
	// (see RestrictedBuiltins) available, as an Engine with the same option
	// would.
	AllowNetworkBuiltins bool

	// Strict compiles with OPA's strict mode as well, as `opa check
	// --strict` does: unused variables, arguments and imports, names that
	// shadow input or data, and deprecated built-ins become problems. An
	// Engine does not refuse a set for these; `warden policy check` does.
	Strict bool

	// TestTimeout bounds each Rego test. Default 5s, as `opa test`.
	TestTimeout time.Duration
}

// Candidate is a policy set that compiled and whose tests passed: a set an
// Engine may activate. Check and Engine.Check return one; only a candidate
// from Engine.Check can be passed to that engine's Activate.
type Candidate struct {
	// Revision is the content hash of the set's files, the one its
	// decisions will carry.
	Revision string
	// Files are the paths of the files that make up the set, sorted.
	Files []string
	// Tests is the report of the set's *_test.rego tests, all of which
	// passed (or were skipped).
	Tests *TestReport

	set    *policySet
	engine *Engine // nil when made by the package-level Check
}

// Check loads the policy set in fsys, compiles it whole and runs its tests:
// everything an Engine does before it activates a set, without an engine.
// It is what `warden policy check` runs and what an API that stores policy
// sets can ask before storing one.
//
// A set that does not load or compile, that lacks the entrypoint's allow
// rule, or whose tests fail, is reported as a *PolicyError; when tests ran,
// its Tests field holds their report. Other errors (an unreadable file
// system, a cancelled ctx) are returned as they are.
func Check(ctx context.Context, fsys fs.FS, opts CheckOptions) (*Candidate, error) {
	c, err := newChecker(opts.Entrypoint, opts.AllowNetworkBuiltins, 0)
	if err != nil {
		return nil, err
	}
	c.strict = opts.Strict
	if opts.TestTimeout > 0 {
		c.testTimeout = opts.TestTimeout
	}
	return c.check(ctx, fsys)
}

// Check loads, compiles and tests the policy set in fsys with this engine's
// settings, as Reload does, but does not activate it. The candidate can be
// activated later with Activate. Errors are as for the package-level Check.
func (e *Engine) Check(ctx context.Context, fsys fs.FS) (*Candidate, error) {
	cand, err := e.checker.check(ctx, fsys)
	if err != nil {
		return nil, err
	}
	cand.engine = e
	return cand, nil
}

// Test checks the policy set in fsys as Check does short of its tests —
// loaded, compiled with this engine's built-ins, the entrypoint's allow rule
// defined — and then runs its tests with opts; the engine's
// AllowNetworkBuiltins and test timeout apply, whatever opts say. It is a
// dry run of activation with the tests' full report: the admin API's
// validation of a draft. A set that would be refused before its tests ran is
// a *PolicyError; failing tests are reported in the report, not as an error.
func (e *Engine) Test(ctx context.Context, fsys fs.FS, opts TestOptions) (*TestReport, error) {
	if err := checkTestFilter(opts.Run); err != nil {
		return nil, err
	}
	ls, _, err := e.checker.compileSet(ctx, fsys)
	if err != nil {
		return nil, err
	}
	opts.AllowNetworkBuiltins = e.checker.allowNet
	opts.Timeout = e.checker.testTimeout
	return runTests(ctx, ls, opts)
}

// errForeignCandidate refuses a candidate checked with other settings.
var errForeignCandidate = errors.New("the candidate was not checked by this engine")

// Activate makes cand, checked by this engine's Check, the active set and
// returns the revision it replaced. Requests in flight finish on the set
// they started with. Activate is ordered with Reload, not with Check: of a
// candidate checked long ago and a Reload since, whichever is called last
// wins, whatever the revisions; a store that activates candidates must
// order them itself.
func (e *Engine) Activate(cand *Candidate) (previous string, err error) {
	if cand == nil || cand.engine != e {
		return "", errForeignCandidate
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.activate(cand), nil
}

// activate swaps cand in; the caller holds reloadMu.
func (e *Engine) activate(cand *Candidate) (previous string) {
	old := e.set.Swap(cand.set)
	e.log.Info("policy set loaded", "revision", cand.Revision, "previous_revision", old.revision,
		"files", len(cand.Files), "tests_passed", cand.Tests.Counts.Pass)
	return old.revision
}

// checker turns a file system into a Candidate. An Engine keeps one built
// from its Options, so that every set it activates was checked the same way.
type checker struct {
	entry       ast.Ref
	allowNet    bool
	strict      bool
	memoSize    int
	testTimeout time.Duration
}

const defaultTestTimeout = 5 * time.Second

func newChecker(entrypoint string, allowNet bool, memoSize int) (checker, error) {
	if entrypoint == "" {
		entrypoint = DefaultEntrypoint
	}
	entry, err := parseEntrypoint(entrypoint)
	if err != nil {
		return checker{}, err
	}
	return checker{entry: entry, allowNet: allowNet, memoSize: memoSize, testTimeout: defaultTestTimeout}, nil
}

// check is Check's work: load, compile, find the entrypoint, test, prepare.
// Tests run after the decision compile so that a set with compile errors is
// reported by those (with every position), not by a test runner that could
// not start.
func (c checker) check(ctx context.Context, fsys fs.FS) (*Candidate, error) {
	ls, compiler, err := c.compileSet(ctx, fsys)
	if err != nil {
		return nil, err
	}
	report, err := c.test(ctx, ls)
	if err != nil {
		return nil, err
	}
	if !report.Passed() {
		return nil, &PolicyError{Problems: report.problems(), Tests: report}
	}
	set, err := prepareSet(ctx, ls, compiler, c.entry, c.memoSize)
	if err != nil {
		return nil, err
	}
	return &Candidate{Revision: ls.revision, Files: ls.files, Tests: report, set: set}, nil
}

// compileSet loads and compiles the set in fsys and makes sure it defines the
// entrypoint's allow rule: every check short of the tests.
func (c checker) compileSet(ctx context.Context, fsys fs.FS) (*loadedSet, *ast.Compiler, error) {
	ls, err := loadFiles(fsys)
	if err != nil {
		return nil, nil, err
	}
	compiler, err := compile(ctx, ls.store, ls.modules, compileOptions{caps: capabilities(c.allowNet), strict: c.strict})
	if err != nil {
		return nil, nil, err
	}
	if err := checkRoutes(ctx, ls.store); err != nil {
		return nil, nil, err
	}
	if len(compiler.GetRules(c.entry.Append(keyAllow))) == 0 {
		return nil, nil, &PolicyError{Problems: []Problem{{
			Message: "no rule defines " + c.entry.String() + ".allow, the decision entrypoint",
		}}}
	}
	return ls, compiler, nil
}

// test runs the tests of a compiled set with the checker's settings.
func (c checker) test(ctx context.Context, ls *loadedSet) (*TestReport, error) {
	return runTests(ctx, ls, TestOptions{AllowNetworkBuiltins: c.allowNet, Timeout: c.testTimeout})
}
