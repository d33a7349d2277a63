package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/wardenauthz/warden/web/ui/uitest"
)

// TestUIDemoteAcrossReplicas is the admin's main flow in a real browser
// against two replicas of the real server sharing an embedded NATS: sign in
// with the development admin token, see both replicas, look a user up,
// demote her with a reason, see the change enforced on 2/2 replicas and
// listed in the ledger, and watch her old token being denied in the live
// decisions.
func TestUIDemoteAcrossReplicas(t *testing.T) {
	dataDir := t.TempDir() // one development issuer for both replicas
	replicas := startReplicas(t, dataDir, 2)
	first, second := replicas[0], replicas[1]
	// The browser goes first at cleanup (last in, first out): the servers
	// wait for its open decision stream when they shut down.
	ctx := uitest.NewBrowser(t)

	alice := mint(t, dataDir, "--sub", "alice@example.com", "--roles", "manager")
	for _, r := range []string{first, second} {
		if d := askDecision(t, r, alice, "orders:approve"); !d.Allow {
			t.Fatalf("%s: alice before the change: %+v", r, d)
		}
	}

	uitest.Run(t, ctx, "sign in with the development admin token",
		chromedp.Navigate(first+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("dev-token")),
		chromedp.Click(chromedp.ID("dev-token")),
		chromedp.WaitVisible(chromedp.CSS(`#replicas tbody tr[data-replica="r1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#replicas tbody tr[data-replica="r2"]`)),
		uitest.TextContains("#who", "dev-admin"),
		uitest.TextContains("#status", "r1"),
	)

	// Every control of every page has a name a screen reader can say.
	if bare := uitest.Unlabelled(t, ctx); len(bare) > 0 {
		t.Errorf("form controls without a label: %v", bare)
	}

	uitest.Run(t, ctx, "open live decisions",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="live"]`)),
		uitest.TextContains("#live-state", "Live"),
	)

	uitest.Run(t, ctx, "look alice up",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="subjects"]`)),
		chromedp.WaitVisible(chromedp.ID("lookup-subject")),
		uitest.SetInput("#lookup-subject", "alice@example.com"),
		chromedp.Click(chromedp.CSS(`#lookup-form button[type="submit"]`)),
		// Her decision on this replica (r1) before the change.
		uitest.TextContains("#subject-decisions tbody", "orders:approve"),
		chromedp.WaitVisible(chromedp.ID("subject-ledger-empty")),
	)
	if got := uitest.Eval[string](t, ctx, `document.getElementById("push-subject").value`); got != "alice@example.com" {
		t.Errorf("the push form's subject = %q, want the subject looked up", got)
	}

	uitest.Run(t, ctx, "a push without a reason is refused in the page",
		chromedp.Click(chromedp.ID("push-submit")),
		uitest.TextContains("#push-error", "Say why"),
	)
	if focused := uitest.Eval[string](t, ctx, `document.activeElement.id`); focused != "push-reason" {
		t.Errorf("focus after the refused push is on %q, want the reason field", focused)
	}

	uitest.Run(t, ctx, "demote alice",
		uitest.SetInput("#push-type", "roles_changed"),
		uitest.SetInput("#push-reason", "moved to the support team"),
		chromedp.Click(chromedp.ID("push-submit")),
		uitest.TextContains("#push-result", "Enforced on 2/2 replicas in"),
		chromedp.WaitVisible(chromedp.CSS(`#subject-ledger tbody tr[data-type="roles_changed"]`)),
		uitest.TextContains("#subject-ledger tbody", "token_stale"),
		uitest.TextContains("#subject-ledger tbody", "moved to the support team"),
		uitest.TextContains("#subject-ledger tbody", "dev-admin"),
	)
	result := uitest.Eval[string](t, ctx, `document.getElementById("push-result").textContent`)
	if !regexp.MustCompile(`Enforced on 2/2 replicas in \d+ ms\.`).MatchString(result) {
		t.Errorf("push result %q does not say where and how fast the change was enforced", result)
	}
	uitest.Screenshot(t, ctx, "subjects")

	// Every replica now denies alice's old token and tells her client to
	// refresh.
	for _, r := range []string{first, second} {
		if d := askDecision(t, r, alice, "orders:approve"); d.Allow || d.Reason != "token_stale" || !d.Refresh {
			t.Errorf("%s: alice's old token after the demotion = %+v, want token_stale with refresh", r, d)
		}
	}

	uitest.Run(t, ctx, "the ledger lists the entry with its time left",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="revocations"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#revocations tbody tr[data-subject="alice@example.com"]`)),
		uitest.TextContains("#revocations tbody", "roles_changed"),
	)
	left := uitest.Eval[string](t, ctx, `document.querySelector('#revocations tbody tr[data-subject="alice@example.com"] td:last-child').textContent`)
	if !regexp.MustCompile(`^\d+ (h|min|s)`).MatchString(left) {
		t.Errorf("time left = %q, want a countdown like \"1 h 59 min\"", left)
	}
	uitest.Run(t, ctx, "filter the ledger by subject",
		uitest.SetInput("#rev-filter", "bob"),
		chromedp.WaitNotVisible(chromedp.CSS(`#revocations tbody tr[data-subject="alice@example.com"]`)),
		uitest.TextContains("#revocations-empty", "No entry matches"),
		uitest.SetInput("#rev-filter", ""),
		chromedp.WaitVisible(chromedp.CSS(`#revocations tbody tr[data-subject="alice@example.com"]`)),
	)
	uitest.Screenshot(t, ctx, "revocations")

	uitest.Run(t, ctx, "open the live decisions again",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="live"]`)),
		uitest.TextContains("#live-state", "Live"),
	)
	if d := askDecision(t, first, alice, "orders:read"); d.Reason != "token_stale" {
		t.Errorf("alice's old token = %+v, want token_stale", d)
	}
	for _, who := range []struct{ sub, roles, action string }{
		{"bob", "staff", "orders:approve"}, {"carol", "manager", "orders:approve"}, {"dave", "staff", "orders:read"},
	} {
		askDecision(t, first, mint(t, dataDir, "--sub", who.sub, "--roles", who.roles), who.action)
	}
	uitest.Run(t, ctx, "the denial appears among the others",
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="dave"]`)),
		uitest.TextContains(`#decisions tbody tr[data-subject="alice@example.com"]`, "token_stale"),
	)
	uitest.Screenshot(t, ctx, "live")
	uitest.Run(t, ctx, "filter her denials, in the page and at the server",
		uitest.SetInput("#f-subject", "alice"),
		uitest.SetInput("#f-allow", "false"),
		chromedp.WaitNotVisible(chromedp.CSS(`#decisions tbody tr[data-subject="bob"]`)),
		uitest.TextContains("#live-state", "filtered at the server"),
	)
	uitest.Run(t, ctx, "a subject in the live decisions leads to her page",
		chromedp.Click(chromedp.CSS(`#decisions tbody tr[data-subject="alice@example.com"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#subject-ledger tbody tr[data-type="roles_changed"]`)),
		uitest.TextContains("#subject-decisions tbody", "token_stale"),
	)
	if got := uitest.Eval[string](t, ctx, `document.getElementById("lookup-subject").value`); got != "alice@example.com" {
		t.Errorf("lookup subject = %q after following the link", got)
	}

	// The overview counts each replica's decisions from its heartbeats
	// (each replica beat right after applying the event).
	uitest.Run(t, ctx, "the overview counts decisions per replica",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="overview"]`)),
		uitest.TextContains(`#replicas tbody tr[data-replica="r1"]`, "denied"),
		uitest.TextContains(`#replicas tbody tr[data-replica="r2"]`, "denied"),
		uitest.TextContains("#fleet-rates", "decisions/s"),
	)
	// The charts draw each replica's decisions of the last 15 minutes from
	// the load its heartbeats carry: a line per replica with its decisions
	// and denials (alice's old token was denied on both), and its latency.
	var lines []string
	for _, r := range []string{"r1", "r2"} {
		for _, chart := range []string{"decisions", "denied", "latency"} {
			series := chart
			if chart == "latency" {
				series = "p99"
			}
			lines = append(lines, fmt.Sprintf(`#chart-%s path[data-replica=%q][data-series=%q]:not([data-points="0"])`, chart, r, series))
		}
	}
	actions := []chromedp.Action[chromedp.Void]{uitest.TextContains("#chart-legend", "r2")}
	for _, sel := range lines {
		actions = append(actions, chromedp.WaitReady(sel))
	}
	actions = append(actions, uitest.TextContains("#chart-denied-summary", "r2: latest"))
	uitest.Run(t, ctx, "the overview charts each replica's last 15 minutes", actions...)
	if peak := uitest.Eval[string](t, ctx, `document.getElementById("chart-latency-summary").textContent`); !regexp.MustCompile(`r1 p99: latest \d+(\.\d)? (µs|ms)`).MatchString(peak) {
		t.Errorf("latency chart summary %q names no p99 for r1", peak)
	}
	uitest.Screenshot(t, ctx, "overview")

	// token_revoked needs the token's jti: the page says so before sending.
	uitest.Run(t, ctx, "revoking a token asks for its jti",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="subjects"]`)),
		uitest.SetInput("#push-type", "token_revoked"),
		chromedp.WaitVisible(chromedp.ID("push-jti")),
		uitest.SetInput("#push-reason", "laptop stolen"),
		chromedp.Click(chromedp.ID("push-submit")),
		uitest.TextContains("#push-error", "jti"),
	)
	if strings.Contains(uitest.Eval[string](t, ctx, `document.getElementById("push-result").textContent`), "token_revoked") {
		t.Error("a token_revoked without jti was pushed")
	}
}

// TestUIViewer signs in with a token of the shipped admin policy's
// read-only role: every page shows, the live decisions flow, and each change
// the viewer tries is refused with the action the policy refused.
func TestUIViewer(t *testing.T) {
	dataDir := t.TempDir()
	base, _, _ := startWarden(t, dataDir)
	waitReady(t, base)
	ctx := uitest.NewBrowser(t)
	viewer := mint(t, dataDir, "--sub", "carol", "--roles", "warden-viewer")

	uitest.Run(t, ctx, "sign in as a viewer",
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), viewer),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#replicas tbody tr`)),
		uitest.TextContains("#who", "carol"),
	)
	uitest.Run(t, ctx, "a push is refused, saying what was refused",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="subjects"]`)),
		uitest.SetInput("#push-subject", "alice"),
		uitest.SetInput("#push-reason", "demoted"),
		chromedp.Click(chromedp.ID("push-submit")),
		uitest.TextContains("#push-error", "Not pushed: Not allowed: the admin policy does not allow carol to POST /v1/events"),
	)
	uitest.Run(t, ctx, "the policies show; validating is refused",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="policies"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#pol-files .pol-file[data-file="authz.rego"]`)),
		chromedp.Click(chromedp.ID("pol-validate")),
		uitest.TextContains("#view-policies", "does not allow carol to POST /v1/policies/test"),
	)
	uitest.Run(t, ctx, "the live decisions flow",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="live"]`)),
		uitest.TextContains("#live-state", "Live"),
	)
	alice := mint(t, dataDir, "--sub", "alice", "--roles", "manager")
	askDecision(t, base, alice, "orders:approve")
	uitest.Run(t, ctx, "a decision appears",
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="alice"]`)),
	)
}
