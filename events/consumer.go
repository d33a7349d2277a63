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

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

// DisconnectMode is what a replica does with tokens once it has been unable
// to follow the stream for longer than the grace period (events.on_disconnect).
type DisconnectMode string

// The outage policies.
const (
	// FreshOnly accepts only tokens issued within the fresh window: they
	// were minted with current roles, so no event they missed can concern
	// them. It is the default.
	FreshOnly DisconnectMode = "fresh_only"
	// DenyAll answers revocation_state_stale for every token.
	DenyAll DisconnectMode = "deny"
	// AllowAll keeps answering from the state as it was.
	AllowAll DisconnectMode = "allow"
)

// ParseDisconnectMode reads an events.on_disconnect value.
func ParseDisconnectMode(s string) (DisconnectMode, error) {
	switch m := DisconnectMode(s); m {
	case FreshOnly, DenyAll, AllowAll:
		return m, nil
	}
	return "", fmt.Errorf("events.on_disconnect: %q is not one of fresh_only, deny, allow", s)
}

// ErrNotReady is wrapped by Ready's error: the replica has not caught up with
// the stream or cannot follow it.
var ErrNotReady = errors.New("event stream not ready")

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
	// Logger receives bad messages and state changes. Default: discarded.
	Logger *slog.Logger
	// PollInterval is how often the consumer asks JetStream for its
	// position, which detects a stalled consumer and ends catching up.
	// Default 1s.
	PollInterval time.Duration
	// SweepInterval is how often expired ledger entries are dropped.
	// Default 1m.
	SweepInterval time.Duration
}

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
		o.Grace = 30 * time.Second
	}
	if o.OnDisconnect == "" {
		o.OnDisconnect = FreshOnly
	}
	if _, err := ParseDisconnectMode(string(o.OnDisconnect)); err != nil {
		return err
	}
	if o.FreshWindow <= 0 {
		o.FreshWindow = 60 * time.Second
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
	bad    logLimiter

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
	oc jetstream.Consumer
	cc jetstream.ConsumeContext

	mu      sync.Mutex
	h       health
	waitCh  chan struct{} // closed when applied advances; nil when nobody waits
	waiting atomic.Bool   // waitCh != nil, readable without mu
}

// health is the input of the degraded/ready verdict; guarded by mu.
type health struct {
	connected   bool
	consuming   bool
	catchingUp  bool // true from start or from losing the stream until caught up
	targetSet   bool
	target      uint64 // the stream's last sequence when catching up began
	infoErrs    int    // consecutive failed polls
	lastApplied uint64 // at the previous poll, to tell a stall from lag
	lastLag     uint64
	why         string // why not ready, for Ready and Status
	connState   string
}

// NewConsumer starts following the stream on nc into ledger, from the first
// event still in the stream. It returns at once: the replay, and any wait for
// NATS or for the stream to exist, happen in the background; Ready says when
// the replica has caught up. Close stops it; nc stays open.
func NewConsumer(nc *nats.Conn, ledger *Ledger, opts ConsumerOptions) (*Consumer, error) {
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
		log:   opts.Logger.With("replica", opts.ReplicaID, "stream", opts.Stream),
		nudge: make(chan struct{}, 1),
		stop:  cancel,
		done:  make(chan struct{}),
		h:     health{catchingUp: true, why: "replaying the event stream"},
	}
	c.degradedSince.Store(time.Now().UnixNano())
	// Registered before run starts so that no status change is missed.
	statuses := nc.StatusChanged()
	go c.run(ctx, statuses)
	return c, nil
}

var _ decision.Revocations = (*Consumer)(nil)

// Check returns why cl may no longer be honoured at now: the ledger's answer
// first, then, while the replica cannot follow the stream, the outage
// policy (after Grace; at once before the first replay has caught up).
func (c *Consumer) Check(cl *claims.Claims, now time.Time) decision.Reason {
	if r := c.ledger.Check(cl, now); r != "" {
		return r
	}
	since := c.degradedSince.Load()
	if since == 0 {
		return ""
	}
	if c.replayed.Load() && now.UnixNano()-since < int64(c.opts.Grace) {
		return ""
	}
	switch c.opts.OnDisconnect {
	case AllowAll:
		return ""
	case FreshOnly:
		if now.Sub(cl.IssuedAt) <= c.opts.FreshWindow {
			return ""
		}
	}
	return decision.ReasonRevocationStateStale
}

// Ready returns nil once the replica has replayed the stream up to the last
// sequence it saw at start (or reconnection) and follows it; otherwise an
// error wrapping ErrNotReady that says why.
func (c *Consumer) Ready() error {
	if c.degradedSince.Load() == 0 {
		return nil
	}
	c.mu.Lock()
	why := c.h.why
	c.mu.Unlock()
	return fmt.Errorf("%w: %s", ErrNotReady, why)
}

