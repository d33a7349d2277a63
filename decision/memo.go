package decision

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/wardenauthz/warden/claims"
)

// DefaultDecisionCacheSize is the number of policy results an engine keeps
// per policy set unless Options.DecisionCacheSize says otherwise. With the
// shipped policy a user has about three entries (reads by the owner or by
// another, approvals: keyplan.go), so this keeps the decisions of more users
// than the token cache keeps tokens (claims.DefaultCacheSize).
const DefaultDecisionCacheSize = 200000

// memo remembers the policy's verdicts for one policy set.
//
// A deterministic policy is a pure function of its input and data, and both
// are fixed for a key: the data belongs to the set (a reload builds a new set
// and a new memo), and the input is made of the verified claims, the action,
// the resource, the context and the request. So a verdict can be reused for
// as long as the set is active. The revocation check is not memoised: it runs
// before the memo on every decision. A set that calls a non-deterministic
// built-in (time.now_ns, http.send, rand.intn, ...) gets no memo at all.
type memo struct {
	verdicts     *lru.Cache[memoKey, verdict]
	hits, misses atomic.Uint64
	// unread are the parts of input.request the set never reads
	// (readsInput), left out of the key: behind a proxy the headers
	// differ on every request (x-request-id, x-forwarded-for) and the
	// query often does, so keeping them would make most proxied decisions
	// misses.
	unread unreadInput
	// plan is what of the resource and context the key holds; nil for
	// all of them.
	plan *keyPlan
	// late says that the plan keys some values in a second step, once the
	// answer is known (keyValue.late).
	late bool
}

// unreadInput says which parts of the input a set never reads: of
// input.request, and input.authzen.
type unreadInput struct{ headers, query, host, authzen bool }

// unreadParts finds the parts of the input that no module of the compiled
// set could read.
func unreadParts(c *ast.Compiler) unreadInput {
	return unreadInput{
		headers: !readsInput(c, "request", "headers"),
		query:   !readsInput(c, "request", "query"),
		host:    !readsInput(c, "request", "host"),
		authzen: !readsInput(c, "authzen"),
	}
}

// memoKey identifies a policy input. The claims are identified by pointer:
// the verifier hands out one *claims.Claims per verified token (its cache
// shares it between requests), and the key holds the pointer, so it cannot be
// reused for other claims while the entry lives. A token verified afresh
// gets a new pointer and only misses.
type memoKey struct {
	claims *claims.Claims
	rest   string // action, resource, context and request, canonical
	second bool   // rest ends with the plan's late values (memo.find)
}

func newMemo(size int, unread unreadInput, plan *keyPlan) *memo {
	if size <= 0 {
		return nil
	}
	c, err := lru.New[memoKey, verdict](size)
	if err != nil {
		return nil // only for size <= 0, excluded above
	}
	return &memo{verdicts: c, unread: unread, plan: plan, late: plan != nil && plan.late()}
}

// key builds the memo key of in. encoding/json writes map keys in sorted
// order, which makes the encoding canonical for equal objects. token gives
// input.token for claims, for a plan that compares a part of it.
func (m *memo) key(in *Input, token func(*claims.Claims) *ast.Term) (memoKey, bool) {
	var b strings.Builder
	if in.Claims == nil { // an asserted subject: its name, where a token is its claims
		b.WriteString(strconv.Quote(in.Subject))
	}
	b.WriteString(in.Action)
	var request, authzen any // nil, not a nil pointer: written as null without encoding
	if in.Request != nil {
		request = in.Request
	}
	if in.Request != nil && (m.unread.headers || m.unread.query || m.unread.host) {
		r := *in.Request
		if m.unread.headers {
			r.Headers = nil
		}
		if m.unread.query {
			r.Query = nil
		}
		if m.unread.host {
			r.Host = ""
		}
		request = r
	}
	if in.AuthZEN != nil && !m.unread.authzen {
		authzen = in.AuthZEN
	}
	parts := []any{in.Resource, in.Context, request, authzen}
	if m.plan != nil {
		if !m.plan.writeKey(&b, in, token) {
			return memoKey{}, false
		}
		parts = parts[2:]
	}
	for _, v := range parts {
		b.WriteByte(0)
		if v == nil { // the decision API's request and AuthZEN entities
			b.WriteString("null")
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return memoKey{}, false
		}
		b.Write(raw)
	}
	return memoKey{claims: in.Claims, rest: b.String()}, true
}

