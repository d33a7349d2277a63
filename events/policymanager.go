package events

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/wardenauthz/warden/decision"
)

// The sources a PolicyManager follows (policies.source).
const (
	// PolicySourceNATS: the set lives in the WARDEN_POLICIES bucket and is
	// changed through the admin API (Propose).
	PolicySourceNATS = "nats"
	// PolicySourceDir: the set is the files of policies.dir, changed by
	// whatever deploys that directory (GitOps); the API cannot change it.
	PolicySourceDir = "dir"
)

var (
	// ErrReadOnly is returned by Propose when the policy set comes from a
	// directory (policies.source: dir): it changes where the directory is
	// deployed from, not over the API (HTTP 409).
	ErrReadOnly = errors.New("the policy set is read-only: it is read from policies.dir (policies.source: dir)")
	// ErrPolicyNotReady is wrapped by PolicyManager.Ready's error.
	ErrPolicyNotReady = errors.New("policy set not ready")
)

// DefaultPolicyPollInterval is how often a directory source is read by default.
const DefaultPolicyPollInterval = 2 * time.Second

// PolicyManagerOptions are the optional settings of a PolicyManager. The zero
// value uses the defaults.
type PolicyManagerOptions struct {
	// PollInterval is how often a directory source is read (dir only).
	// Default DefaultPolicyPollInterval.
	PollInterval time.Duration
	// SeedAuthor and SeedMessage are stored with a set seeded into an
	// empty bucket (nats only). Defaults "warden" and "initial policy set".
	SeedAuthor, SeedMessage string
	// Logger receives activations, refusals and read failures. Default:
	// discarded.
	Logger *slog.Logger
}