// Applied is the highest stream sequence applied.
func (c *Consumer) Applied() uint64 { return c.applied.Load() }

// Ledger is the ledger the consumer folds into.
func (c *Consumer) Ledger() *Ledger { return c.ledger }

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

// Status is a replica's view of the stream, for GET /v1/status, /readyz and
// metrics.
type Status struct {
	ReplicaID     string `json:"replica_id"`
	Stream        string `json:"stream"`
	AppliedSeq    uint64 `json:"applied_seq"`
	StreamLastSeq uint64 `json:"stream_last_seq"`
	// Lag is how many events JetStream last said were not applied yet.
	Lag uint64 `json:"lag"`
	// Connection is the NATS connection state: connected, reconnecting,
	// disconnected, closed...
	Connection string `json:"connection"`
	Ready      bool   `json:"ready"`
	// NotReady says why Ready is false.
	NotReady string `json:"not_ready,omitempty"`
	// DegradedSince is when the replica lost the stream; zero while it
	// follows it.
	DegradedSince time.Time `json:"degraded_since,omitzero"`
	// OutagePolicyActive says OnDisconnect is being applied to decisions.
	OutagePolicyActive bool           `json:"outage_policy_active"`
	OnDisconnect       DisconnectMode `json:"on_disconnect"`
	// EventsApplied counts events folded into the ledger.
	EventsApplied uint64 `json:"events_applied"`
	// BadMessages counts messages skipped because they were not valid events.
	BadMessages   uint64 `json:"bad_messages"`
	LedgerEntries int    `json:"ledger_subjects"`
}

// Status reports the replica's position and health.
func (c *Consumer) Status() Status {
	s := Status{
		ReplicaID:     c.opts.ReplicaID,
		Stream:        c.opts.Stream,
		AppliedSeq:    c.applied.Load(),
		StreamLastSeq: c.streamLast.Load(),
		Lag:           c.lag.Load(),
		Connection:    strings.ToLower(c.nc.Status().String()),
		OnDisconnect:  c.opts.OnDisconnect,
		EventsApplied: c.ledger.applied.Load(),
		BadMessages:   c.badMessages.Load(),
		LedgerEntries: c.ledger.Len(),
	}
	if since := c.degradedSince.Load(); since != 0 {
		s.DegradedSince = time.Unix(0, since).UTC()
		s.OutagePolicyActive = c.opts.OnDisconnect != AllowAll &&
			(!c.replayed.Load() || time.Since(s.DegradedSince) >= c.opts.Grace)
		c.mu.Lock()
		s.NotReady = c.h.why
		c.mu.Unlock()
	} else {
		s.Ready = true
	}
	return s
}

// Close stops following the stream and waits for the background work to
// end. The ledger keeps its state; the connection stays open.
func (c *Consumer) Close() {
	c.stop()
	<-c.done
}

