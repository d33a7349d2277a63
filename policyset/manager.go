package policyset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/wardenauthz/warden/decision"
)

// ErrNotReady is wrapped by Manager.Ready's error.
var ErrNotReady = errors.New("policy set not ready")

// ManagerOptions are the optional settings of a Manager. The zero value uses
// the defaults.
type ManagerOptions struct {
	// Seed is stored into a source that holds no set yet (the first
	// replica on an empty bucket), after it passed its checks: the files
	// of policies.dir or the shipped policies. Nil leaves an empty source
	// for another replica or an admin to fill.
	Seed fs.FS
	// SeedAuthor and SeedMessage are stored with a seeded set. Defaults
	// "warden" and "initial policy set".
	SeedAuthor, SeedMessage string
	// Logger receives activations, refusals and read failures. Default:
	// discarded.
	Logger *slog.Logger
}

func (o *ManagerOptions) setDefaults() {
	if o.SeedAuthor == "" {
		o.SeedAuthor = "warden"
	}
	if o.SeedMessage == "" {
		o.SeedMessage = "initial policy set"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Manager keeps one replica's active policy set — its engine's — in step
// with the set's Source. It is the only thing that should activate sets on
// that engine.
//
// Every set the source offers is checked whole (compiled, its tests run) by
// the engine before it becomes active. A set that fails keeps the active one
// answering; the refusal is recorded with its problems and failing tests
// (Status.LastError) until a later set is activated. Sets are applied one at
// a time, in the order the source produced them.
//
// A Manager is safe for concurrent use.
type Manager struct {
	src    Source
	engine Engine
	opts   ManagerOptions
	log    *slog.Logger

	stopFollow func()
	closeOnce  sync.Once

	// applyMu orders applying sets: the source's deliveries and Reload.
	applyMu sync.Mutex

	mu       sync.Mutex
	st       state
	proposed *decision.Candidate // checked by Propose; activated when the source delivers its revision
}

// state is what Status and Ready report; guarded by Manager.mu.
type state struct {
	// seen: the source's set has been applied (or refused) once.
	seen bool
	// fromSource: the active set is one the source offered (now or
	// earlier), not only the engine's initial set.
	fromSource bool
	stored     string // revision of the source's newest set
	storedKV   uint64
	lastErr    *Refusal
	reloads    uint64
	refusals   uint64
	invalid    uint64 // values the source held that were not sets
}

// NewManager returns a manager that keeps engine in step with src.
//
// engine was created by the caller from some initial set, usually the
// source's or the seed; the manager reads the source's set before it
// returns, and checks and activates it unless it is the engine's already:
// the replica converges on its source, whatever it started with. If the
// source holds no set, opts.Seed is checked and stored (when several
// replicas seed at once exactly one set is stored and the others follow
// it); a seed that does not pass its checks is an error and nothing is
// stored.
//
// What the source holds need not pass: such a set is refused, recorded in
// Status, and — on a replica that never ran a set from its source — the
// newest earlier version in the source's history that passes is activated
// instead. Only a source that cannot be read at all is an error, and so is
// a read-only source (a directory) whose files are not a set: nothing but a
// new deployment could fix it, so the operator hears of it at once.
//
// ctx bounds the setup only; the manager follows the source until Close.
func NewManager(ctx context.Context, src Source, engine Engine, opts ManagerOptions) (*Manager, error) {
	if src == nil || engine == nil {
		return nil, errors.New("policyset: manager: needs a source and an engine")
	}
	opts.setDefaults()
	m := &Manager{
		src: src, engine: engine, opts: opts,
		log: opts.Logger.With("policy_source", src.Kind(), "from", src.String()),
	}

	runCtx, cancel := context.WithCancel(context.Background())
	m.applyMu.Lock()
	err := m.start(ctx, runCtx)
	m.applyMu.Unlock()
	if err != nil {
		cancel()
		return nil, err
	}
	stop, err := src.Follow(runCtx, func(set Set, err error) {
		m.applyMu.Lock()
		defer m.applyMu.Unlock()
		_ = m.offer(runCtx, set, err, false) // recorded in Status
	})
	if err != nil {
		cancel()
		return nil, err
	}
	m.stopFollow = func() { cancel(); stop() }
	return m, nil
}

// start reads the source's set, seeding an empty source, and applies it.
// The caller holds applyMu.
func (m *Manager) start(ctx, runCtx context.Context) error {
	set, err := m.current(ctx)
	if errors.Is(err, ErrNoSet) && m.opts.Seed != nil {
		set, err = m.seed(ctx)
	}
	switch {
	case errors.Is(err, ErrNoSet):
		return nil // nothing to apply until a set is stored
	case errors.Is(err, ErrInvalid) && set.KVRevision != 0:
		// A stored value that is not a set: an admin can replace it.
	case err != nil:
		return fmt.Errorf("policyset: %s: %w", m.src, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// A set that fails its checks is recorded, not an error.
	_ = m.offer(runCtx, set, err, false)
	return nil
}

// current reads the source's set at start. A NATS cluster electing its
// leaders answers "no responders" or nothing for a moment: such a read is
// tried again, in attempts of a few seconds, until ctx ends.
func (m *Manager) current(ctx context.Context) (Set, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		set, err := m.src.Current(actx)
		cancel()
		transient := errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
		if !transient || ctx.Err() != nil {
			return set, err
		}
		m.log.Warn("policyset: cannot read the source yet; retrying", "error", err)
		select {
		case <-ctx.Done():
			return set, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// seed checks the seed and stores it if the source still holds no set; it
// returns the set the source holds afterwards.
func (m *Manager) seed(ctx context.Context) (Set, error) {
	set, err := FromFS(m.opts.Seed, ".")
	if err != nil {
		return Set{}, fmt.Errorf("policyset: seed: %w", err)
	}
	if set.Revision != m.engine.Revision() {
		// The engine checked its own initial set; any other is checked
		// here, so that a broken seed never reaches the source. offer
		// then activates this candidate rather than checking the same
		// files again.
		cand, err := m.engine.Check(ctx, set.FS())
		if err != nil {
			return Set{}, fmt.Errorf("policyset: seed: %w", err)
		}
		m.proposed = cand // no other goroutine runs yet
	}
	set.Author, set.Message = m.opts.SeedAuthor, m.opts.SeedMessage
	stored, created, err := Seed(ctx, m.src, set)
	if err != nil {
		return Set{}, err
	}
	if !created {
		m.log.Info("policyset: the empty source was seeded by another replica meanwhile", "revision", stored.Revision, "kv_revision", stored.KVRevision)
		return stored, nil
	}
	m.log.Info("policyset: seeded the empty source", "revision", stored.Revision, "kv_revision", stored.KVRevision, "files", len(stored.Files))
	return stored, nil
}

// Source is where the set comes from: SourceNATS or SourceDir.
func (m *Manager) Source() string { return m.src.Kind() }

// Current returns the source's set, with the KVRevision to pass to Propose.
// Errors are those of Source.Current.
func (m *Manager) Current(ctx context.Context) (Set, error) {
	return m.src.Current(ctx)
}

// Propose checks files as a whole new set with the engine — compiled, its
// tests run, with the settings every replica uses — and only then stores it
// in place of the set at KV revision expected (see Source.Put). The
// replicas, this one included, activate it when their source delivers it;
// Propose does not wait for that (Status and the fleet's heartbeats show
// it).
//
// Errors: ErrReadOnly for a source that cannot be written and one wrapping
// ErrInvalid for files it cannot store (names, count, size), both before
// anything is compiled; a *decision.PolicyError
// (errors.As) with the problems and failing tests of a set that does not
// pass, in which case nothing is stored; ErrConflict when the stored set is
// no longer the one at expected; otherwise the source's errors.
func (m *Manager) Propose(ctx context.Context, files map[string][]byte, expected uint64, author, message string) (Set, error) {
	set := Set{Files: make(map[string][]byte, len(files)), Author: author, Message: message}
	for name, data := range files {
		set.Files[name] = bytes.Clone(data) // the caller may reuse its buffers
	}
	// What Put would refuse is refused before the costlier check.
	if err := m.src.CanPut(set); err != nil {
		return Set{}, err
	}
	cand, err := m.engine.Check(ctx, set.FS())
	if err != nil {
		return Set{}, fmt.Errorf("policyset: propose: %w", err)
	}
	// Kept before Put so that the source, which may deliver the set
	// before Put returns, finds it: this replica then activates the
	// candidate instead of checking the same files twice.
	m.mu.Lock()
	m.proposed = cand
	m.mu.Unlock()
	stored, err := m.src.Put(ctx, set, expected)
	if err != nil {
		m.mu.Lock()
		if m.proposed == cand {
			m.proposed = nil
		}
		m.mu.Unlock()
		return Set{}, err
	}
	m.log.Info("policyset: set stored", "revision", stored.Revision, "kv_revision", stored.KVRevision, "author", author)
	return stored, nil
}

// Reload reads the source's set again and applies it, checking it even if
// it was refused before (a test that timed out under load may pass now);
// cmd calls it on SIGHUP. It returns nil when the source's set is active
// afterwards, otherwise why not (a *decision.PolicyError for a refused
// set).
func (m *Manager) Reload(ctx context.Context) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	set, err := m.src.Current(ctx)
	if errors.Is(err, ErrNoSet) {
		return fmt.Errorf("%w: %s holds no policy set", ErrNotReady, m.src)
	}
	return m.offer(ctx, set, err, true)
}

// offer applies what the source delivered: a set, or the error that kept
// it from reading one. The caller holds applyMu.
func (m *Manager) offer(ctx context.Context, set Set, err error, force bool) error {
	if err != nil {
		m.readFailed(ctx, set.KVRevision, err)
		return err
	}
	return m.apply(ctx, set, force)
}

// apply makes set the active set if it passes, or records why not. force
// checks a set again that was refused already. The caller holds applyMu.
func (m *Manager) apply(ctx context.Context, set Set, force bool) error {
	m.mu.Lock()
	m.st.seen = true
	m.st.stored, m.st.storedKV = set.Revision, set.KVRevision
	var refused *Refusal
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
	if err := m.activate(ctx, set, cand); err != nil {
		if ctx.Err() != nil {
			return err // closing, or the caller gave up: not the set's fault
		}
		m.refuse(set, err)
		m.fallBack(ctx, set.Revision)
		return err
	}
	m.mu.Lock()
	m.st.fromSource = true
	m.st.lastErr = nil
	m.mu.Unlock()
	m.log.Info("policyset: set activated", "revision", set.Revision, "kv_revision", set.KVRevision, "author", set.Author, "message", set.Message)
	return nil
}

// activate checks set, unless cand is its checked candidate already, and
// swaps it in.
func (m *Manager) activate(ctx context.Context, set Set, cand *decision.Candidate) error {
	if cand == nil {
		var err error
		if cand, err = m.engine.Check(ctx, set.FS()); err != nil {
			return err
		}
	}
	if _, err := m.engine.Activate(cand); err != nil {
		return err
	}
	m.mu.Lock()
	m.st.reloads++
	m.mu.Unlock()
	return nil
}

// converged records that the source's set is the active one.
func (m *Manager) converged() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.fromSource = true
	m.st.lastErr = nil
}

// refuse records that set did not pass. err is usually a
// *decision.PolicyError.
func (m *Manager) refuse(set Set, err error) {
	r := newRefusal(set.Revision, set.KVRevision, err)
	m.mu.Lock()
	m.st.refusals++
	m.st.lastErr = r
	m.mu.Unlock()
	m.log.Warn("policyset: set refused; keeping the active set",
		"revision", set.Revision, "kv_revision", set.KVRevision, "active_revision", m.engine.Revision(),
		"problems", len(r.Problems), "failing_tests", len(r.FailingTests), "error", err)
}

// readFailed records that the source could not be read as a set. A value
// that is not a set (ErrInvalid) is refused like a set that fails its
// checks; other errors (I/O, NATS) say only that the source could not be
// read. A directory caught in the middle of an edit fails the same way on
// every poll, so a failure is recorded (and logged) once, not each time;
// the next good read clears it. The caller holds applyMu.
func (m *Manager) readFailed(ctx context.Context, kv uint64, err error) {
	r := newRefusal("", kv, err)
	invalid := errors.Is(err, ErrInvalid)
	m.mu.Lock()
	if prev := m.st.lastErr; prev != nil && prev.Revision == "" && prev.KVRevision == kv && prev.Message == r.Message {
		m.mu.Unlock()
		return
	}
	m.st.lastErr = r
	if invalid {
		m.st.seen = true
		m.st.stored, m.st.storedKV = "", kv
		m.st.refusals++
		m.st.invalid++
	}
	m.mu.Unlock()
	m.log.Warn("policyset: cannot read the source's set; keeping the active set", "kv_revision", kv, "active_revision", m.engine.Revision(), "error", err)
	if invalid {
		m.fallBack(ctx, "")
	}
}

// fallBack runs when the source's set was refused on a replica that has
// never activated a set from its source: its engine still has the caller's
// initial set, which need not be what the rest of the fleet runs. It
// activates the newest earlier set in the source's history that passes —
// the set the other replicas kept when they refused the same one. The
// caller holds applyMu.
func (m *Manager) fallBack(ctx context.Context, refused string) {
	m.mu.Lock()
	from := m.st.fromSource
	m.mu.Unlock()
	if from {
		return
	}
	sets, err := m.src.History(ctx)
	if err != nil && !errors.Is(err, ErrNoSet) {
		m.log.Warn("policyset: cannot read the history to fall back on", "error", err)
	}
	for _, set := range sets {
		if set.Revision == refused {
			continue
		}
		if set.Revision != m.engine.Revision() {
			if err := m.activate(ctx, set, nil); err != nil {
				m.log.Debug("policyset: an earlier set does not pass either", "revision", set.Revision, "kv_revision", set.KVRevision, "error", err)
				continue
			}
		}
		m.mu.Lock()
		m.st.fromSource = true
		m.mu.Unlock()
		m.log.Warn("policyset: the source's set was refused; running the newest earlier set that passes",
			"revision", set.Revision, "kv_revision", set.KVRevision, "refused_revision", refused)
		return
	}
	m.log.Error("policyset: the source's set was refused and no earlier set passes; keeping the initial set, not ready",
		"active_revision", m.engine.Revision())
}

// Close stops following the source and waits for a set being checked to
// finish or be abandoned. The engine keeps its active set.
func (m *Manager) Close() {
	m.closeOnce.Do(m.stopFollow)
}
