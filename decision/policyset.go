package decision

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// adminAllow is the admin API's decision (DESIGN §3).
var adminAllow = ast.MustParseRef("data.warden.admin.allow")

// policySet is one compiled generation of the policies. It is immutable once
// built: the engine swaps whole sets, so a request that loaded a set finishes
// on it however many reloads happen meanwhile.
type policySet struct {
	revision string
	files    []string // paths of the files that make up the set, sorted
	authz    rego.PreparedEvalQuery
	admin    rego.PreparedEvalQuery
	memo     *memo // nil when off or when the set is not deterministic
	// unread are the parts of the input no module of the set reads:
	// decisions leave input.authzen out when the set never reads it.
	unread  unreadInput
	offload bool // the set calls a built-in that waits on the network (see eval)

	// compiler and store answer Query for any document of the set, with
	// the queries it prepared.
	compiler *ast.Compiler
	store    storage.Store
	queries  queryCache
}

// recordingFS remembers every file the loader reads, so that the revision
// hashes exactly the bytes that were compiled, even if the directory changes
// while it is being loaded.
type recordingFS struct {
	fs.FS
	files map[string][]byte
}

// ReadFile is what OPA's loader calls (through fs.ReadFile) for each file.
func (r *recordingFS) ReadFile(name string) ([]byte, error) {
	b, err := fs.ReadFile(r.FS, name)
	if err == nil {
		r.files[name] = b
	}
	return b, err
}

// loadedSet is a policy set as read from its files, before compiling.
type loadedSet struct {
	revision string
	files    []string // paths of the files that make up the set, sorted
	modules  map[string]*ast.Module
	store    storage.Store // the data documents
}

// loadFiles reads the policy set in fsys: its Rego modules, parsed, and its
// data documents, in a store. Mistakes in the files are reported as a
// *PolicyError.
func loadFiles(fsys fs.FS) (*loadedSet, error) {
	if fsys == nil {
		return nil, errors.New("no policy file system")
	}
	rec := &recordingFS{FS: fsys, files: map[string][]byte{}}
	loaded, err := loader.NewFileLoader().
		WithFS(rec).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		Filtered([]string{"."}, skipFile)
	if err != nil {
		return nil, policyError(err, rec.files)
	}
	if len(loaded.Modules) == 0 {
		return nil, &PolicyError{Problems: []Problem{{Message: "no Rego modules (*.rego) found"}}}
	}
	ls := &loadedSet{
		modules: loaded.ParsedModules(),
		// Reads return AST values so that data.warden.roles is not
		// converted from Go maps on every evaluation.
		store: inmem.NewFromObjectWithOpts(loaded.Documents, inmem.OptReturnASTValuesOnRead(true)),
	}
	ls.revision, ls.files = Revision(rec.files), slices.Sorted(maps.Keys(rec.files))
	return ls, nil
}

// prepareSet prepares the decision query at entry and the admin query
// data.warden.admin.allow over a compiled set.
func prepareSet(ctx context.Context, ls *loadedSet, compiler *ast.Compiler, entry ast.Ref, memoSize int) (*policySet, error) {
	set := &policySet{revision: ls.revision, files: ls.files, compiler: compiler, store: ls.store}
	var err error
	if set.authz, err = prepare(ctx, compiler, ls.store, decisionQuery(entry)); err != nil {
		return nil, fmt.Errorf("prepare the decision query at %v: %w", entry, err)
	}
	adminQuery := ast.NewBody(ast.NewExpr(ast.NewTerm(adminAllow)))
	if set.admin, err = prepare(ctx, compiler, ls.store, adminQuery); err != nil {
		return nil, fmt.Errorf("prepare %v: %w", adminAllow, err)
	}
	set.unread = unreadParts(compiler)
	if memoSize > 0 && !calls(compiler, nondeterministic) {
		set.memo = newMemo(memoSize, set.unread, planKey(ctx, compiler, ls.store, entry))
	}
	set.offload = calls(compiler, waitsOnNetwork)
	return set, nil
}

// decisionQuery asks for the three parts of the decision document at entry:
//
//	allow := [x | x := data.warden.authz.allow]; reasons := [...]; headers := [...]
//
// Each part is wrapped in an array comprehension so that an undefined part
// yields [] instead of making the whole query undefined, and so that a part
// of the wrong type still arrives to be rejected. Only these three rules and
// what they use are evaluated. Querying the whole document instead would
// evaluate every helper rule of the package too (the shipped policy's deny
// reasons even on allow): BenchmarkDecisionQuery measured it at about twice
// the allocations and 1.7 times the time.
func decisionQuery(entry ast.Ref) ast.Body {
	body := make(ast.Body, 0, len(decisionKeys))
	for i, key := range decisionKeys {
		x := ast.VarTerm("x")
		part := ast.NewTerm(entry.Append(key))
		compr := ast.ArrayComprehensionTerm(x, ast.NewBody(ast.Assign.Expr(x, part)))
		expr := ast.Assign.Expr(ast.VarTerm(string(key.Value.(ast.String))), compr)
		expr.Index = i
		body = append(body, expr)
	}
	return body
}

// compileOptions are the settings a policy set is compiled with.
type compileOptions struct {
	caps   *ast.Capabilities
	strict bool // OPA's strict mode: unused variables and imports, shadowing, deprecated built-ins
}

// compile compiles modules against the data in store. Rules and data must
// not claim the same path, the same check `opa run` makes.
func compile(ctx context.Context, store storage.Store, modules map[string]*ast.Module, opts compileOptions) (*ast.Compiler, error) {
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)

	compiler := ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithCapabilities(opts.caps).
		WithStrict(opts.strict).
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn))
	if compiler.Compile(modules); compiler.Failed() {
		compiler.Errors.Sort()
		explainRestricted(compiler.Errors)
		return nil, policyError(compiler.Errors, nil)
	}
	return compiler, nil
}

// prepare prepares a query once per set; every decision then only evaluates
// it.
func prepare(ctx context.Context, compiler *ast.Compiler, store storage.Store, query ast.Body) (rego.PreparedEvalQuery, error) {
	return rego.New(
		rego.ParsedQuery(query),
		rego.Compiler(compiler),
		rego.Store(store),
	).PrepareForEval(ctx)
}
