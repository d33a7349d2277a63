package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrNotReady is wrapped by Ready's error: the replica has not caught
	// up with the stream or cannot follow it.
	ErrNotReady = errors.New("event stream not ready")
	// ErrNoState is wrapped by Ready's error too while the replica has not
	// replayed the stream once: it knows no revocation at all. A replica
	// that has replayed and lost the stream since keeps deciding, from its
	// state within events.grace and by events.on_disconnect after it; one
	// with no state should not be asked.
	ErrNoState = errors.New("the event stream has not been replayed yet")
)

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
}

// Ready returns nil once the replica has replayed the stream up to the last
// sequence it saw at start (or reconnection) and follows it; otherwise an
// error wrapping ErrNotReady that says why, and ErrNoState as well before
// the first replay.
func (c *Consumer) Ready() error {
	if c.degradedSince.Load() == 0 {
		return nil
	}
	c.mu.Lock()
	why := c.h.why
	c.mu.Unlock()
	if !c.replayed.Load() {
		return fmt.Errorf("%w: %w: %s", ErrNotReady, ErrNoState, why)
	}
	return fmt.Errorf("%w: %s", ErrNotReady, why)
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
	BadMessages uint64 `json:"bad_messages"`
	// LedgerEntries is the number of subjects the ledger holds state for.
	LedgerEntries int `json:"ledger_subjects"`
	// Retention is how long the stream keeps events (its MaxAge; 0 for
	// ever), as last read; RetentionNeeded is what this replica's tokens
	// need, tokens.max_lifetime + leeway. RetentionShort says the stream
	// forgets events sooner than that: someone shortened it around Warden,
	// and revocations of this replica's longest-lived tokens can be lost.
	Retention       time.Duration `json:"retention,omitempty"`
	RetentionNeeded time.Duration `json:"retention_needed"`
	RetentionShort  bool          `json:"retention_short"`
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
		Retention:     time.Duration(c.retention.Load()),
		// The ledger keeps an entry exactly as long as a token could use it.
		RetentionNeeded: time.Duration(c.ledger.span),
	}
	s.RetentionShort = s.Retention > 0 && s.Retention < s.RetentionNeeded
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

// watchConnection turns connection state changes into health at once, on a
// goroutine of its own: a poll may be stuck for its whole timeout in a
// request to a server that just went away.
func (c *Consumer) watchConnection(ctx context.Context, statuses chan nats.Status) {
	defer c.nc.RemoveStatusListener(statuses)
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-statuses:
			if s != nats.CONNECTED {
				c.lost(s)
			}
			select {
			case c.nudge <- struct{}{}:
			default:
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
	if c.pollCancel != nil {
		// A request in flight to the server that went away would otherwise
		// hold the next poll back for its whole timeout (nats.go keeps
		// requests across a reconnect).
		c.pollCancel()
	}
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
			if c.bad.Allow() {
				c.log.Warn("events: cannot follow the stream yet; retrying", "error", err)
			}
			return
		}
	}

	// Loaded before asking: the stream's last sequence, read after, is then
	// at least this unless the stream really went backwards.
	applied := c.applied.Load()
	pctx, cancel := context.WithTimeout(ctx, max(c.opts.PollInterval, 2*time.Second))
	defer cancel()
	c.mu.Lock()
	c.pollCancel = cancel
	c.mu.Unlock()
	var si *jetstream.StreamInfo
	st, err := c.js.Stream(pctx, c.opts.Stream)
	if err == nil {
		si = st.CachedInfo()
		// The ordered consumer's own CachedInfo would do, but its Info
		// holds the lock message delivery needs for a network round trip.
		var cons jetstream.Consumer
		cons, err = c.js.Consumer(pctx, c.opts.Stream, c.oc.CachedInfo().Name)
		switch {
		case err == nil:
			c.observe(applied, si, cons.CachedInfo())
			return
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			// The ordered consumer is being recreated under another name
			// (its server went away): the stream alone tells the lag.
			c.observe(applied, si, nil)
			return
		}
	}
	if c.bad.Allow() {
		c.log.Warn("events: cannot read the stream position", "error", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.h.infoErrs++
	if c.h.connected && c.h.infoErrs >= 2 {
		c.h.why = "cannot read the stream position: " + err.Error()
	}
	c.recompute()
}

// observe folds one successful poll into the health verdict; applied was
// loaded before the requests. ci is nil when the consumer could not be
// found (being recreated): the lag is then the stream's last sequence less
// what was applied.
func (c *Consumer) observe(applied uint64, si *jetstream.StreamInfo, ci *jetstream.ConsumerInfo) {
	c.observeRetention(si.Config.MaxAge)
	last := si.State.LastSeq
	recreated := !c.streamCreated.IsZero() && !si.Created.Equal(c.streamCreated)
	c.streamCreated = si.Created
	if recreated || last < applied {
		// The stream was deleted and created again: its sequences start
		// over, and the ordered consumer would resume after the old
		// sequence, skipping the new stream's first events. Replay it from
		// the beginning; the ledger keeps what it has, which can only deny
		// more.
		c.log.Error("events: the stream was recreated; replaying it from the start",
			"applied", applied, "stream_last", last, "created", si.Created)
		c.stopConsuming()
		c.applied.Store(0)
		c.mu.Lock()
		c.h.catchingUp, c.h.targetSet = true, false
		c.h.why = "replaying a recreated stream"
		c.recompute()
		c.mu.Unlock()
		return
	}
	if first := si.State.FirstSeq; first > 0 {
		// Sequences before the first message no longer exist (aged out):
		// there is nothing to apply there.
		storeMax(&c.applied, first-1)
	}
	applied = c.applied.Load()
	c.streamLast.Store(last)
	var lag uint64
	switch {
	case ci != nil:
		lag = ci.NumPending
		if ci.Delivered.Stream > applied {
			lag += ci.Delivered.Stream - applied
		}
	case last > applied:
		lag = last - applied
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

// observeRetention records the stream's MaxAge and says so in the log when
// it changes: loudly when it is shorter than this replica needs.
func (c *Consumer) observeRetention(maxAge time.Duration) {
	if time.Duration(c.retention.Swap(int64(maxAge))) == maxAge {
		return
	}
	need := time.Duration(c.ledger.span)
	switch {
	case maxAge > 0 && maxAge < need:
		c.log.Error("events: the stream forgets events sooner than this replica's tokens live; revocations of its longest-lived tokens can be lost. Restart a replica with the longer tokens.max_lifetime, or raise the stream's max_age",
			"stream", c.opts.Stream, "max_age", maxAge, "needed", need)
	case maxAge == 0 || maxAge > need:
		c.log.Warn("events: the stream keeps events longer than this replica needs (another replica's tokens live longer); replicas never shorten it",
			"stream", c.opts.Stream, "max_age", maxAge, "needed", need)
	}
}
