package events

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// FleetOptions configures a Fleet.
type FleetOptions struct {
	// MaxReplicas bounds how many replicas are tracked, so that a flood of
	// made-up ids cannot grow memory without end. Default 1024.
	MaxReplicas int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives malformed beats. Default: discarded.
	Logger *slog.Logger
}

// Fleet watches the heartbeats of every replica sharing the NATS server.
type Fleet struct {
	sub  *nats.Subscription
	opts FleetOptions
	log  *slog.Logger
	bad  atomic.Uint64

	mu       sync.Mutex
	replicas map[string]seenBeat
}

type seenBeat struct {
	beat Beat
	seen time.Time // by this watcher's clock, not the beat's
}

// Replica is one live replica as its heartbeats describe it.
type Replica struct {
	ID            string `json:"id"`
	AppliedSeq    uint64 `json:"applied_seq"`
	StreamLastSeq uint64 `json:"stream_last_seq"`
	// Lag is how far AppliedSeq is behind the furthest sequence any live
	// replica reports.
	Lag            uint64    `json:"lag"`
	PolicyRevision string    `json:"policy_revision,omitempty"`
	Ready          bool      `json:"ready"`
	NotReady       string    `json:"not_ready,omitempty"`
	LastSeen       time.Time `json:"last_seen"`
}

// NewFleet subscribes to warden.replicas.* on nc. Close unsubscribes.
func NewFleet(nc *nats.Conn, opts FleetOptions) (*Fleet, error) {
	if opts.MaxReplicas <= 0 {
		opts.MaxReplicas = 1024
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{opts: opts, log: opts.Logger, replicas: make(map[string]seenBeat)}
	sub, err := nc.Subscribe(ReplicasSubjectAll, f.receive)
	if err != nil {
		return nil, fmt.Errorf("events: fleet: %w", err)
	}
	f.sub = sub
	return f, nil
}

func (f *Fleet) receive(msg *nats.Msg) {
	var b Beat
	if err := json.Unmarshal(msg.Data, &b); err != nil || b.V != 1 || msg.Subject != ReplicasSubjectPrefix+b.Replica {
		f.bad.Add(1)
		return
	}
	now := f.opts.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if b.Leaving {
		delete(f.replicas, b.Replica)
		return
	}
	if _, ok := f.replicas[b.Replica]; !ok && len(f.replicas) >= f.opts.MaxReplicas {
		f.expire(now)
		if len(f.replicas) >= f.opts.MaxReplicas {
			f.bad.Add(1)
			return
		}
	}
	f.replicas[b.Replica] = seenBeat{beat: b, seen: now}
}

// expire drops replicas that missed three beats. mu must be held.
func (f *Fleet) expire(now time.Time) {
	for id, r := range f.replicas {
		interval := time.Duration(r.beat.IntervalMS) * time.Millisecond
		interval = min(max(interval, 100*time.Millisecond), 10*time.Minute)
		if now.Sub(r.seen) > 3*interval {
			delete(f.replicas, id)
		}
	}
}

// Replicas lists the live replicas by id.
func (f *Fleet) Replicas() []Replica {
	now := f.opts.Now()
	f.mu.Lock()
	f.expire(now)
	out := make([]Replica, 0, len(f.replicas))
	var head uint64
	for _, r := range f.replicas {
		head = max(head, r.beat.AppliedSeq, r.beat.StreamLastSeq)
		out = append(out, Replica{
			ID: r.beat.Replica, AppliedSeq: r.beat.AppliedSeq, StreamLastSeq: r.beat.StreamLastSeq,
			PolicyRevision: r.beat.PolicyRevision, Ready: r.beat.Ready, NotReady: r.beat.NotReady,
			LastSeen: r.seen,
		})
	}
	f.mu.Unlock()
	for i := range out {
		out[i].Lag = head - out[i].AppliedSeq
	}
	slices.SortFunc(out, func(a, b Replica) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Enforced says how many of the live replicas have applied stream sequence
// seq, out of how many: "enforced on 3/3 replicas".
func (f *Fleet) Enforced(seq uint64) (applied, total int) {
	for _, r := range f.Replicas() {
		total++
		if r.AppliedSeq >= seq {
			applied++
		}
	}
	return applied, total
}

// BadBeats counts messages on warden.replicas.* that were not valid beats.
func (f *Fleet) BadBeats() uint64 { return f.bad.Load() }

// Close stops watching.
func (f *Fleet) Close() error {
	if err := f.sub.Unsubscribe(); err != nil {
		return fmt.Errorf("events: fleet: %w", err)
	}
	return nil
}
