package events

import (
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// An event carries its trace in its NATS message headers, as W3C
// traceparent and tracestate, so that one trace shows the publish and the
// apply on every replica. A publisher in another language continues a trace
// by setting the same two headers (docs/events.md).

// tracerName names the spans' instrumentation scope.
const tracerName = "github.com/wardenauthz/warden/events"

// Span names: the publish (a producer span, in the publisher's trace) and
// each replica's apply (a consumer span, a child of the publish).
const (
	SpanPublish = "warden.event.publish"
	SpanApply   = "warden.event.apply"
)

var traceContext = propagation.TraceContext{}

// tracer is tp's tracer for this package; nil tp traces nothing.
func tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// headerCarrier reads and writes trace headers on a NATS message. NATS
// header names are case-sensitive; a carrier finds traceparent in any case,
// since clients in other languages spell it as they like, and writes it in
// the W3C spelling.
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string {
	if v, ok := h[key]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (h headerCarrier) Set(key, value string) { h[strings.ToLower(key)] = []string{value} }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}
