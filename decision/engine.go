package decision

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/wardenauthz/warden/claims"
)

// Options are the optional settings of an Engine. The zero value is valid:
// every field has a default.
type Options struct {
	// Entrypoint is the package path of the decision document, e.g.
	// "warden/authz" for data.warden.authz. Default "warden/authz".
	Entrypoint string

	// EvalTimeout bounds one policy evaluation; a slower one denies with
	// policy_timeout. Default 50ms.
	EvalTimeout time.Duration

	// Revocations is consulted before the policy on every decision. Default:
	// nothing is revoked.
	Revocations Revocations

	// Now is the clock handed to Revocations. Default time.Now.
	Now func() time.Time

	// DecisionCacheSize is how many policy results the engine reuses per
	// policy set (see memo). Zero turns the cache off; a set that calls a
	// non-deterministic built-in never has one.
	DecisionCacheSize int
	// Logger receives the causes behind policy_error and policy_timeout
	// decisions and policy set changes. Default: discarded. Like every
	// Warden package, the engine writes to the process's log only through
	// the logger its caller passes (warden serve passes its own).
	Logger *slog.Logger

	// AllowNetworkBuiltins lets policies call the restricted built-ins
	// (http.send, net.lookup_ip_addr, opa.runtime; see RestrictedBuiltins).
	// Off, a set calling one is refused at compile time.
	AllowNetworkBuiltins bool
}

// Defaults of Options (policies.entrypoint, policies.eval_timeout).
const (
	DefaultEntrypoint  = "warden/authz"
	DefaultEvalTimeout = 50 * time.Millisecond
)

// Engine decides over verified claims with the active policy set. It is safe
// for concurrent use; Reload swaps the set without blocking Decide. Create
// one with NewEngine.
type Engine struct {
	checker     checker // how every set this engine activates is checked
	timeout     time.Duration
	revocations Revocations
	now         func() time.Time
	log         *slog.Logger

	set      atomic.Pointer[policySet]
	reloadMu sync.Mutex // orders Reloads and Activates so that the last one wins

	// tokens holds input.token, built once for each verified token
	// recently decided, by claims pointer: the verifier hands every request
	// presenting a token the same *claims.Claims, whose claims never
	// change, so rebuilding the term on every decision (a few microseconds,
	// dozens of allocations) was waste. Shared between sets: the term
	// depends on the token alone.
	tokens *lru.Cache[*claims.Claims, *ast.Term]
}

// tokenTermsSize bounds Engine.tokens: one entry for each of that many
// tokens decided recently, about 1 KB each for a typical token.
const tokenTermsSize = 10000

// NewEngine loads and compiles the policy set in fsys (Rego modules and
// JSON/YAML data files, laid out as for `opa run`), runs its *_test.rego
// tests, and returns an engine ready to decide. A mistake in the set or a
// failing test is reported as a *PolicyError (see Check).
func NewEngine(ctx context.Context, fsys fs.FS, opts Options) (*Engine, error) {
	chk, err := newChecker(opts.Entrypoint, opts.AllowNetworkBuiltins, opts.DecisionCacheSize)
	if err != nil {
		return nil, err
	}
	if opts.EvalTimeout == 0 {
		opts.EvalTimeout = DefaultEvalTimeout
	}
	if opts.EvalTimeout < 0 {
		return nil, fmt.Errorf("eval timeout %v must be positive", opts.EvalTimeout)
	}
	if opts.Revocations == nil {
		opts.Revocations = noRevocations{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}

	tokens, err := lru.New[*claims.Claims, *ast.Term](tokenTermsSize)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		checker:     chk,
		timeout:     opts.EvalTimeout,
		revocations: opts.Revocations,
		now:         opts.Now,
		log:         opts.Logger,
		tokens:      tokens,
	}
	cand, err := e.Check(ctx, fsys)
	if err != nil {
		return nil, err
	}
	e.set.Store(cand.set)
	e.log.Info("policy set loaded", "revision", cand.Revision, "files", len(cand.Files),
		"tests_passed", cand.Tests.Counts.Pass, "entrypoint", chk.entry.String())
	return e, nil
}

// Reload checks the policy set in fsys as Check does — compiled whole, its
// tests run — and, only if that fully succeeds, makes it the active set and
// returns its revision. On error the previous set stays active; mistakes in
// the set and failing tests are reported as a *PolicyError whose message
// locates each problem as file:row:col.
func (e *Engine) Reload(ctx context.Context, fsys fs.FS) (revision string, err error) {
	// The lock is held across the check so that of two Reloads the one
	// called last wins, even if the other's set takes longer to check.
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()

	cand, err := e.Check(ctx, fsys)
	if err != nil {
		e.log.Warn("policy set rejected; keeping the active one", "active_revision", e.Revision(), "error", err)
		return "", err
	}
	e.activate(cand)
	return cand.Revision, nil
}

// Entrypoint is the package of the decision document, e.g.
// "data.warden.authz": the package whose allow rule decides.
func (e *Engine) Entrypoint() string { return e.checker.entry.String() }