func (c *Consumer) run(ctx context.Context, statuses chan nats.Status) {
	defer close(c.done)
	defer c.nc.RemoveStatusListener(statuses)
	defer c.stopConsuming()
	poll := time.NewTicker(c.opts.PollInterval)
	defer poll.Stop()
	sweep := time.NewTicker(c.opts.SweepInterval)
	defer sweep.Stop()

	c.poll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-statuses:
			if s != nats.CONNECTED {
				c.lost(s)
			}
			c.poll(ctx)
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

// lost records that the connection went away: whatever arrives next must
// first catch up before the replica is healthy again.
func (c *Consumer) lost(s nats.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h.connected {
		c.log.Warn("events: lost the NATS connection; keeping the ledger, degraded", "state", strings.ToLower(s.String()))
	}
	c.h.connected = false
	c.h.catchingUp = true
	c.h.targetSet = false
	c.h.why = "NATS connection " + strings.ToLower(s.String())
	c.recompute()
}

// poll asks JetStream where the stream and this replica's consumer stand
// and updates the health verdict. It runs on the run goroutine only.
func (c *Consumer) poll(ctx context.Context) {
	status := c.nc.Status()
	if status != nats.CONNECTED {
		c.lost(status)
		return
	}
	c.mu.Lock()
	if !c.h.connected {
		c.h.connected = true
		c.h.catchingUp = true
		c.h.targetSet = false
		if c.replayed.Load() {
			c.h.why = "catching up after reconnecting"
		}
	}
	c.mu.Unlock()

	if c.cc == nil {
		if err := c.startConsuming(ctx); err != nil {
			c.mu.Lock()
			c.h.consuming = false
			c.h.why = "cannot follow stream " + c.opts.Stream + ": " + err.Error()
			c.recompute()
			c.mu.Unlock()
			if c.bad.allow() {
				c.log.Warn("events: cannot follow the stream yet; retrying", "error", err)
			}
			return
		}
	}

	pctx, cancel := context.WithTimeout(ctx, max(c.opts.PollInterval, 2*time.Second))
	defer cancel()
	var si *jetstream.StreamInfo
	st, err := c.js.Stream(pctx, c.opts.Stream)
	if err == nil {
		si = st.CachedInfo()
		// The ordered consumer's own CachedInfo would do, but its Info
		// holds the lock message delivery needs for a network round trip.
		var cons jetstream.Consumer
		if cons, err = c.js.Consumer(pctx, c.opts.Stream, c.oc.CachedInfo().Name); err == nil {
			c.observe(si, cons.CachedInfo())
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.h.infoErrs++
	if c.h.infoErrs >= 2 {
		c.h.why = "cannot read the stream position: " + err.Error()
	}
	c.recompute()
}

// observe folds one successful poll into the health verdict.
func (c *Consumer) observe(si *jetstream.StreamInfo, ci *jetstream.ConsumerInfo) {
	last := si.State.LastSeq
	if first := si.State.FirstSeq; first > 0 {
		// Sequences before the first message no longer exist (aged out):
		// there is nothing to apply there.
		storeMax(&c.applied, first-1)
	}
	applied := c.applied.Load()
	if last < applied {
		// The stream was deleted and created again: its sequences start
		// over. Replay it from the beginning; the ledger keeps what it has,
		// which can only deny more.
		c.log.Error("events: the stream's last sequence went backwards (stream recreated?); replaying it from the start",
			"applied", applied, "stream_last", last)
		c.stopConsuming()
		c.applied.Store(0)
		c.mu.Lock()
		c.h.catchingUp, c.h.targetSet = true, false
		c.h.why = "replaying a recreated stream"
		c.recompute()
		c.mu.Unlock()
		return
	}
	c.streamLast.Store(last)
	lag := ci.NumPending
	if ci.Delivered.Stream > applied {
		lag += ci.Delivered.Stream - applied
	}
	c.lag.Store(lag)

	c.mu.Lock()
	defer c.mu.Unlock()
	h := &c.h
	h.infoErrs = 0
	h.consuming = true
	if h.catchingUp && !h.targetSet {
		h.target, h.targetSet = last, true
	}
	switch {
	case h.catchingUp:
		// Lag 0 proves it; reaching the target is enough when events keep
		// arriving so fast that a poll never sees lag 0.
		if lag == 0 || applied >= h.target {
			h.catchingUp, h.targetSet = false, false
		} else {
			h.why = fmt.Sprintf("catching up: applied %d of %d", applied, h.target)
		}
	case lag > 0 && h.lastLag > 0 && applied == h.lastApplied:
		// Events were waiting at the last poll too and none was applied
		// since: the consumer is stuck, whatever the connection says.
		c.log.Warn("events: consumer stalled", "applied", applied, "lag", lag)
		h.catchingUp, h.target, h.targetSet = true, last, true
		h.why = fmt.Sprintf("consumer stalled at %d with %d pending", applied, lag)
	}
	h.lastApplied, h.lastLag = applied, lag
	c.recompute()
}

// recompute turns the health inputs into degradedSince. mu must be held.
func (c *Consumer) recompute() {
	h := &c.h
	healthy := h.connected && h.consuming && !h.catchingUp && h.infoErrs < 2
	if healthy {
		if c.degradedSince.Swap(0) != 0 {
			if c.replayed.CompareAndSwap(false, true) {
				c.log.Info("events: replayed the event stream", "applied", c.applied.Load(), "ledger", c.ledger.String())
			} else {
				c.log.Info("events: caught up with the event stream; no longer degraded", "applied", c.applied.Load())
			}
		}
		h.why = ""
		return
	}
	c.degradedSince.CompareAndSwap(0, time.Now().UnixNano())
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
	if c.bad.allow() {
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
		if c.bad.allow() {
			c.log.Warn("events: skipping a bad event", "seq", seq, "nats_subject", msg.Subject(), "error", err)
		}
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

// logLimiter lets through at most 10 log lines a second, so that a flood of
// bad messages cannot flood the log too (they are all counted).
type logLimiter struct {
	mu     sync.Mutex
	second int64
	n      int
}

func (l *logLimiter) allow() bool {
	now := time.Now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now != l.second {
		l.second, l.n = now, 0
	}
	l.n++
	return l.n <= 10
}