func (o *PolicyManagerOptions) setDefaults() error {
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPolicyPollInterval
	}
	if o.PollInterval < 0 {
		return fmt.Errorf("events: policy manager: poll interval %v must be positive", o.PollInterval)
	}
	if o.SeedAuthor == "" {
		o.SeedAuthor = "warden"
	}
	if o.SeedMessage == "" {
		o.SeedMessage = "initial policy set"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// PolicyManager keeps one replica's active policy set — its decision.Engine's
// — in step with the set's source: the policy bucket (NewNATSPolicies) or a
// directory (NewDirPolicies). It is the only thing that should Reload or
// Activate that engine.
//
// Every set the source offers is checked whole (compiled, its tests run) by
// the engine before it becomes active. A set that fails keeps the active one
// answering; the refusal is recorded with its problems and failing tests
// (Status.LastError) until a later set is activated. Sets are applied one at
// a time, in the order the source produced them.
//
// A PolicyManager is safe for concurrent use.
type PolicyManager struct {
	source string
	engine *decision.Engine
	store  *PolicyStore // nats only
	dir    string       // dir only
	opts   PolicyManagerOptions
	log    *slog.Logger

	stop      context.CancelFunc
	closeOnce sync.Once
	watch     *PolicyWatch  // nats: follows the bucket
	done      chan struct{} // dir: closed when the poll loop ends

	// applyMu orders applying sets: the watch or poll loop and Reload.
	applyMu sync.Mutex
	latest  *PolicySet // nats: the last set the watch delivered; guarded by applyMu

	mu       sync.Mutex
	st       policyState
	proposed *decision.Candidate // checked by Propose; activated when the watch delivers its revision
}

// policyState is what Status and Ready report; guarded by PolicyManager.mu.
type policyState struct {
	// seen: the source's set has been applied (or refused) once.
	seen bool
	// fromSource: the active set is one the source offered (now or
	// earlier), not only the engine's initial set.
	fromSource bool
	stored     string // revision of the source's newest set
	storedKV   uint64
	lastErr    *PolicyRefusal
	reloads    uint64
	refusals   uint64
}

// NewNATSPolicies returns a manager that keeps engine in step with the set
// stored in store (policies.source: nats).
//
// If the bucket holds no set, it stores seed (the files of policies.dir or
// the shipped policies, as PolicySetFromFS reads them) after checking it
// with engine.Check; when several replicas seed at once exactly one set is
// stored and the others follow it. A nil seed leaves an empty bucket for
// another replica or an admin to fill. A seed that does not pass its checks
// is an error: nothing is stored.
//
// engine was created by the caller from some initial set, usually seed; it
// keeps answering with it until the watch delivers the stored set (at once,
// when the watch starts), which the manager then checks and activates: the
// replica converges on the bucket, whatever it started with. Until that
// first delivery has been applied, Ready reports not ready.
//
// ctx bounds the setup only (reading and seeding the bucket, starting the
// watch); the manager runs until Close.
func NewNATSPolicies(ctx context.Context, store *PolicyStore, engine *decision.Engine, seed fs.FS, opts PolicyManagerOptions) (*PolicyManager, error) {
	if store == nil || engine == nil {
		return nil, errors.New("events: policy manager: needs a policy store and an engine")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	m := &PolicyManager{
		source: PolicySourceNATS, engine: engine, store: store, opts: opts,
		log: opts.Logger.With("policy_source", PolicySourceNATS, "bucket", store.Bucket()),
	}

	cur, err := store.Current(ctx)
	var invalid error // the stored value is not a policy set
	switch {
	case err == nil:
	case errors.Is(err, ErrNoPolicySet):
		if seed != nil {
			if err := m.seed(ctx, seed); err != nil {
				return nil, err
			}
		}
	case errors.Is(err, ErrInvalidPolicySet):
		invalid = err
	default:
		return nil, err
	}

	runCtx, stop := context.WithCancel(context.Background())
	m.stop = stop
	if invalid != nil {
		// The watch skips a value that is not a set and would never deliver
		// it; record it as refused now, so that Status says why the replica
		// is not on the stored set.
		m.applyMu.Lock()
		m.refuseInvalid(runCtx, cur.KVRevision, invalid)
		m.applyMu.Unlock()
	}
	w, err := store.Watch(runCtx, func(set PolicySet) {
		m.applyMu.Lock()
		defer m.applyMu.Unlock()
		m.latest = &set
		_ = m.apply(runCtx, set, false) // recorded in Status
	})
	if err != nil {
		stop()
		return nil, err
	}
	m.watch = w
	return m, nil
}

// seed stores the set in seed if the bucket is still empty.
func (m *PolicyManager) seed(ctx context.Context, seed fs.FS) error {
	set, err := PolicySetFromFS(seed, ".")
	if err != nil {
		return fmt.Errorf("events: policy seed: %w", err)
	}
	if set.Revision != m.engine.Revision() {
		// The engine checked its own initial set; any other is checked
		// here, so that a broken seed never reaches the bucket. If it is
		// stored, the watch delivers it and apply activates this
		// candidate rather than checking the same files again.
		cand, err := m.engine.Check(ctx, set.FS())
		if err != nil {
			return fmt.Errorf("events: policy seed: %w", err)
		}
		m.proposed = cand // no other goroutine runs yet
	}
	set.Author, set.Message = m.opts.SeedAuthor, m.opts.SeedMessage
	stored, created, err := m.store.Seed(ctx, set)
	if err != nil {
		return err
	}
	if created {
		m.log.Info("events: seeded the empty policy bucket", "revision", stored.Revision, "kv_revision", stored.KVRevision, "files", len(stored.Files))
	} else {
		m.log.Info("events: the policy bucket was seeded by another replica", "revision", stored.Revision, "kv_revision", stored.KVRevision)
	}
	return nil
}

// Source is where the set comes from: PolicySourceNATS or PolicySourceDir.
func (m *PolicyManager) Source() string { return m.source }

// Current returns the source's set: the stored one, with the KVRevision to
// pass to Propose, or the directory's files as they are now (KVRevision 0).
// Errors are those of PolicyStore.Current (ErrNoPolicySet, a wrapped
// ErrInvalidPolicySet) or of reading the directory.
func (m *PolicyManager) Current(ctx context.Context) (PolicySet, error) {
	if m.source == PolicySourceDir {
		return PolicySetFromFS(dirFS(m.dir), ".")
	}
	return m.store.Current(ctx)
}

// Propose checks files as a whole new set with the engine — compiled, its
// tests run, with the settings every replica uses — and only then stores it
// in place of the set at KV revision expected (see PolicyStore.Put). The
// replicas, this one included, activate it when their watch delivers it;
// Propose does not wait for that (Status and the fleet's heartbeats show
// it).
//
// Errors: ErrReadOnly for a directory source; one wrapping
// ErrInvalidPolicySet for files that cannot be stored (names, count, size),
// before anything is compiled; a *decision.PolicyError (errors.As) with the
// problems and failing tests of a set that does not pass, in which case
// nothing is stored; ErrConflict when the stored set is no longer the one at
// expected; otherwise NATS errors.
func (m *PolicyManager) Propose(ctx context.Context, files map[string][]byte, expected uint64, author, message string) (PolicySet, error) {
	if m.source != PolicySourceNATS {
		return PolicySet{}, ErrReadOnly
	}
	set := PolicySet{Files: make(map[string][]byte, len(files)), Author: author, Message: message}
	for name, data := range files {
		set.Files[name] = bytesClone(data) // the caller may reuse its buffers
	}
	// What Put would refuse is refused before the costlier check.
	if _, _, err := m.store.encode(set); err != nil {
		return PolicySet{}, err
	}
	cand, err := m.engine.Check(ctx, set.FS())
	if err != nil {
		return PolicySet{}, fmt.Errorf("events: propose: %w", err)
	}
	// Kept before Put so that the watch, which may deliver the set before
	// Put returns, finds it: this replica then activates the candidate
	// instead of checking the same files twice.
	m.mu.Lock()
	m.proposed = cand
	m.mu.Unlock()
	stored, err := m.store.Put(ctx, set, expected)
	if err != nil {
		m.mu.Lock()
		if m.proposed == cand {
			m.proposed = nil
		}
		m.mu.Unlock()
		return PolicySet{}, err
	}
	m.log.Info("events: policy set stored", "revision", stored.Revision, "kv_revision", stored.KVRevision, "author", author)
	return stored, nil
}

func bytesClone(b []byte) []byte { return append([]byte{}, b...) }

// Reload applies the source's newest set again, checking it even if it was
// refused before (a test that timed out under load may pass now); cmd calls
// it on SIGHUP. A directory is read afresh; in nats mode the set the watch
// delivered last is used (the watch already follows the bucket). It returns
// nil when the source's set is active afterwards, otherwise why not
// (a *decision.PolicyError for a refused set).
func (m *PolicyManager) Reload(ctx context.Context) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	if m.source == PolicySourceDir {
		return m.pollDir(ctx, true)
	}
	if m.latest == nil {
		return fmt.Errorf("%w: no policy set delivered from bucket %s yet", ErrPolicyNotReady, m.store.Bucket())
	}
	return m.apply(ctx, *m.latest, true)
}

// apply makes set the active set if it passes, or records why not. force
// checks a set again that was refused already. The caller holds applyMu.
func (m *PolicyManager) apply(ctx context.Context, set PolicySet, force bool) error {
	m.mu.Lock()
	m.st.seen = true
	m.st.stored, m.st.storedKV = set.Revision, set.KVRevision
	var refused *PolicyRefusal
	if e := m.st.lastErr; e != nil && e.Revision == set.Revision {
		refused = e
	}
	cand := m.proposed
	if cand != nil && cand.Revision == set.Revision {
		m.proposed = nil
	} else {
		cand = nil
	}
	m.mu.Unlock()

	if set.Revision == m.engine.Revision() {
		m.converged()
		return nil
	}
	if refused != nil && !force {
		// The same files again (a re-put): they would fail the same way.
		return refused.Err
	}
	var (
		rev string
		err error
	)
	if cand != nil {
		_, err = m.engine.Activate(cand)
		rev = cand.Revision
	} else {
		rev, err = m.engine.Reload(ctx, set.FS())
	}
	if err != nil {
		if ctx.Err() != nil {
			return err // closing, or the caller gave up: not the set's fault
		}
		m.refuse(set, err)
		if m.source == PolicySourceNATS {
			m.fallBack(ctx, set.Revision)
		}
		return err
	}
	if rev != set.Revision {
		// PolicyRevision and the engine hash the same files the same way;
		// if they ever disagree, the replica would look unconverged for
		// ever. Say so loudly rather than hide it.
		m.log.Error("events: the engine's revision of a policy set differs from the store's", "store_revision", set.Revision, "engine_revision", rev)
	}
	m.mu.Lock()
	m.st.reloads++
	m.st.fromSource = true
	m.st.lastErr = nil
	m.mu.Unlock()
	m.log.Info("events: policy set activated", "revision", rev, "kv_revision", set.KVRevision, "author", set.Author, "message", set.Message)
	return nil
}

// converged records that the source's set is the active one.
func (m *PolicyManager) converged() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.fromSource = true
	m.st.lastErr = nil
}

