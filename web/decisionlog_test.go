package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/web/decisionlog"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readLines returns the JSON lines of the file at path, decoded.
func readLines(t testing.TB, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %v\n%s", err, sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

// logFile gives f a decision log writing JSON lines to a new file.
func (f *fixture) logFile(t *testing.T, opts Options) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() }) // after the log's Close, registered later
	f.serve(t, file, decisionlog.Options{}, opts)
	return path
}

var entryKeys = []string{"action", "allow", "decision_id", "latency_us", "policy_revision", "reason", "replica", "resource_id", "resource_type", "subject", "time"}

var msTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestDecisionLogEntries(t *testing.T) {
	f := newFixture(t)
	path := f.logFile(t, Options{})
	manager := f.token(t, "alice", "manager")
	staff := f.token(t, "bob", "staff")
	tampered := manager[:len(manager)-6] + "AAAAAA"

	type want struct {
		subject, action, resType, resID, reason string
		allow                                   bool
	}
	tests := []struct {
		name   string
		body   string
		header []string
		want   want
	}{
		{"allow, numeric id", `{"token":"` + manager + `","action":"orders:approve","resource":{"type":"order","id":42}}`, nil,
			want{"alice", "orders:approve", "order", "42", "allowed", true}},
		{"deny, resource beyond type and id", `{"token":"` + staff + `","action":"orders:approve","resource":{"type":"order","id":"7","owner":"owner-secret","amount":"amount-secret"}}`, nil,
			want{"bob", "orders:approve", "order", "7", "policy_denied", false}},
		{"token failure", `{"token":"` + tampered + `","action":"orders:read","resource":{"type":"invoice"}}`, nil,
			want{"", "orders:read", "invoice", "", "token_bad_signature", false}},
		{"token from the header, resource id not a string", `{"action":"orders:read","resource":{"type":["x"],"id":{"a":1}}}`, []string{"Authorization", "Bearer " + manager},
			want{"alice", "orders:read", "", "", "allowed", true}},
		{"no token", `{"action":"orders:read"}`, nil,
			want{"", "orders:read", "", "", "token_missing", false}},
	}
	var ids []string
	for _, tt := range tests {
		status, got := f.do(t, "POST", "/v1/decision", "application/json", tt.body, tt.header...)
		if status != 200 {
			t.Fatalf("%s: status %d %v", tt.name, status, got)
		}
		ids = append(ids, got["decision_id"].(string))
	}
	eventually(t, "one line per decision", func() bool { return len(readLines(t, path)) == len(tests) })

	lines := readLines(t, path)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := lines[i]
			if diff := cmp.Diff(entryKeys, slices.Sorted(maps.Keys(line))); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			got := want{str(line["subject"]), str(line["action"]), str(line["resource_type"]), str(line["resource_id"]), str(line["reason"]), line["allow"] == true}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("entry (-want +got):\n%s", diff)
			}
			if line["decision_id"] != ids[i] {
				t.Errorf("decision_id = %v, want the response's %s", line["decision_id"], ids[i])
			}
			if !msTime.MatchString(str(line["time"])) {
				t.Errorf("time = %v, want RFC 3339 UTC with milliseconds", line["time"])
			}
			if lat, _ := line["latency_us"].(float64); lat < 0 || lat > 10e6 {
				t.Errorf("latency_us = %v", line["latency_us"])
			}
			if line["replica"] != "test" || str(line["policy_revision"]) == "" {
				t.Errorf("replica = %v, policy_revision = %v", line["replica"], line["policy_revision"])
			}
		})
	}

	raw, _ := os.ReadFile(path)
	for _, tok := range []string{manager, staff, tampered} {
		for _, seg := range strings.Split(tok, ".") {
			if strings.Contains(string(raw), seg) {
				t.Fatalf("a token segment %q is in the decision log:\n%s", seg, raw)
			}
		}
	}
	for _, secret := range []string{"owner-secret", "amount-secret", "manager", "staff"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the decision log holds %q, which is neither the subject nor the resource's type or id:\n%s", secret, raw)
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }

