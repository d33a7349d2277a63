package policyset

import (
	"context"
	"fmt"
	"os"
	"time"
)

// DefaultPollInterval is how often a Dir is read by default.
const DefaultPollInterval = 2 * time.Second

// Dir is a policy directory as a Source (policies.source: dir, for GitOps):
// its set is the policy files under it, read as FromFS reads them, and it
// is followed by reading it every poll interval. It cannot be written (Put
// answers ErrReadOnly) and keeps no history.
//
// Polling rather than file-system notifications keeps it free of a
// dependency and works the same on every file system (network mounts and
// Kubernetes ConfigMap volumes, whose atomic symlink swap notification
// libraries often miss); reading and hashing the shipped set takes about
// 60 µs, so an unchanged directory costs next to nothing.
type Dir struct {
	path string
	poll time.Duration
}

// NewDir returns the directory at path as a source read every poll
// (DefaultPollInterval when 0). The directory must exist.
func NewDir(path string, poll time.Duration) (*Dir, error) {
	if poll == 0 {
		poll = DefaultPollInterval
	}
	if poll < 0 {
		return nil, fmt.Errorf("policyset: policies.poll_interval %v must be positive", poll)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("policyset: policies.dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("policyset: policies.dir %s is not a directory", path)
	}
	return &Dir{path: path, poll: poll}, nil
}

// Kind is SourceDir.
func (d *Dir) Kind() string { return SourceDir }

func (d *Dir) String() string { return "policies.dir " + d.path }

// Current reads the directory's files as they are now (KVRevision 0).
func (d *Dir) Current(context.Context) (Set, error) {
	return FromFS(os.DirFS(d.path), ".")
}

// Put answers ErrReadOnly.
func (d *Dir) Put(context.Context, Set, uint64) (Set, error) { return Set{}, ErrReadOnly }

// CanPut answers ErrReadOnly.
func (d *Dir) CanPut(Set) error { return ErrReadOnly }

// History answers ErrNoSet: a directory keeps no earlier versions.
func (d *Dir) History(context.Context) ([]Set, error) {
	return nil, fmt.Errorf("%w: %s keeps no history", ErrNoSet, d)
}

// Follow reads the directory every poll interval and hands fn what it read.
func (d *Dir) Follow(ctx context.Context, fn func(Set, error)) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d.poll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(d.Current(ctx))
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}