// refuse records that set did not pass. err is usually a
// *decision.PolicyError.
func (m *PolicyManager) refuse(set PolicySet, err error) {
	r := newPolicyRefusal(set.Revision, set.KVRevision, err)
	m.mu.Lock()
	m.st.refusals++
	m.st.lastErr = r
	m.mu.Unlock()
	m.log.Warn("events: policy set refused; keeping the active set",
		"revision", set.Revision, "kv_revision", set.KVRevision, "active_revision", m.engine.Revision(),
		"problems", len(r.Problems), "failing_tests", len(r.FailingTests), "error", err)
}

// refuseInvalid records a stored value that is not a policy set at all.
func (m *PolicyManager) refuseInvalid(ctx context.Context, kv uint64, err error) {
	m.mu.Lock()
	m.st.seen = true
	m.st.stored, m.st.storedKV = "", kv
	m.mu.Unlock()
	m.refuse(PolicySet{KVRevision: kv}, err)
	m.fallBack(ctx, "")
}

// fallBack runs when the stored set was refused on a replica that has never
// activated a set from the bucket: its engine still has the caller's initial
// set, which need not be what the rest of the fleet runs. It activates the
// newest earlier set in the bucket's history that passes — the set the other
// replicas kept when they refused the same one. The caller holds applyMu.
func (m *PolicyManager) fallBack(ctx context.Context, refused string) {
	m.mu.Lock()
	from := m.st.fromSource
	m.mu.Unlock()
	if from {
		return
	}
	sets, err := m.store.History(ctx)
	if err != nil {
		m.log.Warn("events: cannot read the policy history to fall back on", "error", err)
		return
	}
	for _, set := range sets {
		if set.Revision == refused {
			continue
		}
		if set.Revision != m.engine.Revision() {
			if _, err := m.engine.Reload(ctx, set.FS()); err != nil {
				m.log.Debug("events: an earlier policy set does not pass either", "revision", set.Revision, "kv_revision", set.KVRevision, "error", err)
				continue
			}
			m.mu.Lock()
			m.st.reloads++
			m.mu.Unlock()
		}
		m.mu.Lock()
		m.st.fromSource = true
		m.mu.Unlock()
		m.log.Warn("events: the stored policy set was refused; running the newest earlier set that passes",
			"revision", set.Revision, "kv_revision", set.KVRevision, "refused_revision", refused)
		return
	}
	m.log.Error("events: the stored policy set was refused and no earlier stored set passes; keeping the initial set, not ready",
		"active_revision", m.engine.Revision())
}

// Close stops following the source and waits for a set being checked to
// finish or be abandoned. The engine keeps its active set.
func (m *PolicyManager) Close() {
	m.closeOnce.Do(func() {
		m.stop()
		if m.watch != nil {
			m.watch.Stop()
		}
		if m.done != nil {
			<-m.done
		}
	})
}
