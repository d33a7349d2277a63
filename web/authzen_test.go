package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"fmt"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/policies"
	"github.com/wardenauthz/warden/web/decisionlog"
)

// pepToken is the client token the AuthZEN tests' caller (the PEP)
// authenticates with.
const pepToken = "pep-secret-token"

// authzenFixture serves the AuthZEN certification fixture
// (testdata/authzen/certification) with a real revocation ledger, for a
// PEP authenticated by pepToken.
func authzenFixture(t *testing.T) (*fixture, *events.Ledger) {
	t.Helper()
	f := newFixture(t)
	ledger := events.NewLedger(events.LedgerOptions{})
	e, err := decision.NewEngine(context.Background(), os.DirFS("../testdata/authzen/certification"),
		decision.Options{Revocations: ledger, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = e
	f.serve(t, nil, decisionlog.Options{}, Options{DecisionClients: map[string]string{pepToken: "gateway"}, MaxChecks: 50})
	return f, ledger
}

// azDo sends an AuthZEN request and returns the status, the decoded JSON
// body (nil when the body is not JSON) and the raw body.
func azDo(t *testing.T, f *fixture, path, contentType, body string, header ...string) (int, map[string]any, string) {
	t.Helper()
	rec := f.request("POST", path, contentType, body, header...)
	var out map[string]any
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: body is not JSON: %v\n%s", path, err, rec.Body)
		}
	}
	return rec.Code, out, rec.Body.String()
}

func pep(header ...string) []string {
	return append([]string{"Authorization", "Bearer " + pepToken}, header...)
}