// find looks up the verdict for in. It returns the key to store an
// evaluation's verdict under (store), and false when in cannot be keyed.
//
// With late values (keyValue.late) a key has two steps. The first leaves
// them out: the allow of every input with that first step is the same,
// because no residual body that decides allow reads them. Its entry is
// the whole verdict when that answer reads none of them, and otherwise
// only the answer (verdict.partial), which says how to write the second
// step: a policy that quotes the order's id in its denials keys the id for
// the denied and shares one entry for the allowed.
func (m *memo) find(in *Input, token func(*claims.Claims) *ast.Term) (v verdict, hit bool, k memoKey, ok bool) {
	if k, ok = m.key(in, token); !ok {
		return verdict{}, false, k, false
	}
	v, hit = m.verdicts.Get(k)
	if hit && v.partial {
		if k, _, ok = m.second(k, in, token, v.allow); !ok {
			return verdict{}, false, k, false
		}
		v, hit = m.verdicts.Get(k)
	}
	if hit {
		m.hits.Add(1)
	} else {
		m.misses.Add(1)
	}
	return v, hit, k, true
}

// second is k with its second step for in, whose answer is allow, and
// whether that answer reads a late value; false when one cannot be keyed.
func (m *memo) second(k memoKey, in *Input, token func(*claims.Claims) *ast.Term, allow bool) (memoKey, bool, bool) {
	var b strings.Builder
	b.WriteString(k.rest)
	reads, ok := m.plan.writeLate(&b, in, token, allow)
	return memoKey{claims: k.claims, rest: b.String(), second: true}, reads, ok
}

// store remembers v, the verdict evaluated for in, under k from find.
func (m *memo) store(k memoKey, in *Input, token func(*claims.Claims) *ast.Term, v verdict) {
	if m.late && !k.second {
		k2, reads, ok := m.second(k, in, token, v.allow)
		if !ok {
			return
		}
		if reads { // the first step keeps the answer, the second the verdict
			m.verdicts.Add(k, verdict{allow: v.allow, partial: true})
			k = k2
		}
	}
	m.verdicts.Add(k, v)
}

// clockDependent are built-ins that OPA does not mark Nondeterministic but
// that check a certificate chain's validity against the current time, so
// their results can change between two evaluations of the same input.
// (io.jwt.decode_verify, which checks exp against now, OPA marks itself.)
var clockDependent = map[string]bool{
	"crypto.x509.parse_and_verify_certificates":              true,
	"crypto.x509.parse_and_verify_certificates_with_options": true,
}

// nondeterministic says whether the built-in name can give two results
// for the same arguments (OPA marks these Nondeterministic) or depends on
// the clock.
func nondeterministic(name string) bool {
	b, found := ast.BuiltinMap[name]
	return found && (b.Nondeterministic || clockDependent[name])
}

// calls reports whether a module of the compiled set calls a built-in for
// which match is true.
func calls(c *ast.Compiler, match func(name string) bool) bool {
	found := false
	for _, mod := range c.Modules {
		ast.WalkTerms(mod, func(t *ast.Term) bool {
			if found {
				return true
			}
			var op ast.Ref
			switch v := t.Value.(type) {
			case ast.Call:
				if len(v) > 0 {
					op, _ = v[0].Value.(ast.Ref)
				}
			case ast.Ref:
				op = v // an operator as it appears in a call expression
			}
			if op != nil && match(op.String()) {
				found = true
			}
			return false
		})
		if found {
			return true
		}
	}
	return false
}

// readsInput reports whether a module of the compiled set, tests aside,
// could read the input document at path (e.g. "request", "headers"): a
// reference to it or below it, to one of its ancestors as a whole (input,
// input.request: walked, passed to a function, assigned), or through a key
// known only at evaluation (input[k], input.request[k]). Imports are
// resolved by the compiler, so an imported alias is seen as its reference.
func readsInput(c *ast.Compiler, path ...string) bool {
	for name, mod := range c.Modules {
		if KindOf(name) == KindTest {
			continue
		}
		found := false
		ast.WalkRefs(mod, func(r ast.Ref) bool {
			if found || !r.HasPrefix(ast.InputRootRef) {
				return found
			}
			for i, want := range path {
				if len(r) <= i+1 {
					found = true // an ancestor as a whole
					return true
				}
				s, ok := r[i+1].Value.(ast.String)
				if !ok {
					found = true // a key computed at evaluation
					return true
				}
				if string(s) != want {
					return false // another part of the input
				}
			}
			found = true
			return true
		})
		if found {
			return true
		}
	}
	return false
}
