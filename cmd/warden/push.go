package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wardenauthz/warden/policyset"
)

// policyPush implements "warden policy push --server URL [dir]": it uploads a
// directory as one policy set through the admin API (PUT /v1/policies, which
// checks it whole and runs its tests before storing it), then waits until
// every replica runs it.
func policyPush(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newPolicyFlags("push", "push [--server URL] [--token T] [--message M] [--wait 10s] [dir]", stderr)
	server := fs.String("server", "http://127.0.0.1:8480", "Warden's base URL")
	token := fs.String("token", "", "admin token (default: $WARDEN_ADMIN_TOKEN, or one minted from the development key in --data-dir)")
	dataDir := fs.String("data-dir", defaultConfig().DataDir, "data directory of a development-mode Warden, whose key can mint an admin token")
	message := fs.String("message", "", "what changed, kept with the set")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for every replica to run the set (0: do not wait)")
	set, err := parsePolicyArgs(fs, args, nil)
	if err != nil {
		return err
	}
	if *token == "" {
		*token = getenv("WARDEN_ADMIN_TOKEN")
	}
	if *token == "" {
		// Development mode: the data directory holds the development
		// issuer's key, as for "warden event". Never create one here.
		if _, err := os.Stat(filepath.Join(*dataDir, devKeyFile)); err != nil {
			return errors.New("no admin token: pass --token or set WARDEN_ADMIN_TOKEN")
		}
		dev, _, err := loadDevIssuer(*dataDir)
		if err != nil {
			return err
		}
		if *token, err = dev.mint("warden-cli", []string{"warden-admin"}, 5*time.Minute, nil, time.Now()); err != nil {
			return err
		}
	}
	local, err := policyset.FromFS(set.fsys, ".")
	if err != nil {
		return err
	}
	files := make(map[string]string, len(local.Files))
	for name, content := range local.Files {
		files[name] = string(content)
	}
	body, _ := json.Marshal(map[string]any{"files": files, "message": *message})
	client := &http.Client{Timeout: 30 * time.Second}
	base := strings.TrimSuffix(*server, "/")

	var stored struct {
		Revision   string `json:"revision"`
		KVRevision uint64 `json:"kv_revision"`
	}
	if err := apiCall(ctx, client, http.MethodPut, base+"/v1/policies", *token, body, &stored); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stored %s as revision %s\n", set.label, stored.Revision)
	if *wait <= 0 {
		return nil
	}

	deadline := time.Now().Add(*wait)
	for {
		var fleet struct {
			Replicas []struct {
				ID             string `json:"id"`
				PolicyRevision string `json:"policy_revision"`
			} `json:"replicas"`
		}
		if err := apiCall(ctx, client, http.MethodGet, base+"/v1/replicas", *token, nil, &fleet); err != nil {
			return err
		}
		running := 0
		var behind []string
		for _, r := range fleet.Replicas {
			if r.PolicyRevision == stored.Revision {
				running++
			} else {
				behind = append(behind, r.ID+" ("+r.PolicyRevision+")")
			}
		}
		if len(behind) == 0 && running > 0 {
			fmt.Fprintf(stdout, "active on %d/%d replicas\n", running, len(fleet.Replicas))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v, active on %d/%d replicas; still on another revision: %s (GET /v1/status on them says why)",
				*wait, running, len(fleet.Replicas), strings.Join(behind, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// apiCall sends one admin API request and decodes its JSON answer into out,
// turning the error shape into an error that lists a refused set's problems.
func apiCall(ctx context.Context, client *http.Client, method, url, token string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("is Warden running at %s? %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code     string `json:"code"`
				Message  string `json:"message"`
				Problems []struct {
					File     string `json:"file"`
					Row, Col int
					Message  string `json:"message"`
				} `json:"problems"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
			return fmt.Errorf("%s %s: %s", method, url, resp.Status)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %s", e.Error.Code, e.Error.Message)
		for _, p := range e.Error.Problems {
			fmt.Fprintf(&b, "\n  %s:%d:%d: %s", p.File, p.Row, p.Col, p.Message)
		}
		return errors.New(b.String())
	}
	return json.Unmarshal(raw, out)
}
