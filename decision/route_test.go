package decision_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/wardenauthz/warden/decision"
)

// route evaluates warden.route(table, method, path) as a policy would and
// returns the route it answers, or nil when it is undefined.
func route(t testing.TB, table, method, path string) map[string]any {
	t.Helper()
	query := fmt.Sprintf("x := %s(%s, %q, %q)", decision.RouteBuiltin, table, method, path)
	rs, err := rego.New(rego.Query(query), rego.SetRegoVersion(ast.RegoV1)).Eval(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if len(rs) == 0 {
		return nil
	}
	return rs[0].Bindings["x"].(map[string]any)
}

const orders = `[
	{"method": "GET", "path": "/orders", "action": "orders:list"},
	{"method": "GET", "path": "/orders/{id}", "action": "orders:read", "resource": {"type": "order", "id": "{id}"}},
	{"method": "POST", "path": "/orders/{id}/approve", "action": "orders:approve", "resource": {"type": "order", "id": "{id}"}},
	{"method": "*", "path": "/shops/{shop}/orders/{id}", "action": "shops:any", "resource": {"shop": "{shop}", "id": "{id}", "tier": 2, "label": "{}"}},
	{"method": "GET", "path": "/files/*/{name}", "action": "files:read", "resource": {"name": "{name}"}},
	{"method": "GET", "path": "/", "action": "home"},
	{"method": "GET", "path": "/dir/", "action": "dir"}
]`

func TestRouteMatches(t *testing.T) {
	for _, tt := range []struct {
		method, path string
		action       string // "" when no route may match
		resource     map[string]any
	}{
		{"GET", "/orders", "orders:list", nil},
		{"GET", "/orders/42", "orders:read", map[string]any{"type": "order", "id": "42"}},
		{"POST", "/orders/42/approve", "orders:approve", map[string]any{"type": "order", "id": "42"}},
		{"DELETE", "/shops/s1/orders/9", "shops:any", map[string]any{"shop": "s1", "id": "9", "tier": "2", "label": "{}"}},
		{"GET", "/files/*/a.txt", "files:read", map[string]any{"name": "a.txt"}},
		{"GET", "/", "home", nil},
		{"GET", "/dir/", "dir", nil},
		// The method is matched exactly: no case folding, HEAD is not GET.
		{"get", "/orders", "", nil},
		{"HEAD", "/orders", "", nil},
		{"POST", "/orders/42", "", nil},
		// Segment for segment: one more or fewer, an empty parameter, a
		// trailing slash, or a literal that differs is another path.
		{"GET", "/orders/42/items", "", nil},
		{"GET", "/orders/", "", nil},
		{"GET", "/orders/42/", "", nil},
		{"GET", "//orders", "", nil},
		{"GET", "/Orders", "", nil},
		{"GET", "/files/x/a.txt", "", nil},
		{"GET", "/files/*/", "", nil},
		{"GET", "/dir", "", nil},
		{"GET", "", "", nil},
		{"GET", "orders", "", nil},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			got := route(t, orders, tt.method, tt.path)
			if tt.action == "" {
				if got != nil {
					t.Fatalf("matched %v; want no route", got)
				}
				return
			}
			if got == nil || got["action"] != tt.action {
				t.Fatalf("matched %v; want action %s", got, tt.action)
			}
			if tt.resource != nil && fmt.Sprint(got["resource"]) != fmt.Sprint(tt.resource) {
				t.Errorf("resource %v; want %v", got["resource"], tt.resource)
			}
			if tt.resource == nil && got["resource"] != nil {
				t.Errorf("resource %v; the route has none", got["resource"])
			}
		})
	}
}

// The first route that matches in table order wins, as in Envoy's route
// table, even when a later one is more specific.
func TestRouteFirstMatchWins(t *testing.T) {
	table := `[
		{"method": "*", "path": "/orders/{id}", "action": "any"},
		{"method": "GET", "path": "/orders/new", "action": "new"}
	]`
	if got := route(t, table, "GET", "/orders/new"); got["action"] != "any" {
		t.Errorf("matched %v; want the first route", got)
	}
	// The table is compiled once and reused; another table is compiled
	// anew, not answered from the last one.
	if got := route(t, `[{"method": "GET", "path": "/orders/new", "action": "new"}]`, "GET", "/orders/new"); got["action"] != "new" {
		t.Errorf("matched %v; want the other table's route", got)
	}
	if got := route(t, `[]`, "GET", "/orders/new"); got != nil {
		t.Errorf("an empty table matched %v", got)
	}
}

