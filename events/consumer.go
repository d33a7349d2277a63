package events

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
)

// ErrBehind is wrapped by WaitFor's error when the sequence was not applied
// in time (a Warden-Min-Seq the replica has not reached).
var ErrBehind = errors.New("behind")

// ConsumerOptions configures a Consumer. The zero value uses the defaults
// of DESIGN §6.
type ConsumerOptions struct {
	// Stream is the stream to follow. Default DefaultStream.
	Stream string
	// ReplicaID names this replica in Status, heartbeats and the server's
	// consumer list: letters, digits, '-' and '_', at most 64. Default
	// DefaultReplicaID().
	ReplicaID string
	// Grace is how long the replica keeps answering from its state after it
	// lost the stream, before OnDisconnect applies (events.grace). Default 30s.
	Grace time.Duration
	// OnDisconnect is the outage policy (events.on_disconnect). Default FreshOnly.
	OnDisconnect DisconnectMode
	// FreshWindow is how recently a token must have been issued for
	// FreshOnly to accept it (events.fresh_window). Default 60s.
	FreshWindow time.Duration
	// Logger receives bad messages and state changes. Default: discarded
	// (Warden's packages log only through the logger their caller passes).
	Logger *slog.Logger
	// PollInterval is how often the consumer asks JetStream for its
	// position, which detects a stalled consumer and ends catching up.
	// Default 1s.
	PollInterval time.Duration
	// SweepInterval is how often expired ledger entries are dropped.
	// Default 1m.
	SweepInterval time.Duration
	// TracerProvider records the apply of each event that arrives with a
	// trace (traceparent in its headers) as a child of its publish. Nil:
	// no spans.
	TracerProvider trace.TracerProvider
}

// Defaults of ConsumerOptions (events.grace, events.fresh_window).
const (
	DefaultGrace       = 30 * time.Second
	DefaultFreshWindow = 60 * time.Second
)

func (o *ConsumerOptions) setDefaults() error {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.ReplicaID == "" {
		o.ReplicaID = DefaultReplicaID()
	}
	if !replicaIDPattern.MatchString(o.ReplicaID) {
		return fmt.Errorf("events: replica id %q: use 1 to 64 letters, digits, '-' or '_'", o.ReplicaID)
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.OnDisconnect == "" {
		o.OnDisconnect = FreshOnly
	}
	if _, err := ParseDisconnectMode(string(o.OnDisconnect)); err != nil {
		return err
	}
	if o.FreshWindow <= 0 {
		o.FreshWindow = DefaultFreshWindow
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Minute
	}
	return nil
}

// replicaIDPattern keeps a replica id usable as one NATS subject token and
// inside a consumer name.
var replicaIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// DefaultReplicaID is the host name (cleaned to fit a NATS subject token)
// and a random suffix, so that two processes on one host differ.
func DefaultReplicaID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r < 128 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '-'
	}, host)
	if host == "" {
		host = "warden"
	}
	return fmt.Sprintf("%.48s-%.6s", host, strings.ToLower(rand.Text()))
}

// Consumer follows the event stream into a Ledger and is the replica's
// decision.Revocations: its Check is the ledger's plus the outage policy.
type Consumer struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	ledger *Ledger
	opts   ConsumerOptions
	log    *slog.Logger
	bad    *rate.Limiter // at most 10 warnings a second about bad messages: a flood of them is counted, not logged
	tracer trace.Tracer

	// Read on the request path, so atomics only.
	applied       atomic.Uint64 // highest stream sequence applied (or skipped as bad)
	degradedSince atomic.Int64  // Unix nanoseconds; 0 while healthy
	replayed      atomic.Bool   // the first replay has caught up

	streamLast  atomic.Uint64 // the stream's last sequence, as last seen
	lag         atomic.Uint64 // messages not yet applied, as JetStream last said
	badMessages atomic.Uint64

	nudge chan struct{} // asks run for a poll now
	stop  context.CancelFunc
	done  chan struct{}

	// Owned by the run goroutine.
	oc            jetstream.Consumer
	cc            jetstream.ConsumeContext
	streamCreated time.Time    // to notice the stream being recreated
	retention     atomic.Int64 // the stream's MaxAge as last read

	mu      sync.Mutex
	h       health
	waitCh  chan struct{} // closed when applied advances; nil when nobody waits
	waiting atomic.Bool   // waitCh != nil, readable without mu
	// pollCancel ends the poll in flight, if any.
	pollCancel context.CancelFunc
}

// NewConsumer starts following the stream on nc into ledger, from the first
// event still in the stream. It returns at once: the replay, and any wait for
// NATS or for the stream to exist, happen in the background; Ready says when
// the replica has caught up. Close stops it; nc stays open.
func NewConsumer(nc *nats.Conn, ledger *Ledger, opts ConsumerOptions) (*Consumer, error) {
	if nc == nil || ledger == nil {
		return nil, errors.New("events: consumer: needs a NATS connection and a ledger")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("events: consumer: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{
		nc: nc, js: js, ledger: ledger, opts: opts,
		log:    opts.Logger.With("replica", opts.ReplicaID, "stream", opts.Stream),
		nudge:  make(chan struct{}, 1),
		bad:    rate.NewLimiter(10, 10),
		tracer: tracer(opts.TracerProvider),
		stop:   cancel,
		done:   make(chan struct{}),
		h:      health{catchingUp: true, why: "replaying the event stream"},
	}
	c.degradedSince.Store(time.Now().UnixNano())
	// Registered before run starts so that no status change is missed.
	statuses := nc.StatusChanged()
	go c.run(ctx, statuses)
	return c, nil
}

// ReplicaID is this replica's id.
func (c *Consumer) ReplicaID() string { return c.opts.ReplicaID }

// WaitFor returns nil once the replica has applied stream sequence seq, or
// an error wrapping ErrBehind and ctx's error when ctx ends first. It is how
// a caller that just published reads its own write (Warden-Min-Seq).
func (c *Consumer) WaitFor(ctx context.Context, seq uint64) error {
	for {
		if c.applied.Load() >= seq {
			return nil
		}
		ch := c.advanced()
		// Checked again after registering: an advance in between closed
		// the previous channel, not this one.
		if c.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: applied %d, want %d: %w", ErrBehind, c.applied.Load(), seq, ctx.Err())
		}
	}
}

