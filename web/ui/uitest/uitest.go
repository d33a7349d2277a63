// Package uitest drives the admin UI in a real browser for tests: Debian's
// Chromium, headless, through chromedp. It is imported only by tests.
package uitest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's Chromium, which .ci/run installs. WARDEN_CHROMIUM
// points elsewhere.
const ChromiumPath = "/usr/bin/chromium"

// StepTimeout bounds one step of a browser test.
const StepTimeout = 15 * time.Second

// NewBrowser starts a headless Chromium for one test, with a laptop-sized
// window. Without one the test is skipped, except in CI (CI=true), where a
// missing browser is a failure.
func NewBrowser(t testing.TB) context.Context {
	t.Helper()
	exe := os.Getenv("WARDEN_CHROMIUM")
	if exe == "" {
		exe = ChromiumPath
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

// Run runs browser actions as one step, failing the test with the step's
// name and the text the page showed.
func Run(t testing.TB, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main")?.innerText ?? ""`))
		t.Fatalf("%s: %v\npage:\n%s", step, err, shown)
	}
}

// Eval evaluates a JavaScript expression and returns its value.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Screenshot saves the whole page as name.png in $WARDEN_UI_SCREENSHOTS,
// when set (WARDEN_UI_SCREENSHOTS=$PWD/docs/ui go test ./... -run UI).
func Screenshot(t testing.TB, ctx context.Context, name string) {
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

// TextContains waits until the first element matching the CSS selector sel
// has text containing want.
func TextContains(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](`(document.querySelector(`+JSString(sel)+`)?.textContent || "").includes(`+JSString(want)+`)`,
		chromedp.WithPollingTimeout(StepTimeout))
}

// SetInput sets a form control's value the way typing or choosing does:
// the value changes, then input and change fire.
func SetInput(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => { const e = document.querySelector(` + JSString(sel) + `);
		e.value = ` + JSString(value) + `; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); })()`)
}

// JSString quotes s as a JavaScript string literal.
func JSString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\u2028", `\u2028`, "\u2029", `\u2029`)
	return `"` + r.Replace(s) + `"`
}

// Unlabelled lists the form controls of the document that have no
// accessible name — no <label>, aria-label or aria-labelledby, and for a
// button no text — by id or tag, so that a test can require none.
func Unlabelled(t testing.TB, ctx context.Context) []string {
	t.Helper()
	return Eval[[]string](t, ctx, `[...document.querySelectorAll("input, select, textarea, button")]
		.filter((e) => e.type !== "hidden")
		.filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby") &&
			!(e.tagName === "BUTTON" && e.textContent.trim()))
		.map((e) => e.id || e.name || e.tagName.toLowerCase())`)
}
