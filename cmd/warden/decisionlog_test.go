package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDecisionLogThroughRun starts "warden serve --decision-log-output
// FILE", watches the decision stream with an admin token, asks a decision,
// and finds it in the file and on the stream; then shuts down with the
// stream still open.
func TestDecisionLogThroughRun(t *testing.T) {
	dataDir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "decisions.jsonl")
	baseURL, stderr, stop := startWarden(t, dataDir, "--decision-log-output", logPath)
	admin := mint(t, dataDir, "--sub", "root", "--roles", "warden-admin")
	manager := mint(t, dataDir, "--sub", "alice", "--roles", "manager")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", baseURL+"/v1/decisions/stream?subject=alice", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream = %d %s", resp.StatusCode, b)
	}
	ids := make(chan string, 16)
	go func() {
		defer close(ids)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				ids <- id
			}
		}
	}()

	d := askDecision(t, baseURL, manager, "orders:approve")

	var line map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for line == nil {
		data, _ := os.ReadFile(logPath)
		for l := range bytes.Lines(data) {
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				t.Fatalf("not a JSON line: %v: %s", err, l)
			}
			if m["decision_id"] == d.DecisionID {
				line = m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("decision %s not in %s after 10s:\n%s", d.DecisionID, logPath, data)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if line["subject"] != "alice" || line["allow"] != true || line["resource_type"] != "order" || line["resource_id"] != "42" || line["replica"] == "" {
		t.Errorf("entry = %v", line)
	}
	info, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("decision log mode = %v, want 0600", perm)
	}
	data, _ := os.ReadFile(logPath)
	for _, tok := range []string{admin, manager} {
		for _, seg := range strings.Split(tok, ".") {
			if bytes.Contains(data, []byte(seg)) {
				t.Fatalf("a token segment is in the decision log:\n%s", data)
			}
		}
	}

	select {
	case id := <-ids:
		if id != d.DecisionID {
			t.Errorf("stream sent %s, want %s", id, d.DecisionID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the decision did not reach the stream")
	}

	// The stream is still open: shutting down must end it, not wait for it.
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("run returned %v with a stream open, want nil\n%s", err, stderr.String())
	}
	if took := time.Since(start); took > shutdownTimeout/2 {
		t.Errorf("shutdown took %v with a stream open", took)
	}
	for range ids { // the stream ends
	}
}

func TestOpenDecisionLogOutput(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	var stdout bytes.Buffer

	if w, closeOut, err := openDecisionLogOutput(DecisionLogConfig{MaxSizeMB: 1, MaxFiles: 1}, &stdout); err != nil || w != nil {
		t.Errorf(`"" = %v, %v; want no output`, w, err)
	} else {
		closeOut(logger)
	}
	if w, closeOut, err := openDecisionLogOutput(DecisionLogConfig{Output: "stdout", MaxSizeMB: 1, MaxFiles: 1}, &stdout); err != nil || w != &stdout {
		t.Errorf(`"stdout" = %v, %v; want the process's stdout`, w, err)
	} else {
		closeOut(logger)
	}

	existing := filepath.Join(dir, "existing.jsonl")
	if err := os.WriteFile(existing, []byte("{\"old\":1}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	w, closeOut, err := openDecisionLogOutput(DecisionLogConfig{Output: existing, MaxSizeMB: 1, MaxFiles: 1}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "{\"new\":2}\n")
	closeOut(logger)
	if got, _ := os.ReadFile(existing); string(got) != "{\"old\":1}\n{\"new\":2}\n" {
		t.Errorf("existing file = %q, want the new line appended", got)
	}
	if info, _ := os.Stat(existing); info.Mode().Perm() != 0o640 {
		t.Errorf("an existing file's mode changed to %v", info.Mode().Perm())
	}

	if _, _, err := openDecisionLogOutput(DecisionLogConfig{Output: filepath.Join(dir, "missing", "x.jsonl"), MaxSizeMB: 1, MaxFiles: 1}, &stdout); err == nil || !strings.Contains(err.Error(), "decision_log.output") {
		t.Errorf("a path in a missing directory: err = %v, want one naming decision_log.output", err)
	}

	// A flood is bounded: the file is rotated at max_size_mb and only
	// max_files rotated files are kept.
	flooded := filepath.Join(dir, "flood.jsonl")
	w, closeOut, err = openDecisionLogOutput(DecisionLogConfig{Output: flooded, MaxSizeMB: 1, MaxFiles: 2}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 1023) + "\n")
	for range 5 * 1024 { // 5 MiB
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	closeOut(logger)
	// lumberjack removes the rotated files past max_files on a goroutine
	// of its own, which Close does not wait for: give it a few seconds.
	var files []string
	var total int64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		files, _ = filepath.Glob(filepath.Join(dir, "flood*.jsonl"))
		total = 0
		for _, f := range files {
			if info, err := os.Stat(f); err == nil {
				total += info.Size()
			}
		}
		if len(files) <= 3 || time.Now().After(deadline) {
			break
		}
	}
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, info.Mode().Perm())
		}
	}
	if len(files) != 3 || total > 3<<20 {
		t.Errorf("after 5 MiB: %d files, %d bytes; want the current one and 2 rotated, at most 3 MiB", len(files), total)
	}
}

func TestDecisionLogConfig(t *testing.T) {
	for _, tt := range []struct {
		name       string
		args       []string
		env        map[string]string
		wantOutput string
		wantBuffer int
		wantErr    string
	}{
		{"defaults", nil, nil, "", 4096, ""},
		{"flags", []string{"--decision-log-output", "stdout", "--decision-log-buffer", "16"}, nil, "stdout", 16, ""},
		{"environment", nil, map[string]string{"WARDEN_DECISION_LOG_OUTPUT": "/var/log/warden.jsonl", "WARDEN_DECISION_LOG_BUFFER": "64"}, "/var/log/warden.jsonl", 64, ""},
		{"buffer zero", []string{"--decision-log-buffer", "0"}, nil, "", 0, "decision_log.buffer: 0 must be 1 to"},
		{"buffer huge", []string{"--decision-log-buffer", "100000000"}, nil, "", 0, "decision_log.buffer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig("serve", tt.args, env(tt.env), io.Discard, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.DecisionLog.Output != tt.wantOutput || cfg.DecisionLog.Buffer != tt.wantBuffer {
				t.Errorf("decision_log = %+v, want output %q buffer %d", cfg.DecisionLog, tt.wantOutput, tt.wantBuffer)
			}
		})
	}
}
