package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// authzenAsk posts an AuthZEN evaluation to a running Warden as a PEP with
// its client token, after Warden-Min-Seq seq when seq > 0, and returns the
// status and the decoded answer.
func authzenAsk(t *testing.T, base, pepToken string, seq uint64, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/access/v1/evaluation", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+pepToken)
	if seq > 0 {
		req.Header.Set("Warden-Min-Seq", strconv.FormatUint(seq, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// TestAuthZENProcess runs AuthZEN against real Warden processes, as a PEP
// would: the certification fixture in asserted mode over HTTP, and the
// shipped policy in token mode with dev-issuer tokens, where a demotion
// published through the admin API (embedded NATS) makes the user's older
// token stale at once.
func TestAuthZENProcess(t *testing.T) {
	const pep = "0123456789abcdef0123456789abcdef"
	clients := filepath.Join(t.TempDir(), "clients")
	if err := os.WriteFile(clients, []byte("gateway "+pep+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("asserted", func(t *testing.T) {
		base, _, _ := startWarden(t, t.TempDir(), "--decision-api-client-tokens-file", clients,
			"--policies-source", "dir", "--policies-dir", "../../testdata/authzen/certification")
		waitReady(t, base)
		for body, want := range map[string]bool{
			`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`:                                                                 true,
			`{"subject":{"type":"user","id":"bob"},"action":{"name":"write"},"resource":{"type":"record","id":"record-1"}}`:                                                                  false,
			`{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}},"action":{"name":"write"},"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}`: true,
		} {
			if status, out := authzenAsk(t, base, pep, 0, body); status != 200 || out["decision"] != want {
				t.Errorf("%s: %d %v; want decision %v", body, status, out, want)
			}
		}
		if status, _ := authzenAsk(t, base, "wrong-token-wrong-token-wrong-token", 0, `{}`); status != 401 {
			t.Errorf("unknown caller: %d, want 401", status)
		}
	})

	t.Run("token", func(t *testing.T) {
		dataDir := t.TempDir()
		base, _, _ := startWarden(t, dataDir, "--decision-api-client-tokens-file", clients)
		waitReady(t, base)
		old := mint(t, dataDir, "--sub", "alice", "--roles", "manager")
		approve := func(token string) string {
			return `{"subject":{"type":"user","id":"alice","properties":{"token":"` + token + `"}},"action":{"name":"orders:approve"},"resource":{"type":"order","id":"42"}}`
		}
		if status, out := authzenAsk(t, base, pep, 0, approve(old)); status != 200 || out["decision"] != true {
			t.Fatalf("manager approves: %d %v", status, out)
		}
		time.Sleep(1100 * time.Millisecond) // the change comes in a later second than the token's iat
		seq := publishJSON(t, base, dataDir, `{"type":"roles_changed","subject":"alice"}`)
		status, out := authzenAsk(t, base, pep, seq, approve(old))
		ctx, _ := out["context"].(map[string]any)
		if status != 200 || out["decision"] != false || ctx["reason_code"] != "token_stale" || ctx["refresh"] != true {
			t.Errorf("demoted user's old token: %d %v; want denied, token_stale, refresh", status, out)
		}
		time.Sleep(1100 * time.Millisecond)
		if status, out := authzenAsk(t, base, pep, 0, approve(mint(t, dataDir, "--sub", "alice", "--roles", "staff"))); status != 200 || out["decision"] != false {
			t.Errorf("her new staff token approves: %d %v; want denied by policy", status, out)
		}
	})
}
