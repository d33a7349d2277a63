package main

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardenauthz/warden/policies"
)

// TestPolicyRollout is issue 4 as a security engineer tries it: three
// replicas on one NATS; a broken set pushed with the CLI is refused with its
// positions and production is unchanged; a good set becomes active on every
// replica; one file is then changed through the API, and explain shows why a
// user is denied.
func TestPolicyRollout(t *testing.T) {
	dataDir := t.TempDir()
	replicas := startReplicas(t, dataDir, 3)
	first, second, third := replicas[0], replicas[1], replicas[2]
	admin := mint(t, dataDir, "--sub", "sec-eng", "--roles", "warden-admin")
	staff := mint(t, dataDir, "--sub", "bob", "--roles", "staff")
	shipped := askDecision(t, first, staff, "orders:approve").PolicyRevision

	dir := t.TempDir()
	if err := os.CopyFS(dir, policies.FS()); err != nil {
		t.Fatal(err)
	}
	push := func(args ...string) (string, error) {
		var stdout, stderr strings.Builder
		all := append([]string{"warden", "policy", "push", "--server", first, "--token", admin, "--wait", "5s"}, args...)
		err := run(context.Background(), all, env(nil), nil, &stdout, &stderr)
		return stdout.String(), err
	}

	// Broken: a syntax error.
	writePolicyFile(t, dir, "authz.rego", "package warden.authz\n\nallow if {\n")
	if _, err := push(dir); err == nil || !strings.Contains(err.Error(), "policy_invalid") || !strings.Contains(err.Error(), "authz.rego:4") {
		t.Fatalf("pushing a syntax error: %v, want policy_invalid at authz.rego:4", err)
	}
	// Broken: a failing test (staff may now approve).
	shippedAuthz, err := fs.ReadFile(policies.FS(), "authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	writePolicyFile(t, dir, "authz.rego", string(shippedAuthz))
	writePolicyFile(t, dir, "data.json", `{"warden":{"roles":{"manager":["orders:read","orders:approve"],"staff":["orders:read","orders:approve"]}}}`)
	if _, err := push(dir); err == nil || !strings.Contains(err.Error(), "test_staff_may_not_approve") {
		t.Fatalf("pushing a set whose test fails: %v", err)
	}
	for _, r := range replicas {
		if d := askDecision(t, r, staff, "orders:approve"); d.Allow || d.PolicyRevision != shipped {
			t.Fatalf("%s after refused pushes: %+v, want the shipped revision %s denying", r, d, shipped)
		}
	}
	var status struct {
		Policies struct {
			Source         string `json:"source"`
			ActiveRevision string `json:"active_revision"`
			Converged      bool   `json:"converged"`
		} `json:"policies"`
	}
	getJSON(t, second+"/v1/status", admin, &status)
	if p := status.Policies; p.Source != "nats" || p.ActiveRevision != shipped || !p.Converged {
		t.Errorf("/v1/status policies = %+v, want nats, %s, converged (refused proposals are never stored)", p, shipped)
	}

	// Good: a new role, tests still pass.
	writePolicyFile(t, dir, "data.json", `{"warden":{"roles":{"manager":["orders:read","orders:approve"],"staff":["orders:read"],"auditor":["orders:read"]}}}`)
	out, err := push(dir, "--message", "add auditor")
	if err != nil || !strings.Contains(out, "active on 3/3 replicas") {
		t.Fatalf("pushing a good set: %v\n%s", err, out)
	}
	auditor := mint(t, dataDir, "--sub", "carol", "--roles", "auditor")
	var pushed string
	for _, r := range replicas {
		d := askDecision(t, r, auditor, "orders:read")
		if !d.Allow || d.PolicyRevision == shipped {
			t.Errorf("%s after the push: %+v, want the new set allowing auditors to read", r, d)
		}
		pushed = d.PolicyRevision
	}

	// The API: list, read one file with its ETag, change it conditionally.
	var list struct {
		Source   string `json:"source"`
		Revision string `json:"revision"`
		Message  string `json:"message"`
		Files    []struct{ ID string }
	}
	getJSON(t, first+"/v1/policies", admin, &list)
	if list.Source != "nats" || list.Revision != pushed || list.Message != "add auditor" || len(list.Files) != 7 {
		t.Errorf("GET /v1/policies = %+v", list)
	}
	code, body, header := adminDo(t, "GET", second+"/v1/policies/data.json", admin, "", "")
	etag := header.Get("ETag")
	if code != 200 || !strings.Contains(body, "auditor") || etag == "" {
		t.Fatalf("GET /v1/policies/data.json = %d %s (ETag %q)", code, body, etag)
	}
	grant := `{"warden":{"roles":{"manager":["orders:read","orders:approve"],"staff":["orders:read"],"auditor":["orders:read","orders:audit"]}}}`
	if status, _, _ := adminDo(t, "PUT", third+"/v1/policies/data.json", admin, "text/plain", grant, "If-Match", etag); status != 200 {
		t.Fatalf("PUT with the current ETag = %d", status)
	}
	if status, _, _ := adminDo(t, "PUT", third+"/v1/policies/data.json", admin, "text/plain", grant, "If-Match", etag); status != http.StatusConflict {
		t.Errorf("PUT with a stale ETag = %d, want 409", status)
	}
	waitFor(t, func() (decisionResult, bool) {
		d := askDecision(t, first, auditor, "orders:audit")
		return d, d.Allow
	})

	// Data documents, OPA's way: read, replace, patch.
	var roles struct{ Result map[string][]string }
	getJSON(t, first+"/v1/data/warden/roles", admin, &roles)
	if got := roles.Result["auditor"]; len(got) != 2 {
		t.Errorf("GET /v1/data/warden/roles = %+v", roles)
	}
	dataReq := func(method, path, contentType, body string) int {
		req, _ := http.NewRequest(method, second+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Logf("%s %s = %d %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode
	}
	if code := dataReq("PUT", "/v1/data/warden/roles/clerk", "application/json", `["orders:read"]`); code != 200 {
		t.Errorf("PUT /v1/data/warden/roles/clerk = %d", code)
	}
	if code := dataReq("PATCH", "/v1/data/warden/roles/clerk", "application/json-patch+json", `[{"op":"add","path":"/-","value":"orders:approve"}]`); code != 200 {
		t.Errorf("PATCH /v1/data/warden/roles/clerk = %d", code)
	}
	clerk := mint(t, dataDir, "--sub", "ivy", "--roles", "clerk")
	waitFor(t, func() (decisionResult, bool) {
		d := askDecision(t, third, clerk, "orders:approve")
		return d, d.Allow
	})
	if code := dataReq("PUT", "/v1/data/warden/roles", "application/json", `"not an object"`); code != 422 {
		t.Errorf("PUT a string over the roles object = %d, want 422 (the set's tests fail)", code)
	}

	// Explain why staff may not approve.
	var ex struct {
		Decision struct {
			Allow  bool   `json:"allow"`
			Reason string `json:"reason"`
		} `json:"decision"`
		Rules []struct{ Rule string } `json:"rules"`
		Trace []string                `json:"trace"`
	}
	postJSON(t, first+"/v1/explain", admin, `{"token":"`+staff+`","action":"orders:approve"}`, &ex)
	if ex.Decision.Allow || ex.Decision.Reason != "policy_denied" || len(ex.Trace) == 0 || len(ex.Rules) == 0 {
		t.Errorf("explain = %+v", ex)
	}
	// The same question as a proxy asks it: the input shows the request,
	// normalised. The set pushed above has no route table, so no route
	// maps it to an action.
	var exReq struct {
		Decision struct {
			Allow   bool     `json:"allow"`
			Reasons []string `json:"reasons"`
		} `json:"decision"`
		Input struct {
			Request struct {
				Method string              `json:"method"`
				Path   string              `json:"path"`
				Query  map[string][]string `json:"query"`
			} `json:"request"`
		} `json:"input"`
	}
	postJSON(t, first+"/v1/explain", admin, `{"token":"`+staff+`","request":{"method":"POST","uri":"/orders/./42/approve?via=ui","host":"api.example.com"}}`, &exReq)
	if r := exReq.Input.Request; exReq.Decision.Allow || len(exReq.Decision.Reasons) != 1 || exReq.Decision.Reasons[0] != "no route matches POST /orders/42/approve" ||
		r.Method != "POST" || r.Path != "/orders/42/approve" || r.Query["via"][0] != "ui" {
		t.Errorf("explain of a proxied request = %+v", exReq)
	}

	// Tests of the stored set, and of a draft that breaks one, with coverage.
	var report struct {
		Counts   struct{ Pass, Fail int }
		Coverage *struct {
			Percent float64 `json:"percent"`
		} `json:"coverage"`
		Tests []struct {
			Name    string `json:"name"`
			Outcome string `json:"outcome"`
		} `json:"tests"`
	}
	postJSON(t, first+"/v1/policies/test", admin, `{"coverage":true}`, &report)
	if report.Counts.Pass < 20 || report.Counts.Fail != 0 || report.Coverage == nil || report.Coverage.Percent <= 0 {
		t.Errorf("POST /v1/policies/test (stored set) = %+v", report)
	}
	draft := map[string]string{}
	for _, name := range []string{"authz.rego", "authz_test.rego", "admin.rego", "admin_test.rego"} {
		b, _ := fs.ReadFile(policies.FS(), name)
		draft[name] = string(b)
	}
	draft["data.json"] = `{"warden":{"roles":{"manager":["orders:read","orders:approve"],"staff":["orders:read","orders:approve"]}}}`
	draftJSON, _ := json.Marshal(map[string]any{"files": draft, "run": "staff"})
	report.Counts.Pass, report.Counts.Fail = 0, 0
	postJSON(t, first+"/v1/policies/test", admin, string(draftJSON), &report)
	if report.Counts.Fail != 1 || len(report.Tests) == 0 {
		t.Errorf("POST /v1/policies/test (draft letting staff approve, --run staff) = %+v", report)
	}
	for _, tr := range report.Tests {
		if !strings.Contains(tr.Name, "staff") {
			t.Errorf("run filter let %s through", tr.Name)
		}
	}
	// A draft activation would refuse is refused by the test endpoint too,
	// with the problem; a bad run filter is the caller's error. A set may
	// be far larger than a decision request, up to 1 MiB.
	sized := func(n int) string {
		files := maps.Clone(draft)
		files["big.rego"] = "package big\n\n# " + strings.Repeat("x", n) + "\n"
		b, _ := json.Marshal(map[string]any{"files": files})
		return string(b)
	}
	for _, tt := range []struct {
		body       string
		wantStatus int
		want       string
	}{
		{`{"files":{"p.rego":"package warden.authz\n\ngranted := true\n"}}`, 422, "no rule defines data.warden.authz.allow"},
		{`{"run":"("}`, 400, "run: invalid test filter"},
		{sized(200 << 10), 200, `"counts"`},
		{sized(1 << 20), 413, "larger than 1048576 bytes"},
	} {
		req, _ := http.NewRequest("POST", first+"/v1/policies/test", strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantStatus || !strings.Contains(string(raw), tt.want) {
			t.Errorf("POST /v1/policies/test %.100s = %d %.300s, want %d mentioning %q", tt.body, resp.StatusCode, raw, tt.wantStatus, tt.want)
		}
	}

	// Explain against the draft: staff would be allowed; production still denies.
	explainJSON, _ := json.Marshal(map[string]any{"token": staff, "action": "orders:approve", "files": draft})
	postJSON(t, first+"/v1/explain", admin, string(explainJSON), &ex)
	if !ex.Decision.Allow {
		t.Errorf("explain against the draft = %+v, want allowed", ex.Decision)
	}
	if d := askDecision(t, first, staff, "orders:approve"); d.Allow {
		t.Errorf("explaining a draft changed production: %+v", d)
	}

	// Anonymous and non-admin callers are refused.
	for _, tok := range []string{"", staff} {
		req, _ := http.NewRequest("GET", first+"/v1/policies", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 401, false: 403}[tok == ""]; resp.StatusCode != want {
			t.Errorf("GET /v1/policies with token %q... = %d, want %d", tok[:min(len(tok), 8)], resp.StatusCode, want)
		}
	}
}

// TestPolicyDirSourceIsReadOnly: with policies.source dir the API refuses
// writes with 409.
func TestPolicyDirSourceIsReadOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, policies.FS()); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	baseURL, _, _ := startWarden(t, dataDir, "--policies-source", "dir", "--policies-dir", dir)
	admin := mint(t, dataDir, "--sub", "root", "--roles", "warden-admin")
	req, _ := http.NewRequest("PUT", baseURL+"/v1/policies/extra.rego", strings.NewReader("package extra\n"))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusConflict || e.Error.Code != "read_only" {
		t.Errorf("PUT in dir mode = %d %+v, want 409 read_only", resp.StatusCode, e)
	}
	if _, err := os.Stat(filepath.Join(dir, "extra.rego")); err == nil {
		t.Error("the API wrote into the policy directory")
	}
}

// adminDo sends one admin API request with token, and a body of
// contentType when it is not empty, plus header pairs; it returns the
// answer's status, body and headers.
func adminDo(t testing.TB, method, url, token, contentType, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), resp.Header
}

func getJSON(t *testing.T, url, token string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	doJSON(t, req, out)
}

func postJSON(t *testing.T, url, token, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	doJSON(t, req, out)
}

func doJSON(t *testing.T, req *http.Request, out any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s = %d %s", req.Method, req.URL, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s %s: %v\n%s", req.Method, req.URL, err, raw)
	}
}

// TestPolicyPushDevelopmentMode: against a development-mode Warden, push
// mints its admin token from the data directory's key, as warden event
// does; without a key or a token it says what is missing.
func TestPolicyPushDevelopmentMode(t *testing.T) {
	dataDir := t.TempDir()
	baseURL, _, _ := startWarden(t, dataDir)
	waitReady(t, baseURL)
	dir := t.TempDir()
	if err := os.CopyFS(dir, policies.FS()); err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	err := run(context.Background(), []string{"warden", "policy", "push", "--server", baseURL, "--data-dir", dataDir, dir}, env(nil), nil, &stdout, io.Discard)
	if err != nil || !strings.Contains(stdout.String(), "active on 1/1 replicas") {
		t.Errorf("push in development mode: %v\n%s", err, stdout.String())
	}
	err = run(context.Background(), []string{"warden", "policy", "push", "--server", baseURL, "--data-dir", t.TempDir(), dir}, env(nil), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no admin token") {
		t.Errorf("push without a token or a development key: %v", err)
	}
}