// Revision identifies the active policy set by a hash of its files.
func (e *Engine) Revision() string {
	return e.set.Load().revision
}

// Decide answers whether in may be done. It never fails: an error, an
// undefined or malformed decision document and a timeout all deny, with the
// reason saying which (policy_error, policy_timeout); the cause goes to the
// log. The decision carries the revision of the one policy set that made it.
//
// The token's revocation state is checked first; a revoked or stale token is
// denied with the ledger's reason without consulting the policy, and
// Refresh is set exactly when that reason is token_stale.
func (e *Engine) Decide(ctx context.Context, in Input) Decision {
	set := e.set.Load() // one set decides, whatever Reload does meanwhile
	d := Decision{Revision: set.revision}
	if in.Claims == nil && in.Subject == "" {
		e.log.Error("decision without claims or subject", "action", in.Action)
		d.Reason = ReasonPolicyError
		return d
	}
	if reason, revoked := e.revokedInput(&in); revoked {
		d.Reason = reason
		d.Refresh = reason == ReasonTokenStale
		return d
	}

	var key memoKey
	memoised := false
	if set.memo != nil {
		var v verdict
		var hit bool
		if v, hit, key, memoised = set.memo.find(&in, e.tokenTerm); hit {
			return v.apply(d)
		}
	}

	if set.unread.authzen {
		in.AuthZEN = nil // the set never reads it: do not build it
	}
	input, err := buildInput(&in, e.tokenTerm(in.Claims))
	if err != nil {
		e.log.Warn("policy input rejected", "subject", in.subject(), "action", in.Action, "error", err)
		d.Reason = ReasonPolicyError
		return d
	}
	r, err := e.eval(ctx, set.authz, input, nil, set.offload)
	if err == nil {
		var v verdict
		if v, err = readDecision(r); err == nil {
			if memoised {
				set.memo.store(key, &in, e.tokenTerm, v)
			}
			return v.apply(d)
		}
	}
	d.Reason = e.failure(err, set.revision, in.subject(), in.Action)
	return d
}

// DecisionCacheStats reports the policy results reused from, and missing
// in, the active set's decision cache (zero when it has none).
func (e *Engine) DecisionCacheStats() (hits, misses uint64) {
	if m := e.set.Load().memo; m != nil {
		return m.hits.Load(), m.misses.Load()
	}
	return 0, 0
}

// Admit decides whether the holder of c may make the admin API request
// action ("<METHOD> <route pattern>") on resource (what the request
// touches, e.g. {"type":"policy_file","id":"admin.rego",
// "package":"warden.admin"}; nil for none), by the policy
// data.warden.admin.allow, which sees them as input.action and
// input.resource. It returns ReasonAllowed only for a result of exactly
// true; ReasonPolicyDenied otherwise. A revoked token is not admitted
// either, and gets its revocation reason (token_revoked, token_stale,
// subject_disabled): demoting an admin must take effect as fast as any
// other change, and say why. The error is non-nil when the policy could
// not be evaluated.
func (e *Engine) Admit(ctx context.Context, c *claims.Claims, action string, resource map[string]any) (Reason, error) {
	if c == nil {
		return ReasonPolicyError, errNoClaims
	}
	if reason, revoked := e.revoked(c); revoked {
		e.log.Info("admin token refused", "subject", c.Subject, "action", action, "reason", reason)
		return reason, nil
	}
	set := e.set.Load()
	input, err := buildInput(&Input{Claims: c, Action: action, Resource: resource}, e.tokenTerm(c))
	if err != nil {
		return ReasonPolicyError, fmt.Errorf("admin policy input: %w", err)
	}
	r, err := e.eval(ctx, set.admin, input, nil, set.offload)
	if errors.Is(err, errUndefined) {
		return ReasonPolicyDenied, nil
	}
	if err != nil {
		return failureReason(err), fmt.Errorf("admin policy (revision %s): %w", set.revision, err)
	}
	if len(r.Expressions) != 1 {
		return ReasonPolicyError, fmt.Errorf("admin policy (revision %s): %d expressions, want 1", set.revision, len(r.Expressions))
	}
	t, ok := r.Expressions[0].Value.(*ast.Term)
	if !ok {
		return ReasonPolicyError, fmt.Errorf("admin policy (revision %s): result is %T", set.revision, r.Expressions[0].Value)
	}
	if b, ok := t.Value.(ast.Boolean); ok && bool(b) {
		return ReasonAllowed, nil
	}
	return ReasonPolicyDenied, nil
}

// tokenTerm is input.token for c, built at most once while it is among
// the tokens recently decided; nil when c is nil or its claims do not
// convert (buildInput then reports why).
func (e *Engine) tokenTerm(c *claims.Claims) *ast.Term {
	if c == nil {
		return nil
	}
	if t, ok := e.tokens.Get(c); ok {
		return t
	}
	t, err := newTokenTerm(c)
	if err != nil {
		return nil
	}
	e.tokens.Add(c, t)
	return t
}

