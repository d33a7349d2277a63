package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/wardenauthz/warden/policies"
	"github.com/wardenauthz/warden/web/ui/uitest"
)

// complianceRule is the change of behaviour the policy author makes in the
// browser: compliance officers may read every order. No shipped test covers
// it.
const complianceRule = `
# Compliance officers may read every order.
grants contains "compliance may read every order" if {
	"compliance" in roles
	input.action == "orders:read"
}
`

// TestUIPolicies is the policy author's flow in a real browser against a
// development-mode Warden with its embedded NATS: open the shipped set, break
// authz.rego and see the error on its line, fix it and add a rule, run the
// tests with coverage, see a failing test, review the diff, lose a race with
// another admin and keep the work, activate, and see decisions follow the
// new policy; then evaluate decisions in the playground against the draft
// and the active set with minted development tokens.
func TestUIPolicies(t *testing.T) {
	dataDir := t.TempDir()
	baseURL, _, _ := startWarden(t, dataDir)
	waitReady(t, baseURL)
	ctx := uitest.NewBrowser(t)

	admin := mint(t, dataDir, "--sub", "sec-eng", "--roles", "warden-admin")
	officer := mint(t, dataDir, "--sub", "carol", "--roles", "compliance")
	if d := askDecision(t, baseURL, officer, "orders:read"); d.Allow {
		t.Fatalf("a compliance officer may read before the change: %+v", d)
	}
	var stored struct {
		Revision string `json:"revision"`
		Message  string `json:"message"`
	}
	getJSON(t, baseURL+"/v1/policies", admin, &stored)
	shipped := stored.Revision

	signIn(t, ctx, baseURL, admin)
	defer checkPageErrors(t, ctx)
	uitest.Run(t, ctx, "open the policies",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="policies"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#pol-files .pol-file[data-file="authz.rego"]`)),
		uitest.TextContains("#pol-summary", shipped),
		// The module of the decision's package comes first.
		uitest.TextContains("#pol-file-title", "authz.rego"),
		chromedp.Click(chromedp.CSS(`#pol-files .pol-file[data-file="admin.rego"]`)),
		uitest.TextContains("#pol-file-title", "admin.rego"),
		chromedp.Click(chromedp.CSS(`#pol-files .pol-file[data-file="authz.rego"]`)),
		uitest.TextContains("#pol-file-title", "authz.rego"),
	)
	if n := uitest.Eval[int](t, ctx, `document.querySelectorAll("#pol-files .pol-file").length`); n != 7 {
		t.Errorf("%d files listed, want the shipped set's 7", n)
	}
	shippedAuthz := readShipped(t, "authz.rego")
	if got := uitest.Eval[string](t, ctx, `document.getElementById("pol-text").value`); got != shippedAuthz {
		t.Fatalf("the editor holds:\n%s\nwant the stored authz.rego", got)
	}
	if got := uitest.Eval[int](t, ctx, `document.querySelectorAll("#pol-gutter span:not(.end)").length`); got != strings.Count(shippedAuthz, "\n")+1 {
		t.Errorf("gutter has %d line numbers for %d lines", got, strings.Count(shippedAuthz, "\n")+1)
	}

	// Break line 18 and validate: the problem is listed at its file, line
	// and column, and marked in the gutter on that line.
	const line18 = "allow if count(grants) > 0"
	if lines := strings.Split(shippedAuthz, "\n"); lines[17] != line18 {
		t.Fatalf("authz.rego line 18 is %q, want %q", lines[17], line18)
	}
	broken := strings.Replace(shippedAuthz, line18, "allow if count(grants) > > 0", 1)
	uitest.Run(t, ctx, "break line 18 and validate",
		uitest.SetInput("#pol-text", broken),
		chromedp.Click(chromedp.ID("pol-validate")),
		uitest.TextContains("#pol-problems", "authz.rego:18:26"),
		uitest.TextContains("#pol-problems", "rego_parse_error"),
		uitest.TextContains("#pol-check-state", "does not compile"),
		uitest.TextContains(`#pol-files .pol-file[data-file="authz.rego"]`, "1 problem"),
	)
	if marked := uitest.Eval[string](t, ctx, `[...document.querySelectorAll("#pol-gutter span.problem")].map(s => s.textContent).join(",")`); marked != "18" {
		t.Errorf("gutter marks lines %q as problems, want 18", marked)
	}
	uitest.Run(t, ctx, "the problem's location moves the caret there",
		chromedp.Click(chromedp.CSS(`#pol-problems button.loc`)),
		uitest.TextContains("#pol-caret", "Line 18, column 26"),
	)
	if id := uitest.Eval[string](t, ctx, `document.activeElement.id`); id != "pol-text" {
		t.Errorf("focus after following the problem is on %q, want the editor", id)
	}
	uitest.Screenshot(t, ctx, "policies-error")

	// Fix it and let compliance officers read: the tests pass, and coverage
	// shows the new rule's lines as not covered.
	uitest.Run(t, ctx, "fix, add a rule and run the tests",
		uitest.SetInput("#pol-text", shippedAuthz+complianceRule),
		uitest.TextContains("#pol-check-stale", "validate again"),
		chromedp.Click(chromedp.ID("pol-validate")),
		uitest.TextContains("#pol-check-state", "tests passed"),
		uitest.TextContains("#pol-coverage", "authz.rego"),
		chromedp.WaitVisible(chromedp.CSS("#pol-gutter span.uncovered")),
		chromedp.WaitVisible(chromedp.CSS("#pol-gutter span.covered")),
		uitest.TextContains(`#pol-files .pol-file[data-file="authz.rego"]`, "changed"),
		uitest.TextContains(`#pol-files .pol-file[data-file="authz.rego"]`, "% covered"),
	)
	if n := uitest.Eval[int](t, ctx, `document.querySelectorAll("#pol-gutter span.problem").length`); n != 0 {
		t.Errorf("%d lines still marked as problems after the fix", n)
	}
	firstUncovered := uitest.Eval[int](t, ctx, `+document.querySelector("#pol-gutter span.uncovered").textContent`)
	if want := strings.Count(shippedAuthz, "\n") + 3; firstUncovered != want {
		t.Errorf("first line not covered = %d, want %d (the new rule's head)", firstUncovered, want)
	}
	uitest.Run(t, ctx, "the coverage table leads to the first line not covered",
		chromedp.Click(chromedp.CSS(`#pol-coverage button.loc[data-file="authz.rego"]`)),
		uitest.TextContains("#pol-caret", fmt.Sprintf("Line %d, column 1", firstUncovered)),
	)
	uitest.Screenshot(t, ctx, "policies")

	// The draft outlives a reload of the page (and a new sign-in after the
	// token expired): this tab keeps it.
	checkPageErrors(t, ctx)
	uitest.Run(t, ctx, "reload the page: the draft is restored",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("pol-text")),
		collectPageErrors,
		uitest.TextContains("#pol-loading", "Restored your unsaved changes to authz.rego"),
		uitest.TextContains(`#pol-files .pol-file[data-file="authz.rego"]`, "changed"),
	)
	if got := uitest.Eval[string](t, ctx, `document.getElementById("pol-text").value`); got != shippedAuthz+complianceRule {
		t.Errorf("after a reload the editor holds:\n%s\nwant the draft", got)
	}

	// A data change that breaks a shipped test: the failing test is listed
	// with where it failed; Revert file undoes it.
	shippedData := readShipped(t, "data.json")
	uitest.Run(t, ctx, "let staff approve: a test fails",
		chromedp.Click(chromedp.CSS(`#pol-files .pol-file[data-file="data.json"]`)),
		uitest.TextContains("#pol-file-title", "data.json"),
		uitest.SetInput("#pol-text", strings.Replace(shippedData, `"staff": ["orders:read"]`, `"staff": ["orders:read", "orders:approve"]`, 1)),
		chromedp.Click(chromedp.ID("pol-validate")),
		uitest.TextContains("#pol-check-state", fmt.Sprintf("1 of %d tests failed", shippedTests(t))),
		uitest.TextContains("#pol-tests", "test_staff_may_not_approve"),
		uitest.TextContains("#pol-problems", "authz_test.rego:26:2"),
		chromedp.Click(chromedp.ID("pol-revert")),
	)
	if got := uitest.Eval[string](t, ctx, `document.getElementById("pol-text").value`); got != shippedData {
		t.Errorf("data.json after Revert file:\n%s", got)
	}

	// The diff against the stored (and active) revision.
	uitest.Run(t, ctx, "see the changes",
		chromedp.Click(chromedp.ID("pol-tab-changes")),
		chromedp.WaitVisible(chromedp.CSS(`#pol-diff section[data-file="authz.rego"]`)),
		uitest.TextContains(`#pol-diff section[data-file="authz.rego"]`, `+ grants contains "compliance may read every order"`),
		uitest.TextContains("#pol-changes-summary", "1 file changed against revision "+shipped),
		uitest.TextContains("#pol-change-count", "(1)"),
	)

	if n := uitest.Eval[int](t, ctx, `document.querySelectorAll('#pol-diff section[data-file="authz.rego"] tr.add').length`); n != 6 {
		t.Errorf("the diff adds %d lines, want the rule's 6", n)
	}
	uitest.Screenshot(t, ctx, "policies-changes")

	// Another admin stores a change first: the activation is refused as a
	// conflict, and reloading keeps this author's edit on top of theirs.
	support := `{"warden": {"roles": {"manager": ["orders:read", "orders:approve"], "staff": ["orders:read"], "support": ["orders:read"]}}}`
	putPolicyFile(t, baseURL, admin, "data.json", support)
	uitest.Run(t, ctx, "activate loses the race",
		uitest.SetInput("#pol-message", "compliance may read"),
		chromedp.Click(chromedp.ID("pol-activate")),
		uitest.TextContains("#pol-activate-state", "someone changed the policy set"),
		chromedp.WaitVisible(chromedp.ID("pol-sync-box")),
		chromedp.Click(chromedp.ID("pol-rebase")),
		uitest.TextContains("#pol-loading", "your changes are kept"),
		chromedp.WaitNotVisible(chromedp.ID("pol-sync-box")),
		uitest.TextContains("#pol-change-count", "(1)"),
	)
	uitest.Run(t, ctx, "activate",
		chromedp.Click(chromedp.ID("pol-tab-changes")),
		chromedp.Click(chromedp.ID("pol-activate")),
		uitest.TextContains("#pol-activate-state", "is active on this replica"),
		uitest.TextContains("#pol-changes-summary", "No changes"),
	)
	getJSON(t, baseURL+"/v1/policies", admin, &stored)
	if stored.Revision == shipped || stored.Message != "compliance may read" {
		t.Errorf("stored set after activation: %+v", stored)
	}
	if text := uitest.Eval[string](t, ctx, `document.getElementById("pol-activate-state").textContent`); !strings.Contains(text, stored.Revision) {
		t.Errorf("activation says %q, want the new revision %s", text, stored.Revision)
	}
	// Decisions follow the new set, and the other admin's change is kept.
	if d := askDecision(t, baseURL, officer, "orders:read"); !d.Allow || d.PolicyRevision != stored.Revision {
		t.Errorf("compliance orders:read after activation = %+v, want allowed by %s", d, stored.Revision)
	}
	if d := askDecision(t, baseURL, mint(t, dataDir, "--sub", "dave", "--roles", "support"), "orders:read"); !d.Allow {
		t.Errorf("support orders:read after activation = %+v, want the other admin's role kept", d)
	}

	// Playground: a draft that lets compliance officers export, a minted
	// token, and the decision against the draft and against the active set.
	exportData := strings.Replace(support, `"support": ["orders:read"]`, `"support": ["orders:read"], "compliance": ["orders:export"]`, 1)
	uitest.Run(t, ctx, "edit the draft: compliance may export",
		chromedp.Click(chromedp.ID("pol-tab-editor")),
		chromedp.Click(chromedp.CSS(`#pol-files .pol-file[data-file="data.json"]`)),
		uitest.SetInput("#pol-text", exportData),
	)
	uitest.Run(t, ctx, "mint a development token",
		chromedp.Click(chromedp.ID("pol-tab-playground")),
		chromedp.WaitVisible(chromedp.ID("pol-mint")),
		uitest.SetInput("#pol-mint-sub", "carol"),
		uitest.SetInput("#pol-mint-roles", "compliance"),
		chromedp.Click(chromedp.ID("pol-mint-button")),
		uitest.TextContains("#pol-mint-state", "Minted a development token for carol with roles compliance"),
	)
	if tok := uitest.Eval[string](t, ctx, `document.getElementById("pol-play-token").value`); strings.Count(tok, ".") != 2 {
		t.Fatalf("token field = %q, want the minted JWT", tok)
	}
	uitest.Run(t, ctx, "evaluate against the draft",
		uitest.SetInput("#pol-play-action", "orders:export"),
		chromedp.Click(chromedp.ID("pol-play-run")),
		uitest.TextContains("#pol-verdict", "Allowed"),
		uitest.TextContains("#pol-reasons", "role compliance grants orders:export"),
		uitest.TextContains("#pol-decision", "(the draft)"),
		uitest.TextContains("#pol-rules", "grants"),
		uitest.TextContains("#pol-trace", "Enter data.warden.authz.allow"),
		uitest.TextContains("#pol-input", `"sub": "carol"`),
	)
	uitest.Screenshot(t, ctx, "policies-playground")
	uitest.Run(t, ctx, "evaluate against the active set",
		chromedp.Click(chromedp.ID("pol-play-active")),
		chromedp.Click(chromedp.ID("pol-play-run")),
		uitest.TextContains("#pol-verdict", "Denied"),
		uitest.TextContains("#pol-reasons", "no role grants orders:export"),
		uitest.TextContains("#pol-decision", stored.Revision+" (the active set)"),
	)

	// A rule's location opens it in the editor.
	uitest.Run(t, ctx, "a rule's location opens the editor",
		chromedp.Click(chromedp.CSS(`#pol-rules tbody button.loc`)),
		chromedp.WaitVisible(chromedp.ID("pol-text")),
		uitest.TextContains("#pol-file-title", "authz.rego"),
	)

	// What the policy returns is text: a subject that looks like markup
	// comes back in a reason and stays text.
	uitest.Run(t, ctx, "markup in a subject stays text",
		chromedp.Click(chromedp.ID("pol-tab-playground")),
		uitest.SetInput("#pol-mint-sub", `<img src=x id=pwned>`),
		uitest.SetInput("#pol-mint-roles", ""),
		chromedp.Click(chromedp.ID("pol-mint-button")),
		uitest.TextContains("#pol-mint-state", "without roles"),
		uitest.SetInput("#pol-play-action", "orders:read"),
		uitest.SetInput("#pol-play-resource", `{"type": "order", "id": "42", "owner": "<img src=x id=pwned>"}`),
		chromedp.Click(chromedp.ID("pol-play-run")),
		uitest.TextContains("#pol-reasons", "subject <img src=x id=pwned> owns the resource"),
	)
	if uitest.Eval[bool](t, ctx, `document.getElementById("pwned") !== null`) {
		t.Error("a reason was rendered as HTML")
	}

	// Mistakes in the form are said on the field; a refused token is a
	// decision, not an error.
	uitest.Run(t, ctx, "a resource that is not JSON",
		uitest.SetInput("#pol-play-resource", `{"type": order}`),
		chromedp.Click(chromedp.ID("pol-play-run")),
		uitest.TextContains("#pol-play-state", "Resource is not valid JSON"),
	)
	if id := uitest.Eval[string](t, ctx, `document.activeElement.id`); id != "pol-play-resource" {
		t.Errorf("focus after a bad resource is on %q, want the resource field", id)
	}
	uitest.Run(t, ctx, "a token Warden refuses",
		uitest.SetInput("#pol-play-resource", `{}`),
		uitest.SetInput("#pol-play-token", "not-a-token"),
		chromedp.Click(chromedp.ID("pol-play-run")),
		uitest.TextContains("#pol-decision", "token_malformed"),
		uitest.TextContains("#pol-decision", "before any policy ran"),
	)
}

