package decision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/types"
)

// RouteBuiltin is the name of Warden's one built-in: warden.route(routes,
// method, path) is the first route of the table routes whose method and path
// match, with its resource filled in, or undefined when none does. Routes
// are the objects of data.warden.routes (docs/policies.md):
//
//	{"method": "GET", "path": "/orders/{id}", "action": "orders:read",
//	 "resource": {"type": "order", "id": "{id}"}}
//
// method is one method or "*" for any. path is matched segment by segment; a
// "{name}" segment matches any one non-empty segment. A resource value that
// is exactly "{name}" becomes that segment. The first match in table order
// wins, as in Envoy's and Traefik's route tables.
//
// It is a built-in rather than Rego because matching in Rego walks and
// splits the whole table on every decision: about 80 µs for three routes
// and 17 µs more for each further route (docs/performance.md). The built-in
// compiles a table once and matches in well under a microsecond.
const RouteBuiltin = "warden.route"

// routesPath is where a policy set keeps its route table.
var routesPath = storage.MustParsePath("/warden/routes")

func init() {
	rego.RegisterBuiltin3(&rego.Function{
		Name: RouteBuiltin,
		Description: "The first route of the table whose method and path match, " +
			"with the resource's \"{name}\" values filled from the path; undefined when none matches.",
		Decl: types.NewFunction(
			types.Args(
				types.Named("routes", types.NewArray(nil, types.A)).Description("the route table, e.g. data.warden.routes"),
				types.Named("method", types.S).Description("the request's method"),
				types.Named("path", types.S).Description("the request's path, normalised"),
			),
			types.Named("route", types.NewObject(nil, types.NewDynamicProperty(types.S, types.A))).Description("the matching route"),
		),
	}, routeBuiltin)
}

// lastTable is the table warden.route compiled last. A policy set's table
// is one value in its store, read by every decision, so one entry holds it;
// a test that overrides data.warden.routes with its own table compiles that.
var lastTable atomic.Pointer[routeTable]

func routeBuiltin(_ rego.BuiltinContext, routes, method, path *ast.Term) (*ast.Term, error) {
	m, ok := method.Value.(ast.String)
	if !ok {
		return nil, errors.New("method must be a string")
	}
	p, ok := path.Value.(ast.String)
	if !ok {
		return nil, errors.New("path must be a string")
	}
	t := lastTable.Load()
	if t == nil || t.source != routes.Value {
		var err error
		if t, err = compileRoutes(routes.Value); err != nil {
			return nil, err
		}
		lastTable.Store(t)
	}
	return t.match(string(m), string(p)), nil
}

// routeTable is a compiled route table.
type routeTable struct {
	source ast.Value // the table as the policy holds it
	routes []compiledRoute
}

type compiledRoute struct {
	method   string   // "*" for any
	segments []string // the path split on "/"; a parameter is "{name}"
	route    ast.Object
	// fill lists the resource's keys whose value is a parameter, with the
	// index of its segment; nil when there is nothing to fill.
	fill []filledKey
}

type filledKey struct {
	key     *ast.Term
	segment int
}

// compileRoutes checks the table and prepares it for matching. Its errors
// name the route and say what is wrong, because they reach whoever wrote
// the table: a policy push or PUT /v1/data/warden/routes is refused with
// them.
func compileRoutes(v ast.Value) (*routeTable, error) {
	arr, ok := v.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("the route table must be an array, not %s", ast.ValueName(v))
	}
	t := &routeTable{source: v, routes: make([]compiledRoute, 0, arr.Len())}
	for i := range arr.Len() {
		r, err := compileRoute(arr.Elem(i).Value)
		if err != nil {
			return nil, fmt.Errorf("route %d: %w", i, err)
		}
		t.routes = append(t.routes, r)
	}
	return t, nil
}

