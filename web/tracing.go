package web

import (
	"context"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceContext reads and writes W3C traceparent and tracestate headers.
var traceContext = propagation.TraceContext{}

// traceRequest is a server span for the request, a child of the caller's
// traceparent when it sent one. It runs only with Options.TracerProvider.
func (s *server) traceRequest(c *gin.Context) {
	ctx := traceContext.Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
	ctx, span := s.tracer.Start(ctx, c.Request.Method+" "+c.FullPath(), trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
	status := c.Writer.Status()
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, "")
	}
}

// traceDecisions records a span per answered decision under the request's
// span, with what a trace reader looks for: the decision id (the key into
// the decision log), the reason, the policy revision and the replica.
func (s *server) traceDecisions(ctx context.Context, results []decisionResponse) {
	if s.tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return
	}
	replica := ""
	if s.events != nil {
		replica = s.events.ReplicaID
	}
	for i := range results {
		r := &results[i]
		_, span := s.tracer.Start(ctx, "warden.decision", trace.WithAttributes(
			attribute.String("warden.decision_id", r.DecisionID),
			attribute.Bool("warden.allow", r.Allow),
			attribute.String("warden.reason", string(r.Reason)),
			attribute.String("warden.policy_revision", r.PolicyRevision),
			attribute.String("warden.replica", replica),
		))
		span.End()
	}
}
