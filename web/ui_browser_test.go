package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
)

// chromiumPath is Debian's Chromium, which .ci/run installs. WARDEN_CHROMIUM
// points elsewhere.
const chromiumPath = "/usr/bin/chromium"

// newBrowser starts a headless Chromium for one test. Without one the test
// is skipped, except in CI (CI=true), where a missing browser is a failure.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := os.Getenv("WARDEN_CHROMIUM")
	if exe == "" {
		exe = chromiumPath
	}
	if _, err := exec.LookPath(exe); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Chromium at %s (CI=true): %v", exe, err)
		}
		t.Skipf("no Chromium at %s: %v", exe, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil { // starts the browser
		t.Fatalf("start %s: %v", exe, err)
	}
	return ctx
}

// stepTimeout bounds one step of a browser test.
const stepTimeout = 10 * time.Second

// run runs browser actions, failing the test with what step failed.
func run(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		// Say what the page showed, so a failure can be understood from the log.
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
		t.Fatalf("%s: %v\npage:\n%s", step, err, shown)
	}
}

// screenshot saves the page as name.png in $WARDEN_UI_SCREENSHOTS, when set
// (go test ./web -run TestUIBrowser with WARDEN_UI_SCREENSHOTS=$PWD/docs/ui).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("WARDEN_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// textContains waits until the element's text contains want.
func textContains(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](`(document.querySelector(`+jsString(sel)+`)?.textContent || "").includes(`+jsString(want)+`)`,
		chromedp.WithPollingTimeout(stepTimeout))
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// TestUIBrowser drives the admin UI in Chromium against the real server with
// an embedded NATS: sign in, see the replica, watch decisions arrive.
func TestUIBrowser(t *testing.T) {
	f := newEventsFixture(t)
	ts := httptest.NewServer(f.handler)
	t.Cleanup(ts.Close)
	// The browser goes first (cleanups run last in, first out): ts.Close
	// waits for the open decision stream to end.
	ctx := newBrowser(t)
	admin := f.token(t, "root", "warden-admin")

	// Sign-in: /ui leads there; a bad token is refused with the reason.
	run(t, ctx, "open /ui",
		chromedp.Navigate(ts.URL+"/ui"),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	screenshot(t, ctx, "signin")
	run(t, ctx, "sign in with garbage",
		chromedp.SetValue(chromedp.ID("token"), "not-a-token"),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.ID("signin-error")),
		textContains("#signin-error", "token_malformed"),
	)
	run(t, ctx, "sign in as a non-admin",
		chromedp.SetValue(chromedp.ID("token"), f.token(t, "bob", "staff")),
		chromedp.Click(chromedp.ID("signin-submit")),
		textContains("#signin-error", "Not allowed"),
	)

	// Overview: this replica and the fleet from its heartbeats.
	run(t, ctx, "sign in as admin",
		chromedp.SetValue(chromedp.ID("token"), admin),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#replicas tbody tr[data-replica="test"]`)),
		textContains("#status", "connected"),
		textContains("#who", "root"),
	)
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("warden.adminToken") + "|" + document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if stored != admin+"|" {
		t.Errorf("token storage = %q, want the token in sessionStorage and no cookie", stored)
	}
	screenshot(t, ctx, "overview")

	// Live decisions: decisions made through the API appear in the table.
	run(t, ctx, "open live decisions",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="live"]`)),
		textContains("#live-state", "Live"),
	)
	decide := func(token, action string) {
		t.Helper()
		body := `{"token":"` + token + `","action":"` + action + `","resource":{"type":"order","id":"42"}}`
		resp, err := http.Post(ts.URL+"/v1/decision", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("decision = %d", resp.StatusCode)
		}
	}
	decide(f.token(t, "alice", "manager"), "orders:approve")
	decide(f.token(t, "bob", "staff"), "orders:approve")
	// The subject is data, never markup.
	decide(f.sign(t, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": `<img src=x id=pwned>`, "iat": time.Now().Unix(),
		"exp": time.Now().Add(time.Minute).Unix()}), "orders:read")
	run(t, ctx, "decisions appear",
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="alice"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="bob"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="<img src=x id=pwned>"]`)),
		textContains(`#decisions tbody tr[data-subject="bob"]`, "deny"),
	)
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("pwned") !== null`))
	if err != nil {
		t.Fatal(err)
	}
	if injected {
		t.Error("a subject was rendered as HTML")
	}
	screenshot(t, ctx, "live")

	// Filters hide what does not match, at once.
	run(t, ctx, "filter by subject",
		chromedp.SendKeys(chromedp.ID("f-subject"), "bob"),
		chromedp.WaitNotVisible(chromedp.CSS(`#decisions tbody tr[data-subject="alice"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="bob"]`)),
	)
	run(t, ctx, "filter allowed only",
		// What choosing from the select and clearing the box do: change the
		// value, fire input.
		chromedp.Evaluate[chromedp.Void](`for (const [id, v] of [["f-subject", ""], ["f-allow", "true"]]) {
			const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event("input"));
		}`),
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="alice"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#decisions tbody tr[data-subject="bob"]`)),
	)

	// An expired admin token sends the admin back to sign in, saying so.
	expired := f.sign(t, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "root", "roles": []string{"warden-admin"},
		"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()})
	run(t, ctx, "expired token",
		chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem("warden.adminToken", `+jsString(expired)+`)`),
		// A same-page navigation: the overview asks the API with the
		// expired token.
		chromedp.Navigate(ts.URL+"/ui/#/overview"),
		chromedp.WaitVisible(chromedp.ID("token")),
		textContains("#notice", "expired"),
	)
}
