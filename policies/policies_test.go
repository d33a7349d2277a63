package policies_test

import (
	"context"
	"io/fs"
	"path"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/wardenauthz/warden/policies"
)

// TestRego runs every *_test.rego of the shipped set through OPA's test
// runner, over the shipped data, as `opa test` would.
func TestRego(t *testing.T) {
	ctx := context.Background()
	loaded, err := loader.NewFileLoader().
		WithFS(policies.FS()).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		All([]string{"."})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	store := inmem.NewFromObject(loaded.Documents)

	ran := 0
	err = storage.Txn(ctx, store, storage.TransactionParams{}, func(txn storage.Transaction) error {
		ch, err := tester.NewRunner().
			SetDefaultRegoVersion(ast.RegoV1).
			SetStore(store).
			SetModules(loaded.ParsedModules()).
			RunTests(ctx, txn)
		if err != nil {
			return err
		}
		for r := range ch {
			ran++
			switch {
			case r.Error != nil:
				t.Errorf("%s.%s (%v): error: %v", r.Package, r.Name, r.Location, r.Error)
			case r.Fail:
				t.Errorf("%s.%s (%v): FAIL", r.Package, r.Name, r.Location)
			case r.Skip:
				t.Logf("%s.%s: skipped", r.Package, r.Name)
			default:
				t.Logf("%s.%s: PASS", r.Package, r.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("run tests: %v", err)
	}
	if ran == 0 {
		t.Fatal("no Rego tests ran")
	}
}

// TestStrict compiles the shipped modules as `opa check --strict` does, which
// also rejects unused variables and imports, shadowed names and deprecated
// built-ins.
func TestStrict(t *testing.T) {
	loaded, err := loader.NewFileLoader().
		WithFS(policies.FS()).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		All([]string{"."})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	c := ast.NewCompiler().WithStrict(true).WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(loaded.ParsedModules()); c.Failed() {
		t.Fatalf("strict compile: %v", c.Errors)
	}
}

// TestFormatted fails when a shipped module differs from what `opa fmt`
// (Rego v1) would write.
func TestFormatted(t *testing.T) {
	fsys := policies.FS()
	names, err := fs.Glob(fsys, "*.rego")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no .rego files embedded")
	}
	for _, name := range names {
		t.Run(path.Base(name), func(t *testing.T) {
			src, err := fs.ReadFile(fsys, name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := format.SourceWithOpts(name, src, format.Opts{RegoVersion: ast.RegoV1})
			if err != nil {
				t.Fatalf("format: %v", err)
			}
			if diff := cmp.Diff(string(src), string(got)); diff != "" {
				t.Errorf("%s is not formatted as opa fmt would (-file +formatted):\n%s", name, diff)
			}
		})
	}
}
