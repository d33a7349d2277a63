package web

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/wardenauthz/warden/web/decisionlog"
)

// TestTracing: with a tracer provider, a decision request continues the
// caller's traceparent, and each decision is a span that names its id,
// reason and policy revision. An admin request's span names the admin,
// allowed or refused.
func TestTracing(t *testing.T) {
	f := newFixture(t)
	rec := tracetest.NewSpanRecorder()
	f.serve(t, nil, decisionlog.Options{}, Options{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))})
	body := `{"token":"` + f.token(t, "bob", "staff") + `","checks":[{"action":"orders:read"},{"action":"orders:approve"}]}`
	status, got := f.do(t, "POST", "/v1/decisions", "application/json", body,
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if status != 200 {
		t.Fatalf("status %d %v", status, got)
	}
	spans := rec.Ended()
	var server sdktrace.ReadOnlySpan
	var decisions []sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch s.Name() {
		case "POST /v1/decisions":
			server = s
		case "warden.decision":
			decisions = append(decisions, s)
		}
	}
	if server == nil || server.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || server.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("no server span continuing the caller's trace: %v", spans)
	}
	results := got["results"].([]any)
	if len(decisions) != 2 {
		t.Fatalf("%d decision spans, want 2", len(decisions))
	}
	for i, d := range decisions {
		attrs := map[string]string{}
		for _, kv := range d.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		want := results[i].(map[string]any)
		if d.Parent().SpanID() != server.SpanContext().SpanID() || attrs["warden.decision_id"] != want["decision_id"] ||
			attrs["warden.reason"] != want["reason"] || attrs["warden.policy_revision"] != want["policy_revision"] {
			t.Errorf("decision span %d: %v under %v, want %v", i, attrs, d.Parent().SpanID(), want)
		}
	}

	for _, tc := range []struct {
		sub, role string
		status    int
	}{{"root", "warden-admin", 200}, {"bob", "staff", 403}} {
		status, _ := f.do(t, "GET", "/v1/decisions/recent", "", "", "Authorization", "Bearer "+f.token(t, tc.sub, tc.role))
		if status != tc.status {
			t.Fatalf("GET /v1/decisions/recent as %s: %d, want %d", tc.sub, status, tc.status)
		}
		spans := rec.Ended()
		last := spans[len(spans)-1]
		code := -1
		admin := ""
		for _, kv := range last.Attributes() {
			switch kv.Key {
			case "warden.admin":
				admin = kv.Value.AsString()
			case "http.response.status_code":
				code = int(kv.Value.AsInt64())
			}
		}
		if last.Name() != "GET /v1/decisions/recent" || admin != tc.sub || code != tc.status {
			t.Errorf("admin request's span %s: admin %q, status %d; want %s, %d", last.Name(), admin, code, tc.sub, tc.status)
		}
	}
}
