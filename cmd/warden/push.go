package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/policyset"
	"github.com/wardenauthz/warden/web"
)

// policyPush implements "warden policy push --server URL [dir]": it uploads a
// directory as one policy set through the admin API (PUT /v1/policies, which
// checks it whole and runs its tests before storing it), then waits until
// every replica runs it.
func policyPush(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newPolicyFlags("push", "push [--server URL] [--token T] [--message M] [--wait 10s] [dir]", stderr)
	server := fs.String("server", "http://"+defaultConfig().Listen, "Warden's base URL")
	token := fs.String("token", "", "admin token (default: $WARDEN_ADMIN_TOKEN, or one minted from the development key in --data-dir)")
	dataDir := fs.String("data-dir", defaultConfig().DataDir, "data directory of a development-mode Warden, whose key can mint an admin token")
	message := fs.String("message", "", "what changed, kept with the set")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for every replica to run the set (0: do not wait)")
	set, err := parsePolicyArgs(fs, args, nil)
	if err != nil {
		return err
	}
	client, err := newAdminClient(*server, *token, *dataDir, getenv, 30*time.Second)
	if err != nil {
		return err
	}
	local, err := policyset.FromFS(set.fsys, ".")
	if err != nil {
		return err
	}
	files := make(map[string]string, len(local.Files))
	for name, content := range local.Files {
		files[name] = string(content)
	}
	var stored web.StoredSet
	if err := client.call(ctx, http.MethodPut, "/v1/policies", map[string]any{"files": files, "message": *message}, &stored); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stored %s as revision %s\n", set.label, stored.Revision)
	if *wait <= 0 {
		return nil
	}

	deadline := time.Now().Add(*wait)
	for {
		var fleet struct {
			Replicas []events.Replica `json:"replicas"`
		}
		if err := client.call(ctx, http.MethodGet, "/v1/replicas", nil, &fleet); err != nil {
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