// TestUIPoliciesReadOnly: with policies.source dir the page shows the set,
// says why it cannot be changed here, and offers no way to change it; the
// tests still run.
func TestUIPoliciesReadOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, policies.FS()); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	baseURL, _, _ := startWarden(t, dataDir, "--policies-source", "dir", "--policies-dir", dir)
	waitReady(t, baseURL)
	ctx := uitest.NewBrowser(t)

	signIn(t, ctx, baseURL, mint(t, dataDir, "--sub", "sec-eng", "--roles", "warden-admin"))
	defer checkPageErrors(t, ctx)
	uitest.Run(t, ctx, "open the policies",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="policies"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#pol-files .pol-file[data-file="authz.rego"]`)),
		chromedp.WaitVisible(chromedp.ID("pol-readonly")),
		uitest.TextContains("#pol-readonly", "view-only"),
		uitest.TextContains("#pol-readonly", "policies.source: dir"),
		uitest.TextContains("#pol-summary", "a directory on the server"),
		chromedp.WaitNotVisible(chromedp.ID("pol-add-form")),
		chromedp.WaitNotVisible(chromedp.ID("pol-delete")),
	)
	if !uitest.Eval[bool](t, ctx, `document.getElementById("pol-text").readOnly`) {
		t.Error("the editor is writable with policies.source dir")
	}
	uitest.Run(t, ctx, "the tests still run",
		chromedp.Click(chromedp.ID("pol-validate")),
		uitest.TextContains("#pol-check-state", fmt.Sprintf("%d of %d tests passed", shippedTests(t), shippedTests(t))),
		chromedp.Click(chromedp.ID("pol-tab-changes")),
		uitest.TextContains("#pol-activate-why", "directory"),
	)
	if !uitest.Eval[bool](t, ctx, `document.getElementById("pol-activate").disabled`) {
		t.Error("Activate is enabled with policies.source dir")
	}
}

