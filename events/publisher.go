package events

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublisherOptions configures a Publisher.
type PublisherOptions struct {
	// Stream is the stream the publish must land in. Default DefaultStream.
	Stream string
	// Now stamps events without at. Default time.Now.
	Now func() time.Time
}

// Publisher publishes events to the stream.
type Publisher struct {
	js     jetstream.JetStream
	stream string
	now    func() time.Time
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
	return &Publisher{js: js, stream: opts.Stream, now: opts.Now}, nil
}

// Publish is PublishAck returning only the stream sequence.
func (p *Publisher) Publish(ctx context.Context, e Event) (seq uint64, err error) {
	ack, err := p.PublishAck(ctx, e)
	return ack.Seq, err
}

// PublishAck fills in what e lacks (v = 1, a random id, at = now), validates
// it, and publishes it to warden.events.<type> with Nats-Msg-Id = id, so
// that publishing the same event again within the duplicate window stores
// it once. It returns once JetStream has stored the event.
//
// Errors wrap ErrInvalidEvent when e is not a valid event (including an at
// more than MaxAtSkew in the future); other errors come from NATS.
func (p *Publisher) PublishAck(ctx context.Context, e Event) (Ack, error) {
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
	if e.At.After(now.Add(MaxAtSkew)) {
		return Ack{}, fmt.Errorf("%w: at: %s is more than %s in the future", ErrInvalidEvent, e.At.Format(time.RFC3339), MaxAtSkew)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return Ack{}, fmt.Errorf("events: publish: %w", err)
	}
	if len(data) > MaxEventBytes {
		return Ack{}, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrInvalidEvent, len(data), MaxEventBytes)
	}
	pa, err := p.js.Publish(ctx, e.Type.Subject(), data,
		jetstream.WithMsgID(e.ID),
		// A subject captured by another stream, or by none, would "succeed"
		// somewhere no replica reads.
		jetstream.WithExpectStream(p.stream))
	if err != nil {
		return Ack{}, fmt.Errorf("events: publish %s: %w", e.Type, err)
	}
	return Ack{Seq: pa.Sequence, Duplicate: pa.Duplicate, Event: e}, nil
}