// The certification scenario's fixture decisions (§C.1.4, rules 1-8) and
// structural cases (§C.2.2), each through the single evaluation, through
// the evaluations endpoint without evaluations, and as one item of a
// batch.
func TestAuthZENCertificationDecisions(t *testing.T) {
	f, _ := authzenFixture(t)
	for _, tt := range []struct {
		name, request string
		want          bool
	}{
		{"C.2.2.1 rule 1", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, true},
		{"C.2.2.2 rule 4", `{"subject":{"type":"user","id":"bob"},"action":{"name":"write"},"resource":{"type":"record","id":"record-1"}}`, false},
		{"rule 2", `{"subject":{"type":"user","id":"alice"},"action":{"name":"write"},"resource":{"type":"record","id":"record-1"}}`, true},
		{"rule 3", `{"subject":{"type":"user","id":"bob"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, true},
		{"C.2.2.3 context", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"context":{"time":"2025-06-27T18:03-07:00","ip":"192.168.1.1"}}`, true},
		{"C.2.2.4 rule 5", `{"subject":{"type":"user","id":"alice"},"action":{"name":"write"},"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}`, false},
		{"C.2.2.5 rule 6", `{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}},"action":{"name":"write"},"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}`, true},
		{"C.2.2.6 rule 7", `{"subject":{"type":"user","id":"alice"},"action":{"name":"delete","properties":{"soft":true}},"resource":{"type":"record","id":"record-1"}}`, true},
		{"C.2.2.7 rule 8", `{"subject":{"type":"user","id":"alice"},"action":{"name":"delete","properties":{"soft":false}},"resource":{"type":"record","id":"record-1"}}`, false},
		{"C.2.2.8 more properties", `{"subject":{"type":"user","id":"alice","properties":{"department":"Sales","role":"manager"}},"action":{"name":"read","properties":{"method":"GET"}},"resource":{"type":"record","id":"record-1","properties":{"status":"active","owner":"bob"}}}`, true},
		{"C.2.2.9 unknown fields", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"foo":"bar","futureField":{"nested":true}}`, true},
		{"C.3.4.3 empty evaluations", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"evaluations":[]}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			paths := []string{authzenEvaluations}
			if !strings.Contains(tt.request, "evaluations") {
				paths = append(paths, authzenEvaluation)
			}
			for _, path := range paths {
				for range 2 { // C.2.6: the same answer each time
					// Exactly the decision: interop harnesses compare
					// the answer byte for byte.
					status, _, raw := azDo(t, f, path, "application/json", tt.request, pep()...)
					if want := fmt.Sprintf(`{"decision":%v}`, tt.want); status != 200 || raw != want {
						t.Fatalf("%s: %d %s; want 200 and %s", path, status, raw, want)
					}
				}
			}
			if strings.Contains(tt.request, "evaluations") {
				return
			}
			var item map[string]any
			if err := json.Unmarshal([]byte(tt.request), &item); err != nil {
				t.Fatal(err)
			}
			batch, _ := json.Marshal(map[string]any{"evaluations": []any{item}})
			status, _, raw := azDo(t, f, authzenEvaluations, "application/json", string(batch), pep()...)
			if want := fmt.Sprintf(`{"evaluations":[{"decision":%v}]}`, tt.want); status != 200 || raw != want {
				t.Errorf("as a batch item: %d %s; want %s", status, raw, want)
			}
		})
	}
}

// C.3.2: top-level defaults, per-item overrides, context inheritance, and
// the answer's order and length.
func TestAuthZENBatchDefaults(t *testing.T) {
	f, _ := authzenFixture(t)
	status, body, raw := azDo(t, f, authzenEvaluations, "application/json", `{
		"subject": {"type": "user", "id": "alice"},
		"action": {"name": "read"},
		"context": {"time": "2025-06-27T18:03-07:00"},
		"evaluations": [
			{"resource": {"type": "record", "id": "record-1"}},
			{"subject": {"type": "user", "id": "bob"}, "action": {"name": "write"}, "resource": {"type": "record", "id": "record-1"}},
			{"action": {"name": "write"}, "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}},
			{"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}}, "action": {"name": "write"}, "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}
		]}`, pep()...)
	if status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	if got := decisions(body); got != "true false false true" {
		t.Errorf("decisions %q; want true false false true\n%s", got, raw)
	}
}

func decisions(body map[string]any) string {
	var out []string
	evs, _ := body["evaluations"].([]any)
	for _, e := range evs {
		d, _ := e.(map[string]any)["decision"].(bool)
		out = append(out, map[bool]string{true: "true", false: "false"}[d])
	}
	return strings.Join(out, " ")
}

// C.3.4.1: an item that misses an entity is denied with an error in its
// context; the others are answered. And the short-circuiting semantics.
func TestAuthZENBatchSemantics(t *testing.T) {
	f, _ := authzenFixture(t)
	status, body, raw := azDo(t, f, authzenEvaluations, "application/json", `{
		"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
		"options": {"evaluations_semantic": "execute_all"},
		"evaluations": [{"resource": {"type": "record", "id": "record-1"}}, {}]}`, pep()...)
	if status != 200 || decisions(body) != "true false" {
		t.Fatalf("%d %s; want 200 and decisions true false", status, raw)
	}
	second := body["evaluations"].([]any)[1].(map[string]any)
	if e, _ := second["context"].(map[string]any)["error"].(map[string]any); e["status"] != 400.0 || !strings.Contains(e["message"].(string), "resource required") {
		t.Errorf("second evaluation %v; want an error 400 naming the missing resource", second)
	}

	items := `"evaluations": [
		{"action": {"name": "read"}},
		{"action": {"name": "write"}, "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}},
		{"action": {"name": "read"}}]`
	for _, tt := range []struct{ semantic, want string }{
		{"execute_all", "true false true"},
		{"deny_on_first_deny", "true false"},
		{"permit_on_first_permit", "true"},
	} {
		status, body, raw := azDo(t, f, authzenEvaluations, "application/json",
			`{"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"},
			"options": {"evaluations_semantic": "`+tt.semantic+`"}, `+items+`}`, pep()...)
		if status != 200 || decisions(body) != tt.want {
			t.Errorf("%s: %d %s; want decisions %s", tt.semantic, status, raw, tt.want)
		}
	}
	if status, _, raw := azDo(t, f, authzenEvaluations, "application/json",
		`{"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}, "options": {"evaluations_semantic": "first"}, `+items+`}`, pep()...); status != 400 {
		t.Errorf("unknown semantic: %d %s; want 400", status, raw)
	}
}

// C.2.4 and C.5: every malformed request is a 400 whose body is a message
// string; names are exact and duplicates refused, unknown names ignored.
func TestAuthZENBadRequests(t *testing.T) {
	f, _ := authzenFixture(t)
	const ok = `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`
	for _, tt := range []struct{ name, contentType, body string }{
		{"missing subject", "application/json", `{"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`},
		{"missing action", "application/json", `{"subject":{"type":"user","id":"alice"},"resource":{"type":"record","id":"record-1"}}`},
		{"missing resource", "application/json", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"}}`},
		{"subject without type", "application/json", `{"subject":{"id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`},
		{"subject without id", "application/json", `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`},
		{"action without name", "application/json", `{"subject":{"type":"user","id":"alice"},"action":{},"resource":{"type":"record","id":"record-1"}}`},
		{"resource without type", "application/json", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"id":"record-1"}}`},
		{"resource without id", "application/json", `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record"}}`},
		{"null subject", "application/json", `{"subject":null,"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`},
		{"subject is a string", "application/json", `{"subject":"alice","action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`},
		{"name is a number", "application/json", `{"subject":{"type":"user","id":"alice"},"action":{"name":123},"resource":{"type":"record","id":"record-1"}}`},
		{"wrong content type", "text/plain", ok},
		{"no content type", "", ok},
		{"malformed JSON", "application/json", `{"subject":`},
		{"empty body", "application/json", ``},
		{"array body", "application/json", `[` + ok + `]`},
		{"duplicate name", "application/json", `{"subject":{"type":"user","id":"alice","id":"bob"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`},
		{"trailing data", "application/json", ok + `{}`},
		{"token not a string", "application/json", `{"subject":{"type":"user","id":"alice","properties":{"token":7}},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`},
	} {
		for _, path := range []string{authzenEvaluation, authzenEvaluations} {
			status, body, raw := azDo(t, f, path, tt.contentType, tt.body, pep()...)
			if status != 400 || body != nil || raw == "" {
				t.Errorf("%s %s: %d %q; want 400 with a message string", tt.name, path, status, raw)
			}
		}
	}
	// "Subject" is not "subject": exact names, the unknown one ignored.
	if status, body, raw := azDo(t, f, authzenEvaluation, "application/json",
		`{"Subject":{"type":"user","id":"bob"},"subject":{"type":"user","id":"alice"},"action":{"name":"write"},"resource":{"type":"record","id":"record-1"}}`, pep()...); status != 200 || body["decision"] != true {
		t.Errorf("a member named Subject: %d %s; want alice's decision (true)", status, raw)
	}
}

// C.2.5: X-Request-ID is echoed, and its absence is no failure.
func TestAuthZENRequestID(t *testing.T) {
	f, _ := authzenFixture(t)
	body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`
	for _, path := range []string{authzenEvaluation, authzenEvaluations} {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+pepToken)
		req.Header.Set("X-Request-ID", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("X-Request-ID") != "bfe9eb29-ab87-4ca3-be83-a1d5d8305716" {
			t.Errorf("%s: %d, X-Request-ID %q; want 200 and the request's id", path, rec.Code, rec.Header().Get("X-Request-ID"))
		}
	}
}

// The caller (the PEP) must authenticate: 401 is about it, never about the
// end user. Without configured client tokens, subjects cannot be asserted.
func TestAuthZENCallerAuthentication(t *testing.T) {
	f, _ := authzenFixture(t)
	body := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`
	for _, header := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Basic " + pepToken}} {
		for _, path := range []string{authzenEvaluation, authzenEvaluations} {
			if status, _, raw := azDo(t, f, path, "application/json", body, header...); status != 401 || raw == "" {
				t.Errorf("%s with %v: %d %q; want 401 with a message", path, header, status, raw)
			}
		}
	}
	if status, body, raw := azDo(t, f, authzenEvaluation, "application/json", body, ClientTokenHeader, pepToken); status != 200 || body["decision"] != true {
		t.Errorf("with %s: %d %s; want 200", ClientTokenHeader, status, raw)
	}

	open := newFixture(t) // no client tokens configured
	for _, path := range []string{authzenEvaluation, authzenEvaluations} {
		if status, _, raw := azDo(t, open, path, "application/json", body); status != 401 || !strings.Contains(raw, "authenticated caller") {
			t.Errorf("asserted subject, no client tokens, %s: %d %q; want 401", path, status, raw)
		}
	}
}

// Asserted subjects: a subject_disabled event denies them; a roles_changed
// event does not (there is no token to be stale: the caller asserts the
// subject as it is now).
func TestAuthZENAssertedSubjectEvents(t *testing.T) {
	f, ledger := authzenFixture(t)
	read := `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`
	apply := func(typ events.Type) {
		t.Helper()
		if err := ledger.Apply(events.Event{V: 1, ID: string(typ) + "-1", Type: typ, Subject: "alice", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	apply(events.TypeRolesChanged)
	if status, body, raw := azDo(t, f, authzenEvaluation, "application/json", read, pep()...); status != 200 || body["decision"] != true {
		t.Fatalf("after roles_changed: %d %s; want allowed", status, raw)
	}
	apply(events.TypeSubjectDisabled)
	status, body, raw := azDo(t, f, authzenEvaluation, "application/json", read, pep()...)
	if status != 200 || body["decision"] != false || body["context"].(map[string]any)["reason_code"] != "subject_disabled" {
		t.Fatalf("after subject_disabled: %d %s; want denied with subject_disabled", status, raw)
	}
}

// Token mode, on the shipped policy: the user's JWT in
// subject.properties.token is verified as the decision API verifies it, its
// sub must be subject.id, and a demoted user's older token is denied with
// the refresh hint.
func TestAuthZENTokenMode(t *testing.T) {
	f := newFixture(t)
	ledger := events.NewLedger(events.LedgerOptions{})
	e, err := decision.NewEngine(context.Background(), policies.FS(), decision.Options{Revocations: ledger, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = e
	f.serve(t, nil, decisionlog.Options{}, Options{})
	alice := f.token(t, "alice", "manager")
	ask := func(sub, token, action string) string {
		return `{"subject":{"type":"user","id":"` + sub + `","properties":{"token":"` + token + `","department":"ops"}},
			"action":{"name":"` + action + `"},"resource":{"type":"order","id":"42","properties":{"owner":"bob"}}}`
	}
	status, body, raw := azDo(t, f, authzenEvaluation, "application/json", ask("alice", alice, "orders:approve"), fullContextHeader, "full")
	ctx, _ := body["context"].(map[string]any)
	if status != 200 || body["decision"] != true || ctx["reason_code"] != "allowed" || ctx["decision_id"] == "" ||
		fmt.Sprint(ctx["reasons"]) != "[role manager grants orders:approve]" || ctx["policy_revision"] != e.Revision() {
		t.Fatalf("manager approves, the whole context asked for: %d %s; want allowed with id, reason code, reasons and revision", status, raw)
	}
	if status, _, raw := azDo(t, f, authzenEvaluation, "application/json", ask("alice", alice, "orders:approve")); status != 200 || raw != `{"decision":true}` {
		t.Errorf("manager approves: %d %s; want exactly {\"decision\":true}", status, raw)
	}
	if status, _, raw := azDo(t, f, authzenEvaluation, "application/json", ask("alice", f.token(t, "alice", "staff"), "orders:approve")); status != 200 || raw != `{"decision":false}` {
		t.Errorf("staff approves: %d %s; want exactly a deny, no context (the policy decided)", status, raw)
	}
	status, body, raw = azDo(t, f, authzenEvaluation, "application/json", ask("mallory", alice, "orders:approve"))
	ctx, _ = body["context"].(map[string]any)
	if status != 200 || body["decision"] != false || ctx["reason_code"] != "token_wrong_subject" || ctx["error"] == nil {
		t.Errorf("another user's token: %d %s; want denied with token_wrong_subject and an error", status, raw)
	}
	status, body, raw = azDo(t, f, authzenEvaluation, "application/json", ask("alice", "not.a.jwt", "orders:read"))
	if status != 200 || body["decision"] != false || body["context"].(map[string]any)["reason_code"] != "token_malformed" {
		t.Errorf("a bad token is the user's failure, not the caller's: %d %s; want 200, denied, token_malformed", status, raw)
	}

	time.Sleep(1100 * time.Millisecond) // the event must be in a later second than alice's iat
	if err := ledger.Apply(events.Event{V: 1, ID: "demote-alice", Type: events.TypeRolesChanged, Subject: "alice", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	status, body, raw = azDo(t, f, authzenEvaluations, "application/json", `{"evaluations":[`+ask("alice", alice, "orders:read")+`]}`)
	item := body["evaluations"].([]any)[0].(map[string]any)
	ictx := item["context"].(map[string]any)
	if status != 200 || item["decision"] != false || ictx["reason_code"] != "token_stale" || ictx["refresh"] != true {
		t.Errorf("demoted user's old token: %d %s; want denied, token_stale, refresh true", status, raw)
	}
	time.Sleep(1100 * time.Millisecond)
	if status, body, raw := azDo(t, f, authzenEvaluation, "application/json", ask("alice", f.token(t, "alice", "staff"), "orders:read")); status != 200 || body["decision"] != true {
		t.Errorf("a token issued after the change: %d %s; want allowed", status, raw)
	}
}

// C.6: the metadata names the endpoints at the URL the caller used.
func TestAuthZENMetadata(t *testing.T) {
	f, _ := authzenFixture(t)
	req := httptest.NewRequest("GET", authzenMetadata, nil)
	req.Host = "pdp.example.com:8480"
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	want := map[string]any{
		"policy_decision_point":       "http://pdp.example.com:8480",
		"access_evaluation_endpoint":  "http://pdp.example.com:8480/access/v1/evaluation",
		"access_evaluations_endpoint": "http://pdp.example.com:8480/access/v1/evaluations",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v; want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("metadata %v; want exactly %v (no search endpoints: they are not served)", got, want)
	}
}

// The AuthZEN policy sets under testdata pass their own Rego tests, and the
// worked example answers both modes through the API: the directory's roles
// for an asserted subject, the token's in token mode.
func TestAuthZENExampleSets(t *testing.T) {
	for _, dir := range []string{"certification", "example", "todo"} {
		report, err := decision.Test(context.Background(), os.DirFS("../testdata/authzen/"+dir), decision.TestOptions{})
		if err != nil || !report.Passed() || report.Counts.Pass == 0 {
			t.Fatalf("%s: %v %+v", dir, err, report)
		}
	}
	f := newFixture(t)
	e, err := decision.NewEngine(context.Background(), os.DirFS("../testdata/authzen/example"), decision.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = e
	f.serve(t, nil, decisionlog.Options{}, Options{DecisionClients: map[string]string{pepToken: "gateway"}})
	approve := func(subject string) string {
		return `{"subject":{"type":"user",` + subject + `},"action":{"name":"orders:approve"},"resource":{"type":"order","id":"42"}}`
	}
	for _, tt := range []struct {
		name, subject string
		want          bool
	}{
		{"asserted manager", `"id":"alice"`, true},
		{"asserted staff", `"id":"carol"`, false},
		{"asserted stranger", `"id":"mallory"`, false},
		{"token says staff", `"id":"alice","properties":{"token":"` + f.token(t, "alice", "staff") + `"}`, false},
		{"token says manager", `"id":"carol","properties":{"token":"` + f.token(t, "carol", "manager") + `"}`, true},
	} {
		if status, body, raw := azDo(t, f, authzenEvaluation, "application/json", approve(tt.subject), pep()...); status != 200 || body["decision"] != tt.want {
			t.Errorf("%s: %d %s; want decision %v", tt.name, status, raw, tt.want)
		}
	}
}

// TestAuthZENTodoInterop runs the AuthZEN interop Todo scenario's test file
// (testdata/authzen/todo-decisions.json, openid/authzen's
// interop/authzen-todo-backend/test/decisions-authorization-api-1_0-02.json)
// against its policy (testdata/authzen/todo) as the scenario's runner does:
// the PEP's key in Authorization, and each answer compared with the
// expected one as JSON text, exactly (the single evaluation's decision, the
// batch's evaluations array).
func TestAuthZENTodoInterop(t *testing.T) {
	f := newFixture(t)
	e, err := decision.NewEngine(context.Background(), os.DirFS("../testdata/authzen/todo"), decision.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = e
	f.serve(t, nil, decisionlog.Options{}, Options{DecisionClients: map[string]string{pepToken: "todo-backend"}})
	raw, err := os.ReadFile("../testdata/authzen/todo-decisions.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string][]struct {
		Request  json.RawMessage `json:"request"`
		Expected json.RawMessage `json:"expected"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	ran := 0
	for endpoint, path := range map[string]string{"evaluation": authzenEvaluation, "evaluations": authzenEvaluations} {
		for i, c := range cases[endpoint] {
			status, body, rawBody := azDo(t, f, path, "application/json", string(c.Request), pep()...)
			var got any = body["decision"]
			if endpoint == "evaluations" {
				got = body["evaluations"]
			}
			gotJSON, _ := json.Marshal(got)
			var want any
			json.Unmarshal(c.Expected, &want)
			wantJSON, _ := json.Marshal(want)
			if status != 200 || string(gotJSON) != string(wantJSON) {
				t.Errorf("%s case %d %s: %d %s; want %s", endpoint, i, c.Request, status, rawBody, wantJSON)
			}
			ran++
		}
	}
	if ran != len(cases["evaluation"])+len(cases["evaluations"]) || ran < 40 {
		t.Fatalf("ran %d cases", ran)
	}
}
