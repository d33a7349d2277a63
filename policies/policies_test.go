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

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

// TestRego runs every *_test.rego of the shipped set over the shipped data
// with Warden's test runner (OPA's, with Warden's built-in warden.route), as
// `warden policy test policies/` does. The real `opa test` cannot run the
// set: OPA does not know warden.route.
func TestRego(t *testing.T) {
	report, err := decision.Test(context.Background(), policies.FS(), decision.TestOptions{})
	if err != nil {
		t.Fatalf("run tests: %v", err)
	}
	for _, r := range report.Tests {
		if r.Outcome != decision.OutcomePass {
			t.Errorf("%s (%s:%d): %s %+v %+v", r.FullName(), r.File, r.Row, r.Outcome, r.Failure, r.Error)
		}
	}
	if report.Counts.Pass == 0 {
		t.Fatal("no Rego tests ran")
	}
}

// TestStrict compiles the shipped modules as `opa check --strict` does, which
// also rejects unused variables and imports, shadowed names and deprecated
// built-ins. (The decision package, imported above, declares warden.route
// to the compiler.)
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