// advanced returns a channel closed at the next advance of the applied
// sequence.
func (c *Consumer) advanced() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waitCh == nil {
		c.waitCh = make(chan struct{})
		c.waiting.Store(true)
	}
	return c.waitCh
}

// Close stops following the stream and waits for the background work to
// end. The ledger keeps its state; the connection stays open.
func (c *Consumer) Close() {
	c.stop()
	<-c.done
}

func (c *Consumer) run(ctx context.Context, statuses chan nats.Status) {
	defer close(c.done)
	defer c.stopConsuming()
	go c.watchConnection(ctx, statuses)
	poll := time.NewTicker(c.opts.PollInterval)
	defer poll.Stop()
	sweep := time.NewTicker(c.opts.SweepInterval)
	defer sweep.Stop()

	c.poll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.nudge:
			c.poll(ctx)
		case <-poll.C:
			c.poll(ctx)
		case <-sweep.C:
			if n := c.ledger.Sweep(time.Now()); n > 0 {
				c.log.Debug("events: swept expired ledger entries", "subjects", n)
			}
		}
	}
}

func (c *Consumer) startConsuming(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	oc, err := c.js.OrderedConsumer(sctx, c.opts.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{SubjectAll},
		// The ledger is derived state: replaying everything the stream
		// still holds rebuilds it, so no durable consumer (and no server
		// state per replica to clean up) is needed. The ordered consumer
		// resumes after the last delivered sequence on its own when the
		// connection or the server comes back.
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		NamePrefix:        "warden_" + c.opts.ReplicaID,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return err
	}
	cc, err := oc.Consume(c.handle,
		jetstream.ConsumeErrHandler(c.consumeError),
		// Missing heartbeats make the ordered consumer recreate itself;
		// 2s notices a lost consumer (server restart) quickly.
		jetstream.PullExpiry(10*time.Second),
		jetstream.PullHeartbeat(2*time.Second))
	if err != nil {
		return err
	}
	c.oc, c.cc = oc, cc
	return nil
}

func (c *Consumer) stopConsuming() {
	if c.cc != nil {
		c.cc.Stop()
		c.cc, c.oc = nil, nil
	}
}

func (c *Consumer) consumeError(_ jetstream.ConsumeContext, err error) {
	if c.bad.Allow() {
		c.log.Warn("events: consumer error; it recovers on its own", "error", err)
	}
}

// handle applies one message. A message that is not a valid event is logged,
// counted and skipped: one bad publisher must not stop every replica.
func (c *Consumer) handle(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		// Only a message without JetStream metadata lacks it; there is no
		// sequence to account it to.
		c.badMessages.Add(1)
		c.log.Error("events: message without JetStream metadata", "error", err)
		return
	}
	seq := md.Sequence.Stream
	var span trace.Span
	if parent := traceContext.Extract(context.Background(), headerCarrier(msg.Headers())); trace.SpanContextFromContext(parent).IsValid() {
		_, span = c.tracer.Start(parent, SpanApply, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", msg.Subject()),
			attribute.String("warden.replica", c.opts.ReplicaID),
			attribute.Int64("warden.event_seq", int64(seq)),
		))
	}
	e, err := Parse(msg.Data())
	if err == nil && msg.Subject() != e.Type.Subject() {
		err = fmt.Errorf("%w: a %s event published to %q, want %q", ErrInvalidEvent, e.Type, msg.Subject(), e.Type.Subject())
	}
	if err == nil && e.At.After(md.Timestamp.Add(MaxAtSkew)) {
		err = fmt.Errorf("%w: at %s is more than %s after the stream stored the event (%s)",
			ErrInvalidEvent, e.At.Format(time.RFC3339), MaxAtSkew, md.Timestamp.Format(time.RFC3339))
	}
	if err == nil {
		err = c.ledger.Apply(e)
	}
	if err != nil {
		c.badMessages.Add(1)
		if c.bad.Allow() {
			c.log.Warn("events: skipping a bad event", "seq", seq, "nats_subject", msg.Subject(), "error", err)
		}
	}
	if span != nil {
		if e.ID != "" {
			span.SetAttributes(attribute.String("warden.event_id", e.ID), attribute.String("warden.event_type", string(e.Type)))
		}
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}

	storeMax(&c.applied, seq)
	storeMax(&c.streamLast, seq+md.NumPending)
	c.lag.Store(md.NumPending)
	// The store of applied above happens before this load, and a waiter
	// registers before it loads applied again: one of the two sees the
	// other, so no waiter sleeps through its sequence.
	if c.waiting.Load() {
		c.mu.Lock()
		if c.waitCh != nil {
			close(c.waitCh)
			c.waitCh = nil
			c.waiting.Store(false)
		}
		c.mu.Unlock()
	}
	if md.NumPending == 0 && c.degradedSince.Load() != 0 {
		// Probably caught up; let a poll confirm it now rather than at the
		// next tick.
		select {
		case c.nudge <- struct{}{}:
		default:
		}
	}
}

// storeMax raises v to n.
func storeMax(v *atomic.Uint64, n uint64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}
