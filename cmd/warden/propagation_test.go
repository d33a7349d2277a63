package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkPropagation measures what issue 3 promises: the time from
// POST /v1/events answering to every one of three replicas denying the
// affected token. Each round demotes a different subject whose token all
// three replicas allowed just before; the replicas are polled over HTTP
// until each denies it with token_stale. Run it with:
//
//	go test -run XXX -bench Propagation -benchtime 1000x ./cmd/warden/
//
// It reports p50, p99 and max in milliseconds.
func BenchmarkPropagation(b *testing.B) {
	dataDir := b.TempDir()
	replicas := startReplicas(b, dataDir, 3)

	dev, _, err := loadDevIssuer(dataDir)
	if err != nil {
		b.Fatal(err)
	}
	admin, _ := dev.mint("bench-admin", []string{"warden-admin"}, 30*time.Minute, nil, time.Now().Add(-2*time.Second))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

	// Tokens are minted up front, two seconds in the past, so that every
	// one is older than its event (iat has one-second resolution).
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i], _ = dev.mint(fmt.Sprintf("user-%d", i), []string{"manager"}, 30*time.Minute, nil, time.Now().Add(-2*time.Second))
	}
	for _, r := range replicas {
		if reason := decide(b, client, r, tokens[0]); reason != "allowed" {
			b.Fatalf("%s: %s before any event", r, reason)
		}
	}

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Sprintf(`{"type":"roles_changed","subject":"user-%d"}`, i)
		req, _ := http.NewRequest("POST", replicas[0]+"/v1/events", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("publish: %v %v", err, resp)
		}
		resp.Body.Close()
		published := time.Now()
		awaitAll(b, client, replicas, tokens[i], "token_stale", published)
		lat = append(lat, time.Since(published))
	}
	b.StopTimer()
	reportLatencies(b, lat)
}

// awaitAll asks every replica about token until each answers reason,
// failing 5 s after start.
func awaitAll(b *testing.B, client *http.Client, replicas []string, token, reason string, start time.Time) {
	for _, r := range replicas {
		for decide(b, client, r, token) != reason {
			if time.Since(start) > 5*time.Second {
				b.Fatalf("%s did not answer %s within 5s", r, reason)
			}
		}
	}
}

// reportLatencies reports p50, p99 and max of lat in milliseconds.
func reportLatencies(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
}

// decide asks a replica about token and returns the reason.
func decide(b *testing.B, client *http.Client, baseURL, token string) string {
	req, _ := http.NewRequest("POST", baseURL+"/v1/decision", bytes.NewReader([]byte(`{"action":"orders:approve"}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var d decisionResult
	json.NewDecoder(resp.Body).Decode(&d)
	return d.Reason
}
