package events

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recorded is a tracer provider that keeps every ended span, as a process
// with its own exporter would.
func recorded() (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), rec
}

// spansNamed are rec's ended spans called name.
func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// TestTracePublishToApply follows one event's trace from the publisher's
// request to the apply on each replica, each with its own tracer provider
// as separate processes have: one trace shows the publish and every apply
// as its children.
func TestTracePublishToApply(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	ensureStream(t, nc)
	pubTP, pubRec := recorded()
	pub, err := NewPublisher(nc, PublisherOptions{TracerProvider: pubTP})
	if err != nil {
		t.Fatal(err)
	}
	var reps []*Consumer
	var recs []*tracetest.SpanRecorder
	for i := range 2 {
		tp, rec := recorded()
		reps = append(reps, replica(t, srv, ConsumerOptions{ReplicaID: fmt.Sprint("r", i), TracerProvider: tp}))
		recs = append(recs, rec)
	}
	waitReady(t, reps...)

	t.Run("publish and every apply in one trace", func(t *testing.T) {
		// The admin API's request span, in the publisher's process.
		ctx, request := pubTP.Tracer("test").Start(context.Background(), "POST /v1/events")
		ack, err := pub.PublishAck(ctx, Event{Type: TypeRolesChanged, Subject: "alice"})
		request.End()
		if err != nil {
			t.Fatal(err)
		}
		waitApplied(t, ack.Seq, reps...)

		published := spansNamed(pubRec, SpanPublish)
		if len(published) != 1 {
			t.Fatalf("%d publish spans, want 1", len(published))
		}
		ps := published[0]
		if ps.Parent().SpanID() != request.SpanContext().SpanID() || ps.SpanKind() != trace.SpanKindProducer {
			t.Errorf("publish span: parent %s kind %s, want the request's span %s and producer", ps.Parent().SpanID(), ps.SpanKind(), request.SpanContext().SpanID())
		}
		if attr(ps, "warden.event_id").AsString() != ack.Event.ID || attr(ps, "warden.event_seq").AsInt64() != int64(ack.Seq) {
			t.Errorf("publish span attributes %v, want event %s seq %d", ps.Attributes(), ack.Event.ID, ack.Seq)
		}
		for i, rec := range recs {
			applied := spansNamed(rec, SpanApply)
			if len(applied) != 1 {
				t.Fatalf("replica r%d: %d apply spans, want 1", i, len(applied))
			}
			as := applied[0]
			if as.SpanContext().TraceID() != request.SpanContext().TraceID() || as.Parent().SpanID() != ps.SpanContext().SpanID() {
				t.Errorf("replica r%d: apply span in trace %s under %s, want trace %s under the publish %s",
					i, as.SpanContext().TraceID(), as.Parent().SpanID(), request.SpanContext().TraceID(), ps.SpanContext().SpanID())
			}
			if as.SpanKind() != trace.SpanKindConsumer || as.Status().Code == codes.Error ||
				attr(as, "warden.replica").AsString() != fmt.Sprint("r", i) || attr(as, "warden.event_id").AsString() != ack.Event.ID ||
				attr(as, "warden.event_type").AsString() != string(TypeRolesChanged) {
				t.Errorf("replica r%d: apply span kind %s status %v attributes %v", i, as.SpanKind(), as.Status(), as.Attributes())
			}
		}
	})

	// A publisher in another language sets traceparent itself, in its own
	// spelling of the header name; a bad event still shows in the trace,
	// as an error.
	t.Run("traceparent from another client", func(t *testing.T) {
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		good, _ := json.Marshal(Event{V: 1, ID: "from-js", Type: TypeSubjectDisabled, Subject: "bob", At: time.Now().UTC()})
		for _, m := range []struct {
			data    []byte
			spanID  string
			bad     bool
			subject string
			header  string
		}{
			{good, "00f067aa0ba902b7", false, TypeSubjectDisabled.Subject(), "traceparent"},
			{[]byte(`{"v":1,"type":"roles_changed"}`), "00f067aa0ba902b8", true, TypeRolesChanged.Subject(), "TraceParent"},
		} {
			msg := nats.NewMsg(m.subject)
			msg.Data = m.data
			msg.Header[m.header] = []string{"00-" + traceID + "-" + m.spanID + "-01"}
			pa, err := js.PublishMsg(context.Background(), msg)
			if err != nil {
				t.Fatal(err)
			}
			waitApplied(t, pa.Sequence, reps...)
			for i, rec := range recs {
				var found sdktrace.ReadOnlySpan
				for _, s := range spansNamed(rec, SpanApply) {
					if s.Parent().SpanID().String() == m.spanID {
						found = s
					}
				}
				switch {
				case found == nil:
					t.Errorf("replica r%d: no apply span under the client's span %s", i, m.spanID)
				case found.SpanContext().TraceID().String() != traceID:
					t.Errorf("replica r%d: apply span in trace %s, want the client's %s", i, found.SpanContext().TraceID(), traceID)
				case m.bad != (found.Status().Code == codes.Error):
					t.Errorf("replica r%d: a bad event %v has apply status %v", i, m.bad, found.Status())
				}
			}
		}
	})

	t.Run("no trace, no apply span", func(t *testing.T) {
		before := len(spansNamed(recs[0], SpanApply))
		plain, err := NewPublisher(nc, PublisherOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seq := publish(t, plain, Event{Type: TypeSessionsRevoked, Subject: "carol"})
		waitApplied(t, seq, reps...)
		if n := len(spansNamed(recs[0], SpanApply)); n != before {
			t.Errorf("an event published without a trace made %d apply spans", n-before)
		}
	})
}
