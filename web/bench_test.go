package web

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wardenauthz/warden/decision"
)

// BenchmarkDecisionHandler measures POST /v1/decision through the real
// router, verifier (its cache warm after the first request) and engine:
// JSON decoding, verification, the shipped policy and JSON encoding, with the
// decision cache off (Rego runs every time) and on.
//
//	go test -run XXX -bench DecisionHandler -benchmem ./web/
func BenchmarkDecisionHandler(b *testing.B) {
	for _, bc := range []struct {
		name      string
		cacheSize int
	}{{"evaluated", 0}, {"cached", 1000}} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixtureWith(b, decision.Options{DecisionCacheSize: bc.cacheSize})
			body := `{"token":"` + f.token(b, "alice", "manager") + `","action":"orders:approve","resource":{"type":"order","id":"42"}}`
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", "/v1/decision", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				f.handler.ServeHTTP(rec, req)
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"allow":true`) {
					b.Fatalf("unexpected answer %d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
