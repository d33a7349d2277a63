package main

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// startTracing exports spans over OTLP/HTTP to endpoint (tracing.otlp_endpoint),
// in batches, named as this replica. Shutdown flushes what is left. An
// endpoint without a path is a collector's base URL, as
// OTEL_EXPORTER_OTLP_ENDPOINT is: traces go to its /v1/traces.
func startTracing(ctx context.Context, endpoint, replicaID string) (*sdktrace.TracerProvider, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing.otlp_endpoint %q: want an http or https URL, e.g. http://otel-collector:4318", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
	if err != nil {
		return nil, fmt.Errorf("tracing.otlp_endpoint %q: %w", endpoint, err)
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "warden"),
			attribute.String("service.version", versionString()),
			attribute.String("service.instance.id", replicaID),
		)),
	), nil
}
