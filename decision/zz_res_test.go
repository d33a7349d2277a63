package decision

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

func TestZZResidual(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"D-bool-assign", "E-id-in-deny"} {
		fsys := fstest.MapFS{
			"authz.rego": {Data: []byte("package warden.authz\n" + variants[name])},
			"data.json":  {Data: []byte(`{"roles": {"manager": ["orders:read", "orders:approve"], "staff": ["orders:read"]}}`)},
		}
		loaded, _ := loader.NewFileLoader().WithFS(fsys).Filtered([]string{"."}, skipFile)
		store := inmem.NewFromObjectWithOpts(loaded.Documents, inmem.OptReturnASTValuesOnRead(true))
		compiler, _ := compile(ctx, store, loaded.ParsedModules(), compileOptions{caps: capabilities(false)})
		entry := ast.MustParseRef("data.warden.authz")
		for _, key := range decisionKeys {
			query := ast.NewBody(ast.Equality.Expr(ast.VarTerm("x"), ast.NewTerm(entry.Append(key))))
			pq, err := rego.New(rego.ParsedQuery(query), rego.Compiler(compiler), rego.Store(store), rego.Unknowns([]string{"input"})).Partial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println("=== ", name, key)
			for _, q := range pq.Queries {
				fmt.Println("Q:", q)
			}
			for _, m := range pq.Support {
				fmt.Println(m)
			}
		}
	}
}
