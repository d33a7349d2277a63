package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardenauthz/warden/claims"
)

// DefaultStream is the name of the event stream (events.stream).
const DefaultStream = "WARDEN_EVENTS"

// maxStoredMsgBytes bounds what the stream stores per message. It is larger
// than MaxEventBytes so that an oversize event still reaches the replicas and
// is counted as a bad message there, where an operator looks, but a
// megabyte-sized message is refused at publish time.
const maxStoredMsgBytes = 64 << 10

// StreamOptions configures the event stream.
type StreamOptions struct {
	// Name is the stream name. Default DefaultStream.
	Name string
	// MaxLifetime and Leeway are tokens.max_lifetime and tokens.leeway; the
	// stream keeps events for their sum, the longest an event can matter.
	// Defaults claims.DefaultMaxLifetime and claims.DefaultLeeway.
	MaxLifetime, Leeway time.Duration
	// Duplicates is the window in which a second publish with the same
	// Nats-Msg-Id is dropped. Default 2m (never longer than the stream's
	// MaxAge).
	Duplicates time.Duration
	// Replicas is the number of copies in a NATS cluster. Default 1.
	Replicas int
}

// StreamConfig is the JetStream configuration EnsureStream applies.
func (o StreamOptions) StreamConfig() jetstream.StreamConfig {
	if o.Name == "" {
		o.Name = DefaultStream
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = claims.DefaultMaxLifetime
	}
	if o.Leeway <= 0 {
		o.Leeway = claims.DefaultLeeway
	}
	maxAge := o.MaxLifetime + o.Leeway
	if o.Duplicates <= 0 {
		o.Duplicates = 2 * time.Minute
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	return jetstream.StreamConfig{
		Name:        o.Name,
		Description: "Warden permission-change events (schema v1); replicas fold them into their revocation ledger",
		Subjects:    []string{SubjectAll},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      maxAge,
		// Old events go first: an event older than MaxAge can no longer
		// match a valid token, a new one can.
		Discard:    jetstream.DiscardOld,
		Duplicates: min(o.Duplicates, maxAge),
		MaxMsgSize: maxStoredMsgBytes,
		MaxMsgs:    -1,
		MaxBytes:   -1,
		Replicas:   o.Replicas,
	}
}

// EnsureStream creates the event stream, or updates it to opts when it
// exists (for example after tokens.max_lifetime grew). Running it on every
// start of every replica is safe.
//
// It never shortens the stream's retention: the fleet shares one stream,
// and a replica with a shorter tokens.max_lifetime (a canary) would
// otherwise purge the events that other replicas' longer-lived tokens still
// need, and replicas started later would report ready with a ledger missing
// them. The longer MaxAge stays; each Consumer reports the retention it
// sees against what it needs (Status.Retention, Status.RetentionShort).
func EnsureStream(ctx context.Context, nc *nats.Conn, opts StreamOptions) (jetstream.Stream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("events: stream: %w", err)
	}
	cfg := opts.StreamConfig()
	cur, err := js.Stream(ctx, cfg.Name)
	switch {
	case err == nil:
		cfg = keepRetention(cfg, cur.CachedInfo().Config)
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("events: stream %s: %w", cfg.Name, err)
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, fmt.Errorf("events: stream %s: the NATS server has no JetStream (start it with -js): %w", cfg.Name, err)
		}
		return nil, fmt.Errorf("events: stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// keepRetention returns want with the retention of the stream as it is
// (old) where that is longer: MaxAge 0 keeps events for ever.
func keepRetention(want, old jetstream.StreamConfig) jetstream.StreamConfig {
	if old.MaxAge == 0 || old.MaxAge > want.MaxAge {
		want.MaxAge = old.MaxAge
		want.Duplicates = max(want.Duplicates, old.Duplicates)
	}
	return want
}