func TestDecisionLogBatch(t *testing.T) {
	f := newFixture(t)
	path := f.logFile(t, Options{})
	body := `{"token":"` + f.token(t, "bob", "staff") + `","checks":[
		{"action":"orders:read","resource":{"type":"order","id":"1"}},
		{"action":"orders:approve","resource":{"type":"order","id":"2"}},
		{"action":"orders:read","resource":{"type":"order","id":"3","owner":"bob"}}]}`
	status, got := f.do(t, "POST", "/v1/decisions", "application/json", body)
	if status != 200 {
		t.Fatalf("status %d %v", status, got)
	}
	eventually(t, "one line per check", func() bool { return len(readLines(t, path)) == 3 })
	lines := readLines(t, path)
	for i, r := range got["results"].([]any) {
		res, line := r.(map[string]any), lines[i]
		if line["decision_id"] != res["decision_id"] || line["allow"] != res["allow"] || line["reason"] != res["reason"] {
			t.Errorf("check %d: entry %v does not match result %v", i, line, res)
		}
		if line["resource_id"] != fmt.Sprint(i+1) || line["subject"] != "bob" {
			t.Errorf("check %d: entry %v", i, line)
		}
		if line["latency_us"] != lines[0]["latency_us"] {
			t.Errorf("check %d: latency_us %v, want the request's %v on every check", i, line["latency_us"], lines[0]["latency_us"])
		}
	}
}

// TestDecisionLogTokenFailureOnce: a batch with a garbage token is logged
// once for the request, not once per check (an unauthenticated caller sent
// 100 checks a request and wrote 60,000 entries in 0.4 s), and still
// counted per check.
func TestDecisionLogTokenFailureOnce(t *testing.T) {
	f := newFixture(t)
	var checks []string
	for range 3 {
		checks = append(checks, `{"action":"orders:read"}`)
	}
	body := `{"token":"garbage","checks":[` + strings.Join(checks, ",") + `]}`
	status, got := f.do(t, "POST", "/v1/decisions", "application/json", body)
	if status != 200 || len(got["results"].([]any)) != 3 {
		t.Fatalf("status %d %v", status, got)
	}
	f.log.Close() // writes what is queued
	entries := f.log.Recent(decisionlog.Filter{}, 10)
	if len(entries) != 1 || entries[0].Reason != "token_malformed" {
		t.Errorf("entries %+v, want one token_malformed entry for the request", entries)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `warden_decisions_total{reason="token_malformed"} 3`) {
		t.Error("the metric does not count every check")
	}
}

// blockedWriter blocks every Write until release is closed.
type blockedWriter struct {
	release chan struct{}
	once    sync.Once
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

func (w *blockedWriter) unblock() { w.once.Do(func() { close(w.release) }) }

func TestDecisionLogDropsWhenFull(t *testing.T) {
	f := newFixture(t)
	w := &blockedWriter{release: make(chan struct{})}
	f.serve(t, w, decisionlog.Options{Buffer: 1}, Options{})
	t.Cleanup(w.unblock) // runs before the log's Close

	body := `{"token":"` + f.token(t, "alice", "manager") + `","action":"orders:read"}`
	answered := 0
	eventually(t, "an entry dropped", func() bool {
		start := time.Now()
		if status, _ := f.do(t, "POST", "/v1/decision", "application/json", body); status != 200 {
			t.Fatalf("status %d", status)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a decision took %v while the log's writer was blocked", d)
		}
		answered++
		return f.log.Dropped() > 0
	})
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := fmt.Sprintf("warden_decision_log_dropped_total %d", f.log.Dropped()); !strings.Contains(rec.Body.String(), want) {
		t.Errorf("/metrics lacks %q", want)
	}
	// The writer holds one entry and the queue one more; everything else
	// was dropped, and every decision was still answered.
	if got := f.log.Dropped(); got > uint64(answered) || got < uint64(answered-2) {
		t.Errorf("dropped %d of %d", got, answered)
	}
	// The counts the heartbeats carry include the dropped entries.
	deny := `{"token":"` + f.token(t, "bob", "staff") + `","action":"orders:approve"}`
	if status, _ := f.do(t, "POST", "/v1/decision", "application/json", deny); status != 200 {
		t.Fatalf("status %d", status)
	}
	if decisions, denied := f.log.Counts(); decisions != uint64(answered+1) || denied != 1 {
		t.Errorf("Counts = %d, %d; want %d decisions, 1 denied", decisions, denied, answered+1)
	}
}

func TestResourceFieldAndClip(t *testing.T) {
	long := strings.Repeat("é", maxLoggedField) // 2 bytes each
	for _, tt := range []struct {
		name string
		v    any
		want string
	}{
		{"string", "42", "42"},
		{"json number", json.Number("4.2e1"), "4.2e1"},
		{"float", 42.5, "42.5"},
		{"bool", true, ""},
		{"object", map[string]any{"id": 1}, ""},
		{"absent", nil, ""},
		{"long, cut on a character", long, long[:maxLoggedField]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := resourceField(map[string]any{"id": tt.v}, "id"); got != tt.want {
				t.Errorf("= %q, want %q", got, tt.want)
			}
		})
	}
	if got := clip("a" + long); len(got) != maxLoggedField-1 {
		t.Errorf("clip cut %d bytes, want %d (not inside a character)", len(got), maxLoggedField-1)
	}
}

