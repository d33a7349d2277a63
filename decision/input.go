package decision

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/wardenauthz/warden/claims"
)

// Keys of the policy input (DESIGN §3). They are interned once so that
// building an input allocates only for the values that change per request.
var (
	keyToken      = ast.InternedTerm("token")
	keyClaims     = ast.InternedTerm("claims")
	keyHeader     = ast.InternedTerm("header")
	keyAlg        = ast.InternedTerm("alg")
	keyKid        = ast.InternedTerm("kid")
	keyTyp        = ast.InternedTerm("typ")
	keySubject    = ast.InternedTerm("subject")
	keyAction     = ast.InternedTerm("action")
	keyResource   = ast.InternedTerm("resource")
	keyContext    = ast.InternedTerm("context")
	keyRequest    = ast.InternedTerm("request")
	keyMethod     = ast.InternedTerm("method")
	keyPath       = ast.InternedTerm("path")
	keyQuery      = ast.InternedTerm("query")
	keyHost       = ast.InternedTerm("host")
	keyHeaders    = ast.InternedTerm("headers")
	keyAuthZEN    = ast.InternedTerm("authzen")
	keyName       = ast.InternedTerm("name")
	keyType       = ast.InternedTerm("type")
	keyID         = ast.InternedTerm("id")
	keyProperties = ast.InternedTerm("properties")
)

// commonTerms are strings nearly every input carries — JWT claim and header
// names, algorithms, the resource keys of the shipped policy — made into
// terms once. OPA interns only its own common strings; without this, each
// would cost two allocations per decision.
var commonTerms = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, s := range []string{
		"sub", "iss", "aud", "exp", "nbf", "iat", "jti", "roles", "scope", "azp", "sid", "pv",
		"JWT", "at+jwt", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
		"type", "id", "owner",
	} {
		m[s] = ast.StringTerm(s)
	}
	return m
}()

// stringTerm returns a shared term for a common or OPA-interned string and
// a new one otherwise. Sharing is safe: OPA never modifies input terms.
func stringTerm(s string) *ast.Term {
	if t, ok := commonTerms[s]; ok {
		return t
	}
	return ast.InternedTerm(s)
}

// errNoClaims is returned for an Input with neither verified claims nor an
// asserted subject: web decides token failures itself, so reaching the
// policy without either is a bug.
var errNoClaims = errors.New("input has no verified claims")

// buildInput turns in into the policy input of DESIGN §3 as an OPA value.
//
// It builds ast terms directly from the decoded JSON (json.Number, string,
// bool, nil, []any, map[string]any, ...) instead of marshalling to JSON and
// parsing it back, because this runs on every decision.
//
// token is input.token for in.Claims when the caller has it already
// (Engine.tokenTerm); nil builds it.
func buildInput(in *Input, token *ast.Term) (ast.Value, error) {
	c := in.Claims
	if c == nil && in.Subject == "" {
		return nil, errNoClaims
	}
	resource, err := objectTerm(in.Resource)
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	reqCtx, err := objectTerm(in.Context)
	if err != nil {
		return nil, fmt.Errorf("context: %w", err)
	}

	items := make([][2]*ast.Term, 0, 7)
	subject := in.Subject
	if c != nil {
		if token == nil {
			if token, err = newTokenTerm(c); err != nil {
				return nil, err
			}
		}
		items = append(items, [2]*ast.Term{keyToken, token})
		subject = c.Subject
	}
	items = append(items,
		[2]*ast.Term{keySubject, stringTerm(subject)},
		[2]*ast.Term{keyAction, stringTerm(in.Action)},
		[2]*ast.Term{keyResource, resource},
		[2]*ast.Term{keyContext, reqCtx},
	)
	if in.Request != nil {
		items = append(items, [2]*ast.Term{keyRequest, requestTerm(in.Request)})
	}
	if in.AuthZEN != nil {
		t, err := authzenTerm(in.AuthZEN)
		if err != nil {
			return nil, fmt.Errorf("authzen: %w", err)
		}
		items = append(items, [2]*ast.Term{keyAuthZEN, t})
	}
	return ast.NewObject(items...), nil
}

// authzenTerm is input.authzen.
func authzenTerm(a *AuthZEN) (*ast.Term, error) {
	subject, err := entityTerm(a.Subject)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	resource, err := entityTerm(a.Resource)
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	props, err := objectTerm(a.Action.Properties)
	if err != nil {
		return nil, fmt.Errorf("action: %w", err)
	}
	action := ast.ObjectTerm([2]*ast.Term{keyName, stringTerm(a.Action.Name)}, [2]*ast.Term{keyProperties, props})
	return ast.ObjectTerm(
		[2]*ast.Term{keySubject, subject},
		[2]*ast.Term{keyAction, action},
		[2]*ast.Term{keyResource, resource},
	), nil
}

