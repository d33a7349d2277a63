package decision

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/policies"
)

// BenchmarkDecisionQuery compares ways of asking the shipped policy for its
// decision document, to back the choice in decisionQuery:
//
//	go test -run XXX -bench DecisionQuery ./decision/
//
// "parts" is what the engine uses; "document" evaluates data.warden.authz as
// a whole; "allow-only" is the floor, without reasons or headers.
func BenchmarkDecisionQuery(b *testing.B) {
	ctx := context.Background()
	loaded, err := loader.NewFileLoader().WithFS(policies.FS()).Filtered([]string{"."}, skipFile)
	if err != nil {
		b.Fatal(err)
	}
	store := inmem.NewFromObjectWithOpts(loaded.Documents, inmem.OptReturnASTValuesOnRead(true))
	compiler, err := compile(ctx, store, loaded.ParsedModules(), compileOptions{caps: capabilities(false)})
	if err != nil {
		b.Fatal(err)
	}
	input, err := buildInput(&Input{
		Claims: &claims.Claims{Subject: "alice", Header: claims.Header{Alg: "ES256"}, Raw: map[string]any{
			"sub": "alice", "roles": []any{"manager"}, "iat": json.Number("1795428000"),
			"exp": json.Number("1795428900"), "iss": "warden-dev", "aud": "warden",
		}},
		Action:   "orders:approve",
		Resource: map[string]any{"type": "order", "id": "42", "owner": "bob"},
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	entry := ast.MustParseRef("data.warden.authz")
	for _, q := range []struct {
		name  string
		query ast.Body
	}{
		{"parts", decisionQuery(entry)},
		{"document", ast.NewBody(ast.NewExpr(ast.NewTerm(entry)))},
		{"allow-only", ast.NewBody(ast.NewExpr(ast.NewTerm(entry.Append(keyAllow))))},
	} {
		b.Run(q.name, func(b *testing.B) {
			pq, err := prepare(ctx, compiler, store, q.query)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				rs, err := pq.Eval(ctx, rego.EvalParsedInput(input), rego.EvalMetrics(metrics.NoOp()), rego.EvalGenerateJSON(rawTerm))
				if err != nil || len(rs) != 1 {
					b.Fatal(rs, err)
				}
			}
		})
	}
}
