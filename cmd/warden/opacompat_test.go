package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// opaCompatSet is the policy set both servers load: written for OPA, it
// does not call Warden's built-ins.
const opaCompatSet = "../../testdata/opa-compat"

// startOPA builds the OPA of go.mod (a tool there) and runs its server on
// a free loopback port with dir loaded and defaultDecision as OPA's
// default decision; it returns the base URL once /health answers.
func startOPA(t *testing.T, dir, defaultDecision string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "opa")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/open-policy-agent/opa").CombinedOutput(); err != nil {
		t.Fatalf("go build opa: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// Decision logs on (to the console) so that OPA answers decision ids,
	// as Warden always does.
	startProcess(t, bin, "run", "--server", "--addr", addr, "--log-level", "error",
		"--set", "default_decision="+defaultDecision, "--set", "decision_logs.console=true", dir)
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("OPA at %s did not become healthy: %v", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// compatRequest is one request sent to both servers.
type compatRequest struct {
	name        string
	method      string
	path        string
	contentType string // "": none
	body        string
	// codeOnly compares an error answer's status and code, not its
	// message, which Warden words its own way.
	codeOnly bool
	// raw compares the bodies as text (with the decision id blanked), to
	// check ?pretty's layout too.
	raw bool
	// after runs on Warden after the request, e.g. to wait until a policy
	// change is active there too.
	after func(t *testing.T, status int, body string)
}

type compatAnswer struct {
	status int
	body   string
}

func send(t *testing.T, base, admin string, r compatRequest) compatAnswer {
	t.Helper()
	req, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if strings.HasPrefix(r.path, "/v1/policies") {
		// Warden's admin API; OPA, without authentication, ignores it.
		req.Header.Set("Authorization", "Bearer "+admin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, base+r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return compatAnswer{resp.StatusCode, string(b)}
}

var decisionIDMember = regexp.MustCompile(`"decision_id": ?"[^"]*"`)

// comparable is an answer's body as compared: decision_id's value (random
// in both) blanked; for an error in codeOnly mode, only the code; for an
// answer to a policy write, the members OPA answers (Warden adds the
// stored set's revision and kv_revision).
func comparable(t *testing.T, r compatRequest, a compatAnswer, ownMembers bool) any {
	t.Helper()
	if r.raw {
		return decisionIDMember.ReplaceAllString(a.body, `"decision_id":"-"`)
	}
	var v any
	if err := json.Unmarshal([]byte(a.body), &v); err != nil {
		t.Fatalf("%s: body is not JSON: %v\n%s", r.name, err, a.body)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if id, ok := obj["decision_id"].(string); ok && id != "" {
		obj["decision_id"] = "-"
	}
	if r.codeOnly {
		return map[string]any{"code": obj["code"]}
	}
	if ownMembers && strings.HasPrefix(r.path, "/v1/policies") {
		delete(obj, "revision")
		delete(obj, "kv_revision")
	}
	return obj
}

// TestOPACompatibility sends the same requests to the real OPA server and
// to Warden, both running the set in testdata/opa-compat, and compares
// status and body, except the decision ids (random), the error messages
// of codeOnly requests, and the revision members Warden adds to the answer
// of a policy write. docs/compat.md lists these differences and the
// Warden-only behaviours checked after the comparison.
func TestOPACompatibility(t *testing.T) {
	const defaultDecision = "httpapi/main"
	opa := startOPA(t, opaCompatSet, "/"+defaultDecision)
	dataDir := t.TempDir()
	warden, _, _ := startWarden(t, dataDir, "--policies-dir", opaCompatSet,
		"--policies-entrypoint", "httpapi/authz", "--opa-default-decision", defaultDecision)
	admin := mint(t, dataDir, "--sub", "sec-eng", "--roles", "warden-admin")
	carol := mint(t, dataDir, "--sub", "carol", "--roles", "staff")

	// waitActive waits until Warden decides with the revision a policy
	// write answered (OPA's writes are active when answered).
	waitActive := func(t *testing.T, status int, body string) {
		t.Helper()
		if status != 200 {
			return
		}
		var stored struct{ Revision string }
		if err := json.Unmarshal([]byte(body), &stored); err != nil || stored.Revision == "" {
			t.Fatalf("policy write answered %s", body)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			var ready struct {
				PolicyRevision string `json:"policy_revision"`
			}
			resp, err := http.Get(warden + "/readyz")
			if err == nil {
				json.NewDecoder(resp.Body).Decode(&ready)
				resp.Body.Close()
			}
			if ready.PolicyRevision == stored.Revision {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("revision %s not active after 10s (active: %q)", stored.Revision, ready.PolicyRevision)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	const (
		js   = "application/json"
		text = "text/plain"
	)
	aliceReads := `{"input":{"user":"alice","method":"POST","path":["orders","bob"]}}`
	requests := []compatRequest{
		{name: "defined, allowed", method: "POST", path: "/v1/data/httpapi/authz/allow", contentType: js, body: aliceReads},
		{name: "defined, denied", method: "POST", path: "/v1/data/httpapi/authz/allow", contentType: js,
			body: `{"input":{"user":"bob","method":"POST","path":["orders","alice"]}}`},
		{name: "a package: an object with a set", method: "POST", path: "/v1/data/httpapi/authz", contentType: js,
			body: `{"input":{"user":"bob","method":"GET","path":["orders","bob"]}}`},
		{name: "undefined", method: "POST", path: "/v1/data/httpapi/nothing", contentType: js, body: `{"input":{}}`},
		{name: "nested path with an array index", method: "POST", path: "/v1/data/httpapi/roles/alice/1", contentType: js, body: `{"input":{}}`},
		{name: "numbers keep their text", method: "POST", path: "/v1/data/httpapi/limits", contentType: js, body: `{}`},
		{name: "whole data document", method: "POST", path: "/v1/data", contentType: js, body: aliceReads},
		{name: "no input member", method: "POST", path: "/v1/data/httpapi/authz/allow", contentType: js, body: `{}`},
		{name: "null input", method: "POST", path: "/v1/data/httpapi/authz/allow", contentType: js, body: `{"input":null}`},
		{name: "empty body", method: "POST", path: "/v1/data/httpapi/authz/allow"},
		{name: "curl -d's content type", method: "POST", path: "/v1/data/httpapi/authz/allow",
			contentType: "application/x-www-form-urlencoded", body: aliceReads},
		{name: "a token in the input that Warden verifies", method: "POST", path: "/v1/data/httpapi/authz/allow", contentType: js,
			body: `{"input":{"user":"alice","method":"GET","path":["orders","alice"],"token":"` + carol + `"}}`},
		{name: "pretty", method: "POST", path: "/v1/data/httpapi/authz?pretty=true", contentType: js, body: aliceReads, raw: true},
		{name: "metrics and provenance are ignored", method: "POST", path: "/v1/data/httpapi/authz/allow?metrics=false&provenance=false", contentType: js, body: aliceReads},
		{name: "built-in error: undefined", method: "POST", path: "/v1/data/httpapi/number", contentType: js, body: `{"input":{"n":"x"}}`},
		{name: "built-in error, strict", method: "POST", path: "/v1/data/httpapi/number?strict-builtin-errors", contentType: js,
			body: `{"input":{"n":"x"}}`, codeOnly: true},
		{name: "malformed JSON", method: "POST", path: "/v1/data/httpapi/authz/allow", contentType: js, body: `{"input":`, codeOnly: true},
		{name: "POST / defined", method: "POST", path: "/", contentType: js, body: `{"user":"alice","method":"GET","path":["orders","alice"]}`},
		{name: "POST / undefined", method: "POST", path: "/", contentType: js, body: `{"user":"alice"}`, codeOnly: true},
		{name: "POST / malformed JSON", method: "POST", path: "/", contentType: js, body: `{"user":`, codeOnly: true},
		{name: "health", method: "GET", path: "/health"},
		{name: "health with bundles and plugins", method: "GET", path: "/health?bundles&plugins"},
		{name: "PUT a policy by an OPA id", method: "PUT", path: "/v1/policies/example", contentType: text,
			body: "package example\n\nhello := \"world\"\n", after: waitActive},
		{name: "the new policy answers", method: "POST", path: "/v1/data/example/hello", contentType: js, body: `{}`},
		{name: "PUT a policy by a nested OPA id", method: "PUT", path: "/v1/policies/authz/rules", contentType: text,
			body: "package authz.rules\n\nlimit := data.httpapi.limits[0]\n", after: waitActive},
		{name: "the nested policy answers", method: "POST", path: "/v1/data/authz/rules/limit", contentType: js, body: `{}`},
		{name: "DELETE by an OPA id", method: "DELETE", path: "/v1/policies/example", after: waitActive},
		{name: "the deleted policy is undefined", method: "POST", path: "/v1/data/example/hello", contentType: js, body: `{}`},
	}
	for _, r := range requests {
		t.Run(r.name, func(t *testing.T) {
			want := send(t, opa, admin, r)
			got := send(t, warden, admin, r)
			if r.after != nil {
				r.after(t, got.status, got.body)
			}
			if got.status != want.status {
				t.Fatalf("status: Warden %d, OPA %d\nWarden: %s\nOPA: %s", got.status, want.status, got.body, want.body)
			}
			if diff := cmp.Diff(comparable(t, r, want, false), comparable(t, r, got, true)); diff != "" {
				t.Errorf("body (-OPA +Warden):\n%s\nWarden: %s\nOPA: %s", diff, got.body, want.body)
			}
		})
	}

	// Where Warden differs on purpose (docs/compat.md).
	warn := func(t *testing.T, body string) (code string, hasResult bool) {
		t.Helper()
		var resp struct {
			Result  *json.RawMessage
			Warning struct{ Code string }
		}
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return resp.Warning.Code, resp.Result != nil
	}
	input := func(token string) string {
		return `{"input":{"user":"carol","method":"GET","path":["orders","carol"],"request":{"http":{"headers":{"authorization":"Bearer ` + token + `"}}}}}`
	}
	for _, tt := range []struct {
		name, body string
		status     int
		warning    string
		result     bool
	}{
		{"a valid token in Kong's header", input(carol), 200, "", true},
		{"a forged token", input(carol[:len(carol)-4] + "AAAA"), 200, "token_bad_signature", false},
		{"a token in input.token that is not a JWT", `{"input":{"token":"not-a-jwt"}}`, 200, "token_malformed", false},
		{"an unknown member", `{"input":{},"metadata":{}}`, 400, "", false},
		{"a member twice", `{"input":{"user":"alice","user":"bob"}}`, 400, "", false},
	} {
		t.Run("warden/"+tt.name, func(t *testing.T) {
			a := send(t, warden, "", compatRequest{method: "POST", path: "/v1/data/httpapi/authz/allow", contentType: js, body: tt.body})
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if tt.status != 200 {
				if !strings.Contains(a.body, `"code":"invalid_parameter"`) {
					t.Errorf("body %s, want OPA's invalid_parameter", a.body)
				}
				return
			}
			if code, result := warn(t, a.body); code != tt.warning || result != tt.result {
				t.Errorf("warning %q, result %v; want %q, %v: %s", code, result, tt.warning, tt.result, a.body)
			}
		})
	}

	// OPA answers 500 internal_error for a path it refuses; Warden 400.
	if a := send(t, warden, "", compatRequest{method: "POST", path: "/v1/data/httpapi/a%22b", contentType: js, body: `{}`}); a.status != 400 || !strings.Contains(a.body, `"code":"invalid_parameter"`) {
		t.Errorf("a path segment with a quote: %d %s, want 400 invalid_parameter", a.status, a.body)
	}

	// Revocation: once carol's roles change, her token gives no result,
	// with the reason, and POST / says undefined.
	seq, err := tryPublish(warden, dataDir, `{"type":"roles_changed","subject":"carol","reason":"demoted"}`)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", warden+"/v1/data/httpapi/authz/allow", strings.NewReader(input(carol)))
	req.Header.Set("Content-Type", js)
	req.Header.Set("Warden-Min-Seq", fmt.Sprint(seq))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code, result := warn(t, string(b)); resp.StatusCode != 200 || code != "token_stale" || result {
		t.Errorf("a stale token: %d %s, want 200 with warning token_stale and no result", resp.StatusCode, b)
	}
	a := send(t, warden, "", compatRequest{method: "POST", path: "/", contentType: js,
		body: `{"method":"GET","token":"` + carol + `"}`})
	if a.status != 404 || !strings.Contains(a.body, `"code":"undefined_document"`) || !strings.Contains(a.body, "token_stale") {
		t.Errorf("POST / with a stale token: %d %s, want 404 undefined_document naming token_stale", a.status, a.body)
	}

	// The OPA routes' decisions are in the decision log, which records
	// off the request path: the stale one shows up first within moments.
	type entry struct{ Action, Subject, Reason string }
	waitForWithin(t, 5*time.Second, func() ([]entry, bool) {
		var recent struct {
			Entries []entry `json:"entries"`
		}
		getJSON(t, warden+"/v1/decisions/recent?action=data.httpapi.authz.allow&subject=carol", admin, &recent)
		return recent.Entries, len(recent.Entries) > 0 && recent.Entries[0].Reason == "token_stale"
	})
}
