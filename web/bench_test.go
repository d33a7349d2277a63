package web

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkDecisionHandler measures POST /v1/decision through the real
// router, verifier (cache warm after the first request) and engine: JSON
// decoding, verification, the shipped policy and JSON encoding.
//
//	go test -run XXX -bench DecisionHandler -benchmem ./web/
func BenchmarkDecisionHandler(b *testing.B) {
	f := newFixture(b)
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
}
