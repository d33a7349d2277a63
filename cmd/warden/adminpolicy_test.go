package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAdminPolicyProtectsItself replays the self-escalation: a policy
// author rewrites admin.rego to allow everyone. The admin policy sees what
// the change touches and refuses it; the same author may change the
// authorization policy. When a warden-admin changes the admin policy, it is
// a security event: logged at warn, counted, and said in the stored set's
// message.
func TestAdminPolicyProtectsItself(t *testing.T) {
	dataDir := t.TempDir()
	base, log, _ := startWarden(t, dataDir)
	waitReady(t, base)
	author := mint(t, dataDir, "--sub", "dana", "--roles", "warden-policy-author")
	root := mint(t, dataDir, "--sub", "root", "--roles", "warden-admin")
	put := func(token, file, content string) (int, string) {
		status, body, _ := adminDo(t, "PUT", base+"/v1/policies/"+file, token, "text/plain", content)
		return status, body
	}
	escalate := "package warden.admin\n\nallow := true\n"
	for _, file := range []string{"admin.rego", "sneaky.rego"} {
		if status, body := put(author, file, escalate); status != 403 || !strings.Contains(body, "does not allow dana") {
			t.Errorf("the author's %s with allow := true = %d %s, want 403", file, status, body)
		}
	}
	if status, body := put(author, "extra.rego", "package warden.extra\n\nhello := \"world\"\n"); status != 200 {
		t.Errorf("the author's own module = %d %s, want 200", status, body)
	}
	if strings.Contains(log.String(), "security: the admin policy was changed") {
		t.Errorf("a change of another package was logged as an admin policy change")
	}

	// A warden-admin may, and it is recorded.
	_, adminRego, _ := adminDo(t, "GET", base+"/v1/policies/admin.rego", root, "", "")
	if status, body := put(root, "admin.rego", adminRego+"\n# reviewed\n"); status != 200 {
		t.Fatalf("the admin's change of admin.rego = %d %s", status, body)
	}
	if !strings.Contains(log.String(), "security: the admin policy was changed") || !strings.Contains(log.String(), "actor=root") {
		t.Errorf("the admin policy change was not logged as a security event:\n%s", log)
	}
	var listed struct {
		Message string `json:"message"`
	}
	getJSON(t, base+"/v1/policies", root, &listed)
	if !strings.Contains(listed.Message, "changes the admin policy") {
		t.Errorf("stored message %q does not say it changes the admin policy", listed.Message)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "warden_admin_policy_changes_total 1") {
		t.Errorf("metrics lack warden_admin_policy_changes_total 1")
	}
}