// revokedInput asks the revocation ledger about in's token, or about its
// asserted subject. An asserted subject has no token to be stale or
// revoked: the caller asserts it as it is now, from its own directory. Only
// what concerns the subject itself applies to it: subject_disabled, and
// revocation_state_stale while the ledger cannot be trusted.
func (e *Engine) revokedInput(in *Input) (Reason, bool) {
	if in.Claims != nil {
		return e.revoked(in.Claims)
	}
	now := e.now()
	switch r := e.revocations.Check(&claims.Claims{Subject: in.Subject, IssuedAt: now}, now); r {
	case ReasonSubjectDisabled, ReasonRevocationStateStale:
		return r, true
	default:
		return "", false
	}
}

// revoked asks the revocation ledger about c. A ledger answering "allowed"
// is broken; that denies too.
func (e *Engine) revoked(c *claims.Claims) (Reason, bool) {
	switch r := e.revocations.Check(c, e.now()); r {
	case "":
		return "", false
	case ReasonAllowed:
		e.log.Error("revocation check answered allowed; denying", "subject", c.Subject)
		return ReasonPolicyError, true
	default:
		return r, true
	}
}

// eval evaluates a prepared query over input within the engine's timeout
// and returns its only result, whose values are OPA terms. Explain passes a
// tracer; decisions pass nil.
//
// OPA checks for cancellation between evaluation steps, not inside one. A
// step that computes is bounded by what reaches it (limits.go: the numbers
// given to built-ins, the request's size), so the evaluation runs on the
// caller's goroutine and stops at the first check after the deadline. A
// step that waits on the network (http.send, net.lookup_ip_addr, allowed
// by policies.allow_network_builtins) is not, so with offload the
// evaluation runs on an evaluator goroutine and the caller is answered at
// the deadline (plus abandonGrace) whatever it is doing, with an error
// wrapping errAbandoned. Offloading every decision would cost the handoff
// between threads on each: measured at twice the decision's time.
func (e *Engine) eval(ctx context.Context, q rego.PreparedEvalQuery, input ast.Value, tracer topdown.QueryTracer, offload bool) (rego.Result, error) {
	d := startDeadline(ctx, e.timeout, offload)
	defer d.stop()
	var o evalOutcome
	if offload {
		o = evalOffloaded(d, evalJob{ctx: ctx, q: q, input: input, d: d, tracer: tracer})
	} else {
		o.rs, o.err = evaluate(ctx, q, input, d, tracer)
	}
	if o.err != nil {
		return rego.Result{}, e.evalError(ctx, d, o.err)
	}
	return onlyResult(o.rs)
}

// evaluate runs one evaluation under d.
func evaluate(ctx context.Context, q rego.PreparedEvalQuery, input ast.Value, d *deadline, tracer topdown.QueryTracer) (rego.ResultSet, error) {
	opts := [...]rego.EvalOption{
		rego.EvalParsedInput(input),
		rego.EvalExternalCancel(d),
		rego.EvalMetrics(metrics.NoOp()),
		rego.EvalGenerateJSON(rawTerm),
		nil, // the tracer's, when there is one
	}
	n := len(opts) - 1
	if tracer != nil {
		opts[n] = rego.EvalQueryTracer(tracer)
		n++
	}
	return q.Eval(ctx, opts[:n]...)
}

// evalOffloaded runs job on an evaluator and waits for it until d's
// deadline, plus abandonGrace for OPA to notice (it usually does between
// two steps, within microseconds, and then returns what it has: Explain's
// trace up to the deadline).
func evalOffloaded(d *deadline, job evalJob) evalOutcome {
	w := evaluatorPool.get()
	w.jobs <- job
	select {
	case o := <-w.out:
		evaluatorPool.put(w)
		return o
	case <-d.done:
	}
	grace := time.NewTimer(abandonGrace)
	defer grace.Stop()
	select {
	case o := <-w.out:
		evaluatorPool.put(w)
		return o
	case <-grace.C:
		w.abandon()
		return evalOutcome{err: errAbandoned}
	}
}

// abandonGrace is how long past the deadline eval waits for an evaluation
// to notice it, before answering without it.
const abandonGrace = 20 * time.Millisecond

// evalError says why an evaluation under d failed: the engine's timeout,
// the caller's context, or the policy itself.
func (e *Engine) evalError(ctx context.Context, d *deadline, err error) error {
	switch {
	case d.timedOut.Load():
		return fmt.Errorf("%w after %v: %w", errTimeout, e.timeout, err)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	default:
		return err
	}
}

// failure logs why the policy could not decide and returns the reason.
func (e *Engine) failure(err error, revision, subject, action string) Reason {
	reason := failureReason(err)
	e.log.Error("policy failed; denying", "reason", reason, "revision", revision,
		"subject", subject, "action", action, "error", err)
	return reason
}

// failureReason is the reason a decision the policy could not make denies
// with. The caller's own deadline passing counts as a timeout too.
func failureReason(err error) Reason {
	if errors.Is(err, errTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return ReasonPolicyTimeout
	}
	return ReasonPolicyError
}

// noRevocations is the default ledger: nothing is revoked.
type noRevocations struct{}

func (noRevocations) Check(*claims.Claims, time.Time) Reason { return "" }
