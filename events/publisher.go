package events

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardenauthz/warden/claims"
)

// PublisherOptions configures a Publisher.
type PublisherOptions struct {
	// Stream is the stream the publish must land in. Default DefaultStream.
	Stream string
	// Now stamps events without at. Default time.Now.
	Now func() time.Time
	// MaxLifetime and Leeway are tokens.max_lifetime and tokens.leeway. An
	// event whose at lies further back than their sum can match no token
	// that is still valid, and is refused rather than reported enforced.
	// Defaults claims.DefaultMaxLifetime and claims.DefaultLeeway.
	MaxLifetime, Leeway time.Duration
	// Issuers are the issuers this Warden trusts (tokens.issuers). An
	// event scoped to another issuer can match no token, and is refused.
	// Empty: any issuer is accepted.
	Issuers []string
	// TracerProvider records a span per publish and carries its trace to
	// every replica's apply in the message headers. Nil: no spans, but a
	// trace already in the publish's context still travels with the event.
	TracerProvider trace.TracerProvider
}

// Publisher publishes events to the stream.
type Publisher struct {
	js      jetstream.JetStream
	stream  string
	now     func() time.Time
	span    time.Duration // MaxLifetime + Leeway
	leeway  time.Duration
	issuers []string
	tracer  trace.Tracer
}

// Ack is what the stream answered to a publish.
type Ack struct {
	// Seq is the stream sequence of the event; a replica has enforced it
	// once its applied sequence reaches Seq.
	Seq uint64
	// Duplicate says an event with this id was already stored within the
	// duplicate window; Seq is then the original's sequence.
	Duplicate bool
	// Event is the event as published, with id, v and at filled in.
	Event Event
}

// NewPublisher returns a publisher on nc.
func NewPublisher(nc *nats.Conn, opts PublisherOptions) (*Publisher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("events: publisher: %w", err)
	}
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = claims.DefaultMaxLifetime
	}
	if opts.Leeway <= 0 {
		opts.Leeway = claims.DefaultLeeway
	}
	return &Publisher{
		js: js, stream: opts.Stream, now: opts.Now,
		span: opts.MaxLifetime + opts.Leeway, leeway: opts.Leeway, issuers: slices.Clone(opts.Issuers),
		tracer: tracer(opts.TracerProvider),
	}, nil
}

// Publish is PublishAck returning only the stream sequence.
func (p *Publisher) Publish(ctx context.Context, e Event) (seq uint64, err error) {
	ack, err := p.PublishAck(ctx, e)
	return ack.Seq, err
}

// PublishAck fills in what e lacks (v = 1, a random id, at = now), validates
// it, and publishes it to warden.events.<type> with Nats-Msg-Id = id, so
// that publishing the same event again within the duplicate window stores
// it once. It returns once JetStream has stored the event. The trace in ctx
// travels with the event (traceparent in the message headers).
//
// Errors wrap ErrInvalidEvent, naming the field, when e is not a valid event
// or is one that can change nothing (see effectless); other errors come
// from NATS.
func (p *Publisher) PublishAck(ctx context.Context, e Event) (_ Ack, err error) {
	now := p.now()
	if e.V == 0 {
		e.V = Version
	}
	if e.ID == "" {
		e.ID = rand.Text()
	}
	if e.At.IsZero() {
		e.At = now.UTC()
	}
	if err := e.Validate(); err != nil {
		return Ack{}, err
	}
	if err := p.effectless(e, now); err != nil {
		return Ack{}, err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return Ack{}, fmt.Errorf("events: publish: %w", err)
	}
	if len(data) > MaxEventBytes {
		return Ack{}, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrInvalidEvent, len(data), MaxEventBytes)
	}
	msg := nats.NewMsg(e.Type.Subject())
	msg.Data = data
	ctx, span := p.tracer.Start(ctx, SpanPublish, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.destination.name", msg.Subject),
		attribute.String("warden.event_id", e.ID),
		attribute.String("warden.event_type", string(e.Type)),
	))
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	traceContext.Inject(ctx, headerCarrier(msg.Header))
	pa, err := p.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(e.ID),
		// A subject captured by another stream, or by none, would "succeed"
		// somewhere no replica reads.
		jetstream.WithExpectStream(p.stream))
	if err != nil {
		return Ack{}, fmt.Errorf("events: publish %s: %w", e.Type, err)
	}
	span.SetAttributes(attribute.Int64("warden.event_seq", int64(pa.Sequence)), attribute.Bool("warden.event_duplicate", pa.Duplicate))
	return Ack{Seq: pa.Sequence, Duplicate: pa.Duplicate, Event: e}, nil
}

// effectless refuses an event that is valid but could change nothing, so
// that its author hears so instead of "enforced on every replica":
//
//   - at more than MaxAtSkew in the future: it would outlive its meaning,
//     and a subject_enabled dated ahead would cancel a later real disable;
//   - at older than tokens.max_lifetime + leeway: every token it could
//     match has expired, and replicas drop it at once;
//   - an issuer this Warden does not trust: no token of it is accepted;
//   - a token_revoked whose expires_at (plus leeway) has passed.
func (p *Publisher) effectless(e Event, now time.Time) error {
	if e.At.After(now.Add(MaxAtSkew)) {
		return fmt.Errorf("%w: at: %s is more than %s in the future", ErrInvalidEvent, e.At.Format(time.RFC3339), MaxAtSkew)
	}
	if e.At.Before(now.Add(-p.span)) {
		return fmt.Errorf("%w: at: %s is more than %s ago (tokens.max_lifetime + leeway): every token it could match has expired",
			ErrInvalidEvent, e.At.Format(time.RFC3339), p.span)
	}
	if e.Issuer != "" && len(p.issuers) > 0 && !slices.Contains(p.issuers, e.Issuer) {
		return fmt.Errorf("%w: issuer: %q is not an issuer this Warden trusts (tokens.issuers: %s)",
			ErrInvalidEvent, e.Issuer, strings.Join(p.issuers, ", "))
	}
	if !e.ExpiresAt.IsZero() && e.ExpiresAt.Add(p.leeway).Before(now) {
		return fmt.Errorf("%w: expires_at: %s has passed: the token is no longer accepted anyway",
			ErrInvalidEvent, e.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}