func TestRecentDecisionsEndpoint(t *testing.T) {
	f := newFixture(t)
	admin := []string{"Authorization", "Bearer " + f.token(t, "root", "warden-admin")}
	for _, tok := range []string{f.token(t, "alice", "manager"), f.token(t, "bob", "staff"), f.token(t, "alice", "staff")} {
		f.do(t, "POST", "/v1/decision", "application/json", `{"token":"`+tok+`","action":"orders:approve"}`)
	}
	eventually(t, "three entries", func() bool {
		_, got := f.do(t, "GET", "/v1/decisions/recent", "", "", admin...)
		return len(got["entries"].([]any)) == 3
	})

	for _, tt := range []struct {
		query string
		want  []string // subject/reason, newest first
	}{
		{"", []string{"alice/policy_denied", "bob/policy_denied", "alice/allowed"}},
		{"?subject=alice", []string{"alice/policy_denied", "alice/allowed"}},
		{"?allow=false", []string{"alice/policy_denied", "bob/policy_denied"}},
		{"?subject=alice&allow=true", []string{"alice/allowed"}},
		{"?action=orders:read", []string{}},
		{"?action=orders:approve&limit=1", []string{"alice/policy_denied"}},
		{"?subject_contains=LIC", []string{"alice/policy_denied", "alice/allowed"}},
		{"?subject_contains=o&allow=false", []string{"bob/policy_denied"}},
		{"?action_contains=Approve&subject=bob", []string{"bob/policy_denied"}},
		{"?action_contains=read", []string{}},
	} {
		t.Run("filter "+tt.query, func(t *testing.T) {
			status, got := f.do(t, "GET", "/v1/decisions/recent"+tt.query, "", "", admin...)
			if status != 200 {
				t.Fatalf("status %d %v", status, got)
			}
			list := []string{}
			for _, e := range got["entries"].([]any) {
				m := e.(map[string]any)
				list = append(list, str(m["subject"])+"/"+str(m["reason"]))
			}
			if diff := cmp.Diff(tt.want, list); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	for _, tt := range []struct {
		name, query string
		header      []string
		wantStatus  int
		wantCode    string
	}{
		{"allow not a boolean", "?allow=maybe", admin, 400, "invalid_request"},
		{"limit zero", "?limit=0", admin, 400, "invalid_request"},
		{"limit above the history", "?limit=1001", admin, 400, "invalid_request"},
		{"unknown parameter", "?subjet=alice", admin, 400, "invalid_request"},
		{"token in the URL", "?token=x", admin, 400, "invalid_request"},
		{"anonymous", "", nil, 401, "unauthorized"},
		{"not an admin", "", []string{"Authorization", "Bearer " + f.token(t, "bob", "staff")}, 403, "forbidden"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, got := f.do(t, "GET", "/v1/decisions/recent"+tt.query, "", "", tt.header...)
			if e, _ := got["error"].(map[string]any); status != tt.wantStatus || e["code"] != tt.wantCode {
				t.Errorf("= %d %v, want %d %s", status, got, tt.wantStatus, tt.wantCode)
			}
		})
	}
}

// TestRequestID: an X-Request-ID is echoed and written into the decision's
// log entry; one that cannot go into a log line is neither.
func TestRequestID(t *testing.T) {
	f := newFixture(t)
	body := `{"token":"` + f.token(t, "alice", "manager") + `","action":"orders:read"}`
	for _, tt := range []struct{ sent, want string }{
		{"gw-7f3e2b1a", "gw-7f3e2b1a"},
		{"two words", ""},
		{strings.Repeat("x", 129), ""},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/decision", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-ID", tt.sent)
		f.handler.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("X-Request-ID") != tt.want {
			t.Errorf("X-Request-ID %q: %d, echoed %q, want %q", tt.sent, rec.Code, rec.Header().Get("X-Request-ID"), tt.want)
		}
	}
	f.log.Close()
	entries := f.log.Recent(decisionlog.Filter{}, 10)
	if len(entries) != 3 || entries[2].RequestID != "gw-7f3e2b1a" || entries[1].RequestID != "" {
		t.Errorf("entries %+v, want the request id on the first only", entries)
	}
}