func compileRoute(v ast.Value) (compiledRoute, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return compiledRoute{}, fmt.Errorf("must be an object, not %s", ast.ValueName(v))
	}
	method, ok := stringField(obj, "method")
	if !ok || method == "" || strings.ContainsAny(method, " \t/") {
		return compiledRoute{}, errors.New(`"method" must be a method such as "GET", or "*" for any`)
	}
	path, ok := stringField(obj, "path")
	if !ok || !strings.HasPrefix(path, "/") {
		return compiledRoute{}, errors.New(`"path" must be a string starting with "/"`)
	}
	r := compiledRoute{method: method, segments: strings.Split(path, "/"), route: obj}
	params := map[string]int{}
	for i, seg := range r.segments {
		name, isParam := paramName(seg)
		switch {
		case isParam && !strings.ContainsAny(name, "{}"):
			if _, dup := params[name]; dup {
				return compiledRoute{}, fmt.Errorf("path %q: parameter {%s} appears twice", path, name)
			}
			params[name] = i
		case strings.ContainsAny(seg, "{}"):
			return compiledRoute{}, fmt.Errorf("path %q: segment %q is neither literal nor a whole-segment parameter such as {id}", path, seg)
		}
	}
	res := obj.Get(ast.InternedTerm("resource"))
	if res == nil {
		return r, nil
	}
	resource, ok := res.Value.(ast.Object)
	if !ok {
		return compiledRoute{}, fmt.Errorf(`"resource" must be an object, not %s`, ast.ValueName(res.Value))
	}
	var err error
	resource.Foreach(func(k, v *ast.Term) {
		s, ok := v.Value.(ast.String)
		if !ok || err != nil {
			return
		}
		name, isParam := paramName(string(s))
		if !isParam {
			return
		}
		i, found := params[name]
		if !found {
			err = fmt.Errorf("resource %v is %q, but the path %q has no parameter {%s}", k, string(s), path, name)
			return
		}
		r.fill = append(r.fill, filledKey{key: k, segment: i})
	})
	return r, err
}

func stringField(obj ast.Object, key string) (string, bool) {
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

// paramName reports whether seg is a parameter "{name}" and its name.
func paramName(seg string) (string, bool) {
	if len(seg) < 3 || seg[0] != '{' || seg[len(seg)-1] != '}' {
		return "", false
	}
	return seg[1 : len(seg)-1], true
}

// match returns the first route matching method and path, filled in, or nil.
func (t *routeTable) match(method, path string) *ast.Term {
	for i := range t.routes {
		r := &t.routes[i]
		if (r.method == method || r.method == "*") && r.matches(path) {
			return r.filled(path)
		}
	}
	return nil
}

// matches walks path's segments against the template without splitting it.
func (r *compiledRoute) matches(path string) bool {
	rest := path
	for i, seg := range r.segments {
		value, tail, more := strings.Cut(rest, "/")
		last := i == len(r.segments)-1
		if more == last { // path has fewer or more segments than the template
			return false
		}
		if _, isParam := paramName(seg); isParam {
			if value == "" {
				return false
			}
		} else if value != seg {
			return false
		}
		rest = tail
	}
	return true
}

// filled is the route with its resource's parameters replaced by the path's
// segments.
func (r *compiledRoute) filled(path string) *ast.Term {
	if len(r.fill) == 0 {
		return ast.NewTerm(r.route)
	}
	segments := strings.Split(path, "/")
	resource := r.route.Get(ast.InternedTerm("resource")).Value.(ast.Object).Copy()
	for _, f := range r.fill {
		resource.Insert(f.key, ast.StringTerm(segments[f.segment]))
	}
	route := r.route.Copy()
	route.Insert(ast.InternedTerm("resource"), ast.NewTerm(resource))
	return ast.NewTerm(route)
}

// checkRoutes refuses a policy set whose data.warden.routes is not a route
// table warden.route can match against, so that a mistake in the table is
// an error when it is written rather than routes that silently never match.
func checkRoutes(ctx context.Context, store storage.Store) error {
	v, err := storage.ReadOne(ctx, store, routesPath)
	if storage.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	value, ok := v.(ast.Value)
	if !ok {
		if value, err = ast.InterfaceToValue(v); err != nil {
			return err
		}
	}
	if _, err := compileRoutes(value); err != nil {
		return &PolicyError{Problems: []Problem{{Message: "data.warden.routes: " + err.Error()}}}
	}
	return nil
}