// A route table with a mistake makes the built-in fail (so the policy's
// match is undefined and nothing is granted), and a policy set holding it
// is refused with a message that names the route.
func TestRouteTableMistakes(t *testing.T) {
	for _, tt := range []struct{ table, want string }{
		{`{"method": "GET", "path": "/"}`, "must be an array, not object"},
		{`["GET /orders"]`, "route 0: must be an object, not string"},
		{`[{"path": "/orders"}]`, `route 0: "method" must be`},
		{`[{"method": "GET /orders", "path": "/orders"}]`, `route 0: "method" must be`},
		{`[{"method": "GET", "path": "orders"}]`, `route 0: "path" must be a string starting with "/"`},
		{`[{"method": "GET", "path": 7}]`, `route 0: "path" must be`},
		{`[{"method": "GET", "path": "/"}, {"method": "GET", "path": "/orders/{}"}]`, `route 1: path "/orders/{}": segment "{}" is neither`},
		{`[{"method": "GET", "path": "/orders/x{id}"}]`, `segment "x{id}" is neither`},
		{`[{"method": "GET", "path": "/a/{id}/b/{id}"}]`, "parameter {id} appears twice"},
		{`[{"method": "GET", "path": "/orders", "resource": "order"}]`, `"resource" must be an object, not string`},
		{`[{"method": "GET", "path": "/orders/{id}", "resource": {"id": "{idd}"}}]`, `resource "id" is "{idd}", but the path "/orders/{id}" has no parameter {idd}`},
	} {
		t.Run(tt.table, func(t *testing.T) {
			query := "x := " + decision.RouteBuiltin + `(data.routes, "GET", "/orders")`
			_, err := rego.New(rego.Query(query), rego.Store(mustStore(t, `{"routes": `+tt.table+`}`)),
				rego.SetRegoVersion(ast.RegoV1), rego.StrictBuiltinErrors(true)).Eval(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("built-in error %v; want one containing %q", err, tt.want)
			}
			fsys := fstest.MapFS{
				"authz.rego": {Data: []byte("package warden.authz\n\nallow if " + decision.RouteBuiltin + "(data.warden.routes, input.request.method, input.request.path)\n")},
				"data.json":  {Data: []byte(`{"warden": {"routes": ` + tt.table + `}}`)},
			}
			_, err = decision.NewEngine(context.Background(), fsys, testOptions(t))
			var pe *decision.PolicyError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), "data.warden.routes: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewEngine error %v; want a policy error containing %q", err, tt.want)
			}
		})
	}
}

// A proxied decision takes its action and resource from the route table,
// through the shipped policy.
func TestRouteDecides(t *testing.T) {
	e := shippedEngine(t, decision.Options{})
	ctx := context.Background()
	staff := token("carol", []any{"staff"})
	for _, tt := range []struct {
		method, path string
		allow        bool
		reason       string
	}{
		{"GET", "/orders/42", true, "role staff grants orders:read"},
		{"POST", "/orders/42/approve", false, "no role grants orders:approve"},
		{"GET", "/admin", false, "no route matches GET /admin"},
	} {
		d := e.Decide(ctx, decision.Input{Claims: staff, Request: &decision.Request{Method: tt.method, Path: tt.path}})
		if d.Allow != tt.allow || len(d.Reasons) != 1 || d.Reasons[0] != tt.reason {
			t.Errorf("%s %s: %+v; want allow %v for %q", tt.method, tt.path, d, tt.allow, tt.reason)
		}
	}
}

// BenchmarkRoute measures warden.route on a table of 30 routes, for a
// request that matches the last one: the worst case of a linear table.
//
//	go test -run '^$' -bench Route -benchmem ./decision/
func BenchmarkRoute(b *testing.B) {
	var routes []string
	for i := range 29 {
		routes = append(routes, fmt.Sprintf(`{"method": "GET", "path": "/things%d/{id}", "action": "things:read", "resource": {"id": "{id}"}}`, i))
	}
	routes = append(routes, `{"method": "POST", "path": "/orders/{id}/approve", "action": "orders:approve", "resource": {"type": "order", "id": "{id}"}}`)
	table := "[" + strings.Join(routes, ",") + "]"
	q, err := rego.New(rego.Query("x := "+decision.RouteBuiltin+"(data.routes, input.method, input.path)"),
		rego.Store(mustStore(b, `{"routes": `+table+`}`)), rego.SetRegoVersion(ast.RegoV1)).PrepareForEval(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	input := rego.EvalInput(map[string]any{"method": "POST", "path": "/orders/42/approve"})
	b.ReportAllocs()
	for b.Loop() {
		rs, err := q.Eval(context.Background(), input)
		if err != nil || len(rs) != 1 {
			b.Fatalf("%v %v", rs, err)
		}
	}
}

// mustStore is a store of the JSON document doc that returns AST values, as
// a policy set's store does.
func mustStore(t testing.TB, doc string) storage.Store {
	t.Helper()
	var v map[string]any
	if err := util.UnmarshalJSON([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	return inmem.NewFromObjectWithOpts(v, inmem.OptReturnASTValuesOnRead(true))
}
