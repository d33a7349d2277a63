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
	// Logger receives malformed beats. Default: discarded (Warden's
	// packages log only through the logger their caller passes).
	Logger *slog.Logger
}

// Fleet watches the heartbeats of every replica sharing the NATS server.
type Fleet struct {
	sub  *nats.Subscription
	opts FleetOptions
	log  *slog.Logger
	// bad counts messages on warden.replicas.* refused as beats (malformed,
	// under another replica's subject, or past MaxReplicas) and beats whose
	// malformed Load was dropped; the tests read it to know such a message
	// has arrived.
	bad atomic.Uint64

	mu       sync.Mutex
	replicas map[string]seenBeat
}

type seenBeat struct {
	beat Beat
	seen time.Time // by this watcher's clock, not the beat's
	// base is the earlier beat the rates were last measured from; rates
	// are decisions and denials per second between base and the beat
	// before the current one moved it.
	base                   Beat
	decisionRate, denyRate float64
}

// minRateWindow is the least time between the two beats a rate is measured
// over. A replica beats right after applying an event, so two beats can be
// a few milliseconds apart; a rate over such a gap would be noise.
const minRateWindow = time.Second

// withBeat returns the state after beat b of the same replica.
func (r seenBeat) withBeat(b Beat, now time.Time) seenBeat {
	next := seenBeat{beat: b, seen: now, base: r.base, decisionRate: r.decisionRate, denyRate: r.denyRate}
	dt := b.Time.Sub(r.base.Time).Seconds()
	switch {
	case b.Decisions < r.base.Decisions || b.Denied < r.base.Denied || dt < 0:
		// The replica restarted under the same id, or its clock went back:
		// measure afresh from this beat.
		next.base, next.decisionRate, next.denyRate = b, 0, 0
	case dt >= minRateWindow.Seconds():
		next.decisionRate = float64(b.Decisions-r.base.Decisions) / dt
		next.denyRate = float64(b.Denied-r.base.Denied) / dt
		next.base = b
	}
	return next
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
	// Decisions and Denied count the replica's decisions since it started.
	// DecisionRate and DenyRate are per second, measured between two of
	// its heartbeats at least a second apart (the latest such pair); zero
	// until there are two.
	Decisions    uint64  `json:"decisions"`
	Denied       uint64  `json:"denied"`
	DecisionRate float64 `json:"decision_rate"`
	DenyRate     float64 `json:"deny_rate"`
	// Load is the replica's recent decisions from its latest beat; nil
	// when it sent none, or a malformed one.
	Load *Load `json:"load,omitempty"`
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
	if b.Load != nil && !b.Load.valid() {
		f.bad.Add(1)
		b.Load = nil
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
	r, ok := f.replicas[b.Replica]
	if !ok {
		r = seenBeat{base: b}
	}
	f.replicas[b.Replica] = r.withBeat(b, now)
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
			LastSeen: r.seen, Decisions: r.beat.Decisions, Denied: r.beat.Denied,
			DecisionRate: r.decisionRate, DenyRate: r.denyRate, Load: r.beat.Load,
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

// Close stops watching.
func (f *Fleet) Close() error {
	if err := f.sub.Unsubscribe(); err != nil {
		return fmt.Errorf("events: fleet: %w", err)
	}
	return nil
}
