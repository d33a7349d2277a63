package policyset

import (
	"context"
	"errors"
	"io/fs"

	"github.com/wardenauthz/warden/decision"
)

// The sources a replica's policy set comes from (policies.source).
const (
	// SourceNATS: the set lives in the WARDEN_POLICIES bucket (a *Store)
	// and is changed through the admin API.
	SourceNATS = "nats"
	// SourceDir: the set is the files of policies.dir (a *Dir), changed by
	// whatever deploys that directory (GitOps); the API cannot change it.
	SourceDir = "dir"
)

// ErrReadOnly is returned by Put when the source cannot be written: a
// directory changes where it is deployed from, not over the API (HTTP 409).
var ErrReadOnly = errors.New("the policy set is read-only: it is read from policies.dir (policies.source: dir)")

// Source is where a replica's policy set comes from. A Manager follows one
// and keeps its engine's active set in step with it; it never needs to know
// which kind it follows.
type Source interface {
	// Kind is SourceNATS or SourceDir.
	Kind() string
	// String names the source in messages: "bucket WARDEN_POLICIES",
	// "policies.dir /etc/warden/policies".
	String() string
	// Current reads the source's newest set. Errors: ErrNoSet when it
	// holds none; one wrapping ErrInvalid when what it holds is not a set
	// (with the value's KVRevision in the returned Set, when it has one, so
	// that an admin can replace it with Put); otherwise read errors.
	Current(ctx context.Context) (Set, error)
	// Put stores set in place of the set at KV revision expected, or, with
	// expected 0, only if the source holds none. Errors: ErrReadOnly,
	// ErrConflict, one wrapping ErrInvalid for a set that cannot be
	// stored.
	Put(ctx context.Context, set Set, expected uint64) (Set, error)
	// CanPut says, without storing anything, whether Put would refuse set
	// for what it is: ErrReadOnly, or one wrapping ErrInvalid (names,
	// count, size). Propose asks before it spends a check on the set.
	CanPut(set Set) error
	// History returns the versions of the set the source still keeps,
	// newest first; ErrNoSet when it keeps none.
	History(ctx context.Context) ([]Set, error)
	// Follow calls fn, from one goroutine and one call at a time, with
	// every later set — or with the error that kept it from reading one —
	// until stop is called. It returns an error when following cannot
	// start.
	Follow(ctx context.Context, fn func(Set, error)) (stop func(), err error)
}

var (
	_ Source = (*Store)(nil)
	_ Source = (*Dir)(nil)
)

// Engine is what a Manager needs of the decision engine it keeps in step:
// check a set whole (compile, tests), swap a checked set in, and say which
// set is active.
type Engine interface {
	Check(ctx context.Context, fsys fs.FS) (*decision.Candidate, error)
	Activate(cand *decision.Candidate) (previous string, err error)
	Revision() string
}

var _ Engine = (*decision.Engine)(nil)

// Seed stores set in src only if src holds no set, which is how the first
// replica to start fills an empty bucket from policies.dir or the shipped
// policies. When several replicas seed at once exactly one wins (Put with
// expected 0 is a create); the others get the winner's set back. created
// says whether this call stored set. Errors are Put's (ErrReadOnly, one
// wrapping ErrInvalid) and Current's.
func Seed(ctx context.Context, src Source, set Set) (stored Set, created bool, err error) {
	stored, err = src.Put(ctx, set, 0)
	if errors.Is(err, ErrConflict) {
		stored, err = src.Current(ctx)
		return stored, false, err
	}
	return stored, err == nil, err
}