// signIn signs in to the UI at baseURL by pasting token.
func signIn(t *testing.T, ctx context.Context, baseURL, token string) {
	t.Helper()
	uitest.Run(t, ctx, "sign in",
		chromedp.Navigate(baseURL+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.ID("nav")),
		collectPageErrors,
	)
}

// collectPageErrors gathers the page's errors in window.pageErrors for
// checkPageErrors. It runs through the DevTools protocol, which the page's
// CSP does not govern; hash navigation keeps the document, a reload needs it
// again.
var collectPageErrors = chromedp.Evaluate[chromedp.Void](`window.pageErrors = [];
	addEventListener("error", (e) => pageErrors.push("error: " + e.message));
	addEventListener("unhandledrejection", (e) => pageErrors.push("unhandled rejection: " + e.reason));
	document.addEventListener("securitypolicyviolation", (e) => pageErrors.push("CSP: " + e.violatedDirective + " " + e.blockedURI));`)

// checkPageErrors fails the test if the page threw, left a promise
// rejection unhandled or broke its Content-Security-Policy since signIn.
func checkPageErrors(t *testing.T, ctx context.Context) {
	t.Helper()
	if errs := uitest.Eval[[]string](t, ctx, `window.pageErrors`); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

func readShipped(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(policies.FS(), name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// putPolicyFile changes one file of the stored set through the API, as
// another admin would.
func putPolicyFile(t *testing.T, baseURL, token, name, content string) {
	t.Helper()
	if status, body, _ := adminDo(t, "PUT", baseURL+"/v1/policies/"+name, token, "text/plain", content); status != 200 {
		t.Fatalf("PUT /v1/policies/%s = %d %s", name, status, body)
	}
}
