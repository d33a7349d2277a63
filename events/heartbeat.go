package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Replica heartbeats travel on core NATS (not JetStream): they are current
// state, worthless once the next one is sent, so nothing stores them.
const (
	// ReplicasSubjectPrefix starts the subject of each replica's beats,
	// followed by the replica id.
	ReplicasSubjectPrefix = "warden.replicas."
	// ReplicasSubjectAll matches every replica's beats.
	ReplicasSubjectAll = ReplicasSubjectPrefix + "*"
)

// Beat is one heartbeat of a replica.
type Beat struct {
	V       int    `json:"v"`
	Replica string `json:"replica"`
	// AppliedSeq is the highest stream sequence the replica has applied: it
	// enforces every event up to it.
	AppliedSeq    uint64 `json:"applied_seq"`
	StreamLastSeq uint64 `json:"stream_last_seq"`
	// PolicyRevision is the revision of the replica's active policy set.
	PolicyRevision string `json:"policy_revision,omitempty"`
	Ready          bool   `json:"ready"`
	NotReady       string `json:"not_ready,omitempty"`
	// IntervalMS is how often the replica beats, so that a watcher knows
	// when it has missed beats.
	IntervalMS int64     `json:"interval_ms"`
	Time       time.Time `json:"time"`
	// Leaving is set on the last beat of a replica that shuts down.
	Leaving bool `json:"leaving,omitempty"`
	// Decisions and Denied count the decisions the replica has made since
	// it started, and the denials among them.
	Decisions uint64 `json:"decisions"`
	Denied    uint64 `json:"denied"`
	// Load is the replica's recent decisions, interval by interval.
	Load *Load `json:"load,omitempty"`
}

// Load is a replica's decisions over the recent past (15 minutes in
// Warden), in intervals of StepSeconds, oldest first, the last one being
// the current, unfinished interval: how many decisions, how many of them
// denied, and the median and 99th percentile of their latency in
// microseconds (0 in an interval without decisions). The four series have
// one value per interval.
type Load struct {
	// Start is when the first interval began; End is when the series was
	// taken, which ends the last interval early.
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	StepSeconds int64     `json:"step_s"`
	Decisions   []uint64  `json:"decisions"`
	Denied      []uint64  `json:"denied"`
	P50Micros   []int64   `json:"p50_us"`
	P99Micros   []int64   `json:"p99_us"`
}

// MaxLoadIntervals bounds the intervals of a Load a watcher accepts.
const MaxLoadIntervals = 1000

// valid says whether l is a series a watcher keeps: one value per
// interval in each of the four, at most MaxLoadIntervals, a positive step.
func (l *Load) valid() bool {
	n := len(l.Decisions)
	return l.StepSeconds > 0 && n <= MaxLoadIntervals &&
		len(l.Denied) == n && len(l.P50Micros) == n && len(l.P99Micros) == n
}

// HeartbeatOptions configures a Heartbeat.
type HeartbeatOptions struct {
	// Interval between beats. Default 5s.
	Interval time.Duration
	// MinGap is the least time between two beats. A replica also beats
	// right after applying events, so that a watcher sees a change enforced
	// without waiting for Interval; MinGap bounds that rate. Default 100ms.
	MinGap time.Duration
	// PolicyRevision returns the active policy revision. Optional.
	PolicyRevision func() string
	// Decisions returns how many decisions the replica has made since it
	// started, and how many denied. Optional.
	Decisions func() (decisions, denied uint64)
	// Load returns the replica's recent decisions. Optional.
	Load func() *Load
	// Logger receives publish failures. Default: discarded (Warden's
	// packages log only through the logger their caller passes).
	Logger *slog.Logger
}

// Heartbeat announces a replica's position on warden.replicas.<id>.
type Heartbeat struct {
	nc       *nats.Conn
	c        *Consumer
	opts     HeartbeatOptions
	log      *slog.Logger
	subject  string
	stop     context.CancelFunc
	done     chan struct{}
	lastBeat time.Time // owned by the run goroutine
}

// NewHeartbeat starts beating for c's replica: at once, every Interval, and
// after each applied event (at most every MinGap). Close stops it.
func NewHeartbeat(nc *nats.Conn, c *Consumer, opts HeartbeatOptions) (*Heartbeat, error) {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.MinGap <= 0 {
		opts.MinGap = 100 * time.Millisecond
	}
	if opts.MinGap > opts.Interval {
		return nil, fmt.Errorf("events: heartbeat: MinGap %s is longer than Interval %s", opts.MinGap, opts.Interval)
	}
	if opts.PolicyRevision == nil {
		opts.PolicyRevision = func() string { return "" }
	}
	if opts.Decisions == nil {
		opts.Decisions = func() (uint64, uint64) { return 0, 0 }
	}
	if opts.Load == nil {
		opts.Load = func() *Load { return nil }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Heartbeat{
		nc: nc, c: c, opts: opts, log: opts.Logger,
		subject: ReplicasSubjectPrefix + c.ReplicaID(),
		stop:    cancel,
		done:    make(chan struct{}),
	}
	go h.run(ctx)
	return h, nil
}

func (h *Heartbeat) run(ctx context.Context) {
	defer close(h.done)
	tick := time.NewTicker(h.opts.Interval)
	defer tick.Stop()
	h.beat(false)
	for {
		advanced := h.c.advanced()
		select {
		case <-ctx.Done():
			h.beat(true)
			return
		case <-tick.C:
			h.beat(false)
		case <-advanced:
			if wait := time.Until(h.lastBeat.Add(h.opts.MinGap)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					h.beat(true)
					return
				case <-t.C:
				}
			}
			h.beat(false)
		}
	}
}

func (h *Heartbeat) beat(leaving bool) {
	s := h.c.Status()
	decisions, denied := h.opts.Decisions()
	b := Beat{
		V: 1, Replica: s.ReplicaID, AppliedSeq: s.AppliedSeq, StreamLastSeq: s.StreamLastSeq,
		PolicyRevision: h.opts.PolicyRevision(), Ready: s.Ready, NotReady: s.NotReady,
		IntervalMS: h.opts.Interval.Milliseconds(), Time: time.Now().UTC(), Leaving: leaving,
		Decisions: decisions, Denied: denied, Load: h.opts.Load(),
	}
	data, err := json.Marshal(b)
	if err == nil {
		err = h.nc.Publish(h.subject, data)
	}
	if err == nil && leaving {
		err = h.nc.FlushTimeout(time.Second)
	}
	if err != nil && h.c.bad.Allow() {
		h.log.Warn("events: heartbeat not sent", "error", err)
	}
	h.lastBeat = time.Now()
}

// Close sends a last beat saying the replica leaves, and stops.
func (h *Heartbeat) Close() {
	h.stop()
	<-h.done
}
