package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBusyPort: warden serve on an address already in use fails at once,
// saying which address and which setting to change, before it starts NATS
// or compiles anything.
func TestBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	start := time.Now()
	err = run(context.Background(), []string{"warden", "serve", "--listen", busy.Addr().String(), "--data-dir", dataDir},
		env(nil), strings.NewReader(""), io.Discard, io.Discard)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()+" is in use") || !strings.Contains(err.Error(), "--listen") {
		t.Errorf("serve on a busy port = %v, want it named as in use, with the setting to change", err)
	}
	if took > 2*time.Second {
		t.Errorf("took %v to fail", took)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "nats")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the embedded NATS server was started before the port was checked (%v)", err)
	}
}

// TestQuietStartup: the embedded NATS server's notices (its banner) stay out
// of the default log and appear with log.level debug.
func TestQuietStartup(t *testing.T) {
	const banner = "Starting nats-server"
	_, quiet, stop := startWarden(t, t.TempDir())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(quiet.String(), banner) {
		t.Errorf("the default log shows the NATS banner:\n%s", quiet.String())
	}
	if n := strings.Count(quiet.String(), "\n"); n > 40 {
		t.Errorf("the default startup log has %d lines:\n%s", n, quiet.String())
	}
	_, verbose, stop := startWarden(t, t.TempDir(), "--log-level", "debug")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(verbose.String(), banner) {
		t.Errorf("log.level debug does not show the NATS banner:\n%s", verbose.String())
	}
}

// TestDevModeRefusesForeignHosts: warden serve in development mode answers
// only requests for this machine's names (DNS rebinding).
func TestDevModeRefusesForeignHosts(t *testing.T) {
	base, _, _ := startWarden(t, t.TempDir())
	for host, want := range map[string]int{"rebind.evil.example": 403, "localhost": 200} {
		req, _ := http.NewRequest("POST", base+"/v1/dev/admin-token", strings.NewReader("{}"))
		req.Host = host + ":" + strings.Split(base, ":")[2]
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %s, want %d", req.Host, resp.Status, want)
		}
	}
}

// TestDevModeStaysLocal: development mode refuses a listen address beyond
// loopback unless dev.allow_remote says so, and its banner prints a command
// to mint an admin token, not a token.
func TestDevModeStaysLocal(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		err := run(context.Background(), []string{"warden", "serve", "--listen", addr, "--data-dir", t.TempDir()},
			env(nil), strings.NewReader(""), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "loopback only") || !strings.Contains(err.Error(), "dev.allow_remote") {
			t.Errorf("development mode on %s = %v, want refused", addr, err)
		}
	}
	_, log, _ := startWarden(t, t.TempDir())
	if !strings.Contains(log.String(), "--roles warden-admin --ttl 15m") {
		t.Errorf("the banner does not say how to mint an admin token:\n%s", log)
	}
	if strings.Contains(log.String(), "eyJ") {
		t.Errorf("the banner prints a token:\n%s", log)
	}
}

// TestDecisionClientsFile: warden serve with decision_api.client_tokens_file
// answers decisions only to the callers it lists; a bad file stops it at
// start, naming the line.
func TestDecisionClientsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clients")
	if err := os.WriteFile(file, []byte("# callers\ngateway 0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	base, _, _ := startWarden(t, dataDir, "--decision-api-client-tokens-file", file)
	waitReady(t, base)
	body := `{"token":"` + mint(t, dataDir, "--sub", "alice", "--roles", "staff") + `","action":"orders:read"}`
	for token, want := range map[string]int{"": 401, "0123456789abcdef0123456789abcdeX": 401, "0123456789abcdef0123456789abcdef": 200} {
		req, _ := http.NewRequest("POST", base+"/v1/decision", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Warden-Client-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("client token %q: %s, want %d", token, resp.Status, want)
		}
	}

	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("gateway 0123\n"), 0o600)
	err := run(context.Background(), []string{"warden", "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--decision-api-client-tokens-file", short},
		env(nil), strings.NewReader(""), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), short+":1") {
		t.Errorf("a 4-character token = %v, want refused naming the line", err)
	}
}
