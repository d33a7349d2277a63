package policyset

import (
	"errors"
	"fmt"
	"time"

	"github.com/wardenauthz/warden/decision"
)

// Refusal says why the source's newest set is not the active one: the
// set failed its checks, or (dir) the directory could not be read. It stays
// in Status until a set from the source is active again.
type Refusal struct {
	// At is when the set was refused.
	At time.Time `json:"at"`
	// Revision and KVRevision identify the refused set; empty or zero when
	// it could not be read as a set at all.
	Revision   string `json:"revision,omitempty"`
	KVRevision uint64 `json:"kv_revision,omitempty"`
	// Message is the whole error, one problem per line.
	Message string `json:"message"`
	// Problems locate each mistake as file, row and column (a failing test
	// is one too).
	Problems []decision.Problem `json:"problems,omitempty"`
	// FailingTests are the tests that failed or erred, with their detail.
	FailingTests []decision.TestResult `json:"failing_tests,omitempty"`
	// Err is the error itself, a *decision.PolicyError when the set was
	// checked and failed.
	Err error `json:"-"`
}

func newRefusal(revision string, kv uint64, err error) *Refusal {
	r := &Refusal{At: time.Now().UTC(), Revision: revision, KVRevision: kv, Message: err.Error(), Err: err}
	var pe *decision.PolicyError
	if errors.As(err, &pe) {
		r.Problems = pe.Problems
		if pe.Tests != nil {
			for _, t := range pe.Tests.Tests {
				if t.Outcome == decision.OutcomeFail || t.Outcome == decision.OutcomeError {
					r.FailingTests = append(r.FailingTests, t)
				}
			}
		}
	}
	return r
}

// Status is a replica's view of its policy set, for GET /v1/status,
// /readyz detail and metrics.
type Status struct {
	// Source is "nats" or "dir".
	Source string `json:"source"`
	// ActiveRevision is the revision of the set deciding now.
	ActiveRevision string `json:"active_revision"`
	// StoredRevision is the revision of the source's newest set (the
	// bucket's, or the directory's at the last read); empty before the
	// first. StoredKVRevision is its KV revision (nats only).
	StoredRevision   string `json:"stored_revision,omitempty"`
	StoredKVRevision uint64 `json:"stored_kv_revision,omitempty"`
	// Converged says the active set is the source's newest.
	Converged bool `json:"converged"`
	// Ready and NotReady are Ready's verdict.
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready,omitempty"`
	// LastError is why the source's newest set is not active; nil when it
	// is (or nothing was refused since the last activation).
	LastError *Refusal `json:"last_error"`
	// Reloads counts sets activated; Refusals counts sets refused.
	Reloads  uint64 `json:"reloads"`
	Refusals uint64 `json:"refusals"`
	// InvalidValues counts values the source held that were not policy
	// sets at all (written around Warden, or a directory mid-edit).
	InvalidValues uint64 `json:"invalid_values,omitempty"`
}

// Status reports the active and the source's revisions and the last refusal.
func (m *Manager) Status() Status {
	active := m.engine.Revision()
	m.mu.Lock()
	st := m.st
	m.mu.Unlock()
	s := Status{
		Source:           m.src.Kind(),
		ActiveRevision:   active,
		StoredRevision:   st.stored,
		StoredKVRevision: st.storedKV,
		Converged:        st.seen && st.stored != "" && st.stored == active,
		LastError:        st.lastErr,
		Reloads:          st.reloads,
		Refusals:         st.refusals,
		InvalidValues:    st.invalid,
	}
	if err := m.notReady(st); err != nil {
		s.NotReady = err.Error()
	} else {
		s.Ready = true
	}
	return s
}

// Ready returns nil once the replica decides with a set from its source:
// the source's newest, or — when that one was refused — an earlier one
// from the source. Otherwise it returns an error wrapping ErrNotReady
// that says why:
//
//   - nats: the watch has not delivered the stored set yet; dir: the
//     directory has not been read yet.
//   - The source's newest set was refused and the engine still runs the
//     initial set the replica started with, which need not be what the
//     fleet runs: no earlier stored set passes either (nats), or the
//     directory's set fails its checks (dir).
//
// A refused set does not by itself make a replica not ready: every replica
// checks the same files the same way and would refuse it too, so taking
// them out of service would turn one bad push into an outage, which is
// what refusing it prevents. The refusal shows in Status.LastError and
// Status.Converged instead.
func (m *Manager) Ready() error {
	m.mu.Lock()
	st := m.st
	m.mu.Unlock()
	return m.notReady(st)
}

func (m *Manager) notReady(st state) error {
	switch {
	case !st.seen && st.lastErr != nil:
		return fmt.Errorf("%w: cannot read the policy set from %s: %s", ErrNotReady, m.src, st.lastErr.Message)
	case !st.seen:
		return fmt.Errorf("%w: waiting for the policy set from %s", ErrNotReady, m.src)
	case !st.fromSource:
		return fmt.Errorf("%w: the policy set %s from %s was refused and no earlier one passes; running the initial set %s",
			ErrNotReady, st.stored, m.src, m.engine.Revision())
	}
	return nil
}
