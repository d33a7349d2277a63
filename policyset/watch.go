package policyset

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// watchTimeout bounds one attempt to (re)create the KV watcher.
	watchTimeout = 5 * time.Second
	// watchRetryMin and watchRetryMax bound the wait between
	// failed attempts.
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// Watcher is a running Watch. Its methods are safe for concurrent use.
type Watcher struct {
	store  *Store
	fn     func(Set, error)
	cancel context.CancelFunc
	done   chan struct{}

	delivered atomic.Uint64 // KV revision of the last set handed to fn
	skipped   atomic.Uint64 // values that were not valid policy sets
	restarts  atomic.Uint64 // watchers created after the first
}

// Watch calls fn with the stored set, if any, and then with every set put
// later, until ctx ends or Stop is called. It is how every replica follows
// the bucket: fn checks the set with the decision package and swaps it in,
// or keeps the active set and reports why.
//
// Delivery rules:
//
//   - fn is called from one goroutine, one set at a time, in the order the
//     sets were stored (growing KVRevision).
//   - When sets arrive faster than fn returns (fn compiles and tests a set,
//     which takes a while), the sets that are already superseded when fn is
//     free again are skipped and fn gets the newest: a replica only ever
//     needs the newest, and compiling stale ones would delay convergence.
//   - A value that is not a valid policy set is counted (Skipped) and
//     handed to fn as an error wrapping ErrInvalid, with its KVRevision in
//     the Set; the watch goes on, and the next valid put is delivered.
//     A deleted key is logged and skipped too: the replica keeps its active
//     set rather than running without policies.
//   - The watch survives disconnections and NATS server restarts. After a
//     reconnect it re-creates its watcher at once (the server may have lost
//     the watch's consumer) and delivers the stored set if it differs from
//     the last one seen, so a set put while the replica was away arrives.
//     If the bucket was deleted and created again, revisions start over; the
//     watch then delivers the new bucket's set even though its KVRevision is
//     lower.
//
// Watch returns an error when the first watcher cannot be created (no
// bucket, NATS unreachable); later failures are retried in the background
// and logged. The watch ends by itself when the connection is closed.
func (s *Store) Watch(ctx context.Context, fn func(Set, error)) (*Watcher, error) {
	if fn == nil {
		return nil, errors.New("policyset: policy watch: fn is nil")
	}
	ctx, cancel := context.WithCancel(ctx)
	// Registered before the first watcher exists, so that a reconnect in
	// between still re-creates it.
	statuses := s.nc.StatusChanged(nats.CONNECTED)
	kw, err := s.newWatcher(ctx)
	if err != nil {
		s.nc.RemoveStatusListener(statuses)
		cancel()
		return nil, err
	}
	w := &Watcher{store: s, fn: fn, cancel: cancel, done: make(chan struct{})}
	go w.run(ctx, kw, statuses)
	return w, nil
}

// keyWatcher is one KV watcher and what ends it.
type keyWatcher struct {
	jetstream.KeyWatcher
	cancel context.CancelFunc
}

// newWatcher watches the set's key. The client ties the watcher's lifetime
// to the context it was created with (cancelling it unsubscribes), so the
// context is not a timeout: creation is bounded by a timer that cancels it
// only while creating.
func (s *Store) newWatcher(ctx context.Context) (*keyWatcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(watchTimeout, cancel)
	kw, err := s.kv.Watch(ctx, setKey)
	if !timer.Stop() && err == nil {
		err = fmt.Errorf("not created within %s", watchTimeout)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("policyset: policy watch on %s: %w", s.opts.Bucket, err)
	}
	return &keyWatcher{KeyWatcher: kw, cancel: cancel}, nil
}

// stop ends the watcher in the background: the client unsubscribes when
// the context ends (deleting the watch's consumer with a request to the
// server, which should not hold up the watch), and the channel is drained
// until the client closes it, so that the client's delivery goroutine is
// never left blocked on a full channel.
func (kw *keyWatcher) stop() {
	if kw == nil {
		return
	}
	kw.cancel()
	go func() {
		for range kw.Updates() {
		}
	}()
}

// Stop ends the watch and waits until fn has returned, if it was running.
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
}

func (w *Watcher) run(ctx context.Context, kw *keyWatcher, statuses chan nats.Status) {
	s := w.store
	defer close(w.done)
	defer s.nc.RemoveStatusListener(statuses)
	defer func() { kw.stop() }()

	var lastSeen uint64 // KV revision of the last value seen, valid or not
	retry := watchRetryMin
	for {
		if kw == nil {
			if s.nc.IsClosed() {
				s.log.Warn("policyset: policy watch ended: the NATS connection is closed")
				return
			}
			var err error
			if kw, err = s.newWatcher(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				// The growing retry bounds how often this is logged.
				s.log.Warn("policyset: policy watch: cannot watch the bucket; retrying", "retry_in", retry, "error", err)
				select {
				case <-ctx.Done():
					return
				case _, ok := <-statuses: // connected again: try at once
					if !ok {
						statuses = nil // only RemoveStatusListener closes it; be safe
					}
				case <-time.After(retry):
				}
				retry = min(2*retry, watchRetryMax)
				continue
			}
			retry = watchRetryMin
			w.restarts.Add(1)
			s.log.Info("policyset: policy watch re-created")
		}

		select {
		case <-ctx.Done():
			return
		case st, ok := <-statuses:
			if !ok {
				statuses = nil // only RemoveStatusListener closes it; be safe
				continue
			}
			if st == nats.CONNECTED {
				// The ordered consumer behind the watcher would notice a
				// lost server-side consumer only after missing heartbeats
				// (10s); re-creating it now makes a set put during the
				// outage arrive as soon as the replica is back.
				kw.stop()
				kw = nil
			}
		case e, ok := <-kw.Updates():
			if !ok {
				kw.stop() // the client ended the subscription; re-create it
				kw = nil
				continue
			}
			set, bad, have := w.take(e, &lastSeen)
			// Coalesce what is already buffered: only the newest matters.
		drain:
			for {
				select {
				case e, ok := <-kw.Updates():
					if !ok {
						kw.stop()
						kw = nil
						break drain
					}
					if next, nextBad, ok := w.take(e, &lastSeen); ok {
						set, bad, have = next, nextBad, true
					}
				default:
					break drain
				}
			}
			if have {
				w.fn(set, bad)
				w.delivered.Store(set.KVRevision)
			}
		}
	}
}

// take turns one watcher entry into a set, or the error that it is not one,
// to deliver; ok is false when there is nothing to deliver.
func (w *Watcher) take(e jetstream.KeyValueEntry, lastSeen *uint64) (set Set, bad error, ok bool) {
	if e == nil {
		return Set{}, nil, false // the end of the initial values
	}
	rev := e.Revision()
	if rev == *lastSeen {
		// A re-created watcher starts with the stored value, which this
		// watch has usually seen already.
		return Set{}, nil, false
	}
	*lastSeen = rev
	s := w.store
	if e.Operation() != jetstream.KeyValuePut {
		s.log.Warn("policyset: the policy set was deleted from the bucket; keeping the active set", "kv_revision", rev, "operation", e.Operation().String())
		return Set{}, nil, false
	}
	set, err := s.decode(e)
	if err != nil {
		w.skipped.Add(1)
	}
	return set, err, true
}