func entityTerm(e Entity) (*ast.Term, error) {
	props, err := objectTerm(e.Properties)
	if err != nil {
		return nil, err
	}
	return ast.ObjectTerm(
		[2]*ast.Term{keyType, stringTerm(e.Type)},
		[2]*ast.Term{keyID, stringTerm(e.ID)},
		[2]*ast.Term{keyProperties, props},
	), nil
}

// newTokenTerm is input.token: the claims and the header of a verified
// token.
func newTokenTerm(c *claims.Claims) (*ast.Term, error) {
	claimsObj, err := objectTerm(c.Raw)
	if err != nil {
		return nil, fmt.Errorf("token claims: %w", err)
	}
	return ast.ObjectTerm(
		[2]*ast.Term{keyClaims, claimsObj},
		[2]*ast.Term{keyHeader, headerTerm(c.Header)},
	), nil
}

// headerTerm is input.token.header. kid and typ are left out when the token
// has none, as they are in the token itself.
func headerTerm(h claims.Header) *ast.Term {
	items := make([][2]*ast.Term, 1, 3)
	items[0] = [2]*ast.Term{keyAlg, stringTerm(h.Alg)}
	if h.Kid != "" {
		items = append(items, [2]*ast.Term{keyKid, stringTerm(h.Kid)})
	}
	if h.Typ != "" {
		items = append(items, [2]*ast.Term{keyTyp, stringTerm(h.Typ)})
	}
	return ast.ObjectTerm(items...)
}

// requestTerm is input.request, sent only by forward-auth proxies.
func requestTerm(r *Request) *ast.Term {
	return ast.ObjectTerm(
		[2]*ast.Term{keyMethod, stringTerm(r.Method)},
		[2]*ast.Term{keyPath, stringTerm(r.Path)},
		[2]*ast.Term{keyQuery, queryTerm(r.Query)},
		[2]*ast.Term{keyHost, stringTerm(r.Host)},
		[2]*ast.Term{keyHeaders, stringMapTerm(r.Headers)},
	)
}

// objectTerm converts a decoded JSON object; nil becomes {} so that policies
// can always write input.resource.owner without guarding against null.
func objectTerm(m map[string]any) (*ast.Term, error) {
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		t, err := valueTerm(v)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		items = append(items, [2]*ast.Term{stringTerm(k), t})
	}
	return ast.ObjectTerm(items...), nil
}

// queryTerm is input.request.query: each parameter's values as an array.
func queryTerm(q map[string][]string) *ast.Term {
	items := make([][2]*ast.Term, 0, len(q))
	for k, vs := range q {
		values := make([]*ast.Term, len(vs))
		for i, v := range vs {
			values[i] = stringTerm(v)
		}
		items = append(items, [2]*ast.Term{stringTerm(k), ast.ArrayTerm(values...)})
	}
	return ast.ObjectTerm(items...)
}

func stringMapTerm(m map[string]string) *ast.Term {
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		items = append(items, [2]*ast.Term{stringTerm(k), stringTerm(v)})
	}
	return ast.ObjectTerm(items...)
}

// valueTerm converts one decoded JSON value. The cases are the types
// encoding/json produces (with and without UseNumber) plus the Go types a
// caller building an Input by hand is likely to use; anything else takes
// OPA's own conversion, which marshals through JSON.
func valueTerm(v any) (*ast.Term, error) {
	switch v := v.(type) {
	case nil:
		return ast.InternedNullTerm, nil
	case string:
		return stringTerm(v), nil
	case bool:
		return ast.InternedTerm(v), nil
	case json.Number:
		if t := ast.InternedIntNumberTermFromString(string(v)); t != nil {
			return t, nil
		}
		if !isJSONNumber(v) {
			return nil, fmt.Errorf("invalid number %q", string(v))
		}
		n, err := ast.NumberChecked(string(v))
		if err != nil {
			return nil, err
		}
		return ast.NewTerm(n), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("number %v is not representable in JSON", v)
		}
		return ast.FloatNumberTerm(v), nil
	case int:
		return ast.InternedTerm(v), nil
	case int64:
		return ast.InternedTerm(v), nil
	case []any:
		terms := make([]*ast.Term, len(v))
		for i, e := range v {
			t, err := valueTerm(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			terms[i] = t
		}
		return ast.ArrayTerm(terms...), nil
	case []string:
		terms := make([]*ast.Term, len(v))
		for i, e := range v {
			terms[i] = stringTerm(e)
		}
		return ast.ArrayTerm(terms...), nil
	case map[string]any:
		return objectTerm(v)
	case map[string]string:
		return stringMapTerm(v), nil
	default:
		x, err := ast.InterfaceToValue(v)
		if err != nil {
			return nil, err
		}
		return ast.NewTerm(x), nil
	}
}

// isJSONNumber reports whether n has JSON number syntax. encoding/json only
// produces such numbers, but an Input built by hand might not, and OPA
// assumes its numbers are well formed.
func isJSONNumber(n json.Number) bool {
	s := string(n)
	return s != "" && (s[0] == '-' || '0' <= s[0] && s[0] <= '9') && json.Valid([]byte(s))
}
