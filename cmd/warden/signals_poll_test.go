package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// pollQueue is an RFC 8936 poll endpoint of the in-test transmitter: it
// delivers every SET not yet acknowledged, on every poll, and counts the
// acknowledgements. With holdAfter set, the poll after the one that
// delivered that jti fails with 503, so Warden cannot acknowledge it.
type pollQueue struct {
	mu        sync.Mutex
	pending   map[string]string // jti -> SET
	acks      map[string]int
	errs      map[string]string // jti -> the err Warden reported in setErrs
	holdAfter string
	holding   bool
}

const pollAuth = "Bearer poll-credential-abcdefghijklmnop"

func (q *pollQueue) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r.Header.Get("Authorization") != pollAuth || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if q.holding {
		http.Error(w, "held", http.StatusServiceUnavailable)
		return
	}
	var req struct {
		Ack               []string                  `json:"ack"`
		SetErrs           map[string]map[string]any `json:"setErrs"`
		ReturnImmediately bool                      `json:"returnImmediately"`
		MaxEvents         int                       `json:"maxEvents"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.MaxEvents <= 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	for _, jti := range req.Ack {
		q.acks[jti]++
		delete(q.pending, jti)
	}
	for jti, e := range req.SetErrs {
		q.errs[jti], _ = e["err"].(string)
		delete(q.pending, jti)
	}
	sets := map[string]string{}
	for jti, set := range q.pending {
		if len(sets) == req.MaxEvents {
			break
		}
		sets[jti] = set
		if jti == q.holdAfter {
			q.holding = true
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"sets": sets, "moreAvailable": len(sets) < len(q.pending)})
}

func (q *pollQueue) add(jti, set string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending[jti] = set
}

func (q *pollQueue) acked(jti string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.acks[jti]
}

// TestSignalsPollAcrossRestart polls a transmitter, stops Warden after it
// applied a SET but before it could acknowledge it, queues another SET
// while Warden is down, and restarts Warden: every SET is applied, none
// twice, and every one is acknowledged once; a SET it refuses is reported
// in setErrs with its RFC 8935 code.
func TestSignalsPollAcrossRestart(t *testing.T) {
	tr := newSSFTransmitter(t)
	q := &pollQueue{pending: map[string]string{}, acks: map[string]int{}, errs: map[string]string{}}
	srv := httptest.NewServer(q)
	t.Cleanup(srv.Close)
	poll := srv.URL + "/poll"
	authFile := filepath.Join(t.TempDir(), "poll.auth")
	if err := os.WriteFile(authFile, []byte(pollAuth), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := tr.config(t, fmt.Sprintf("      poll: {url: %s, authorization_file: %s, interval: 20ms, max_events: 10}\n", poll, authFile))
	dataDir := t.TempDir()
	base, _, stop := startWarden(t, dataDir, "--config", cfg)
	waitReady(t, base)

	revoke := func(sub string) (jti, token string) {
		token = mint(t, dataDir, "--sub", sub, "--roles", "manager")
		jti = "poll-" + sub
		set := tr.set(t, "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked",
			map[string]any{"event_timestamp": time.Now().Add(time.Second).Unix()}, issSub(sub),
			func(c map[string]any, _ *jose.SignerOptions) { c["jti"] = jti })
		q.add(jti, set)
		return jti, token
	}

	jti1, token1 := revoke("u1")
	awaitReason(t, []string{base}, token1, "token_revoked")
	waitForWithin(t, 5*time.Second, func() (int, bool) { n := q.acked(jti1); return n, n == 1 })

	q.mu.Lock()
	q.holdAfter = "poll-u2"
	q.mu.Unlock()
	jti2, token2 := revoke("u2")
	awaitReason(t, []string{base}, token2, "token_revoked")
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n := q.acked(jti2); n != 0 {
		t.Fatalf("%s acknowledged %d times before the restart, want 0 (the test holds the acknowledgement)", jti2, n)
	}

	jti3, token3 := revoke("u3")
	q.mu.Lock()
	q.holding, q.holdAfter = false, ""
	q.mu.Unlock()
	base, _, _ = startWarden(t, dataDir, "--config", cfg)
	waitReady(t, base)
	awaitReason(t, []string{base}, token3, "token_revoked")
	awaitReason(t, []string{base}, token2, "token_revoked")
	for _, jti := range []string{jti1, jti2, jti3} {
		waitForWithin(t, 5*time.Second, func() (string, bool) { n := q.acked(jti); return fmt.Sprint(jti, " acked ", n), n == 1 })
	}
	// A SET Warden refuses is reported in setErrs with its RFC 8935 code,
	// not acknowledged, and changes nothing.
	bad := tr.set(t, "https://schemas.openid.net/secevent/risc/event-type/account-disabled", map[string]any{}, issSub("u1"),
		func(c map[string]any, _ *jose.SignerOptions) { c["jti"], c["aud"] = "poll-bad", "someone-else" })
	q.add("poll-bad", bad)
	waitForWithin(t, 5*time.Second, func() (string, bool) {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.errs["poll-bad"], q.errs["poll-bad"] == "invalid_audience"
	})
	if n := q.acked("poll-bad"); n != 0 {
		t.Errorf("the refused SET was acknowledged %d times", n)
	}

	// Three SETs, three events in the stream: the SET delivered again
	// after the restart was not published twice.
	if got := streamLastSeq(t, base, dataDir); got != 3 {
		t.Errorf("stream_last_seq = %d, want 3", got)
	}
}

func streamLastSeq(t *testing.T, base, dataDir string) uint64 {
	t.Helper()
	var st struct {
		Events struct {
			StreamLastSeq uint64 `json:"stream_last_seq"`
		} `json:"events"`
	}
	getJSON(t, base+"/v1/status", mint(t, dataDir, "--sub", "admin", "--roles", "warden-admin"), &st)
	return st.Events.StreamLastSeq
}
