package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wardenauthz/warden/web/ui/uitest"
)

// TestUIBrowser drives the admin UI in Chromium against the real server with
// an embedded NATS: sign in, see the replica, watch decisions arrive.
func TestUIBrowser(t *testing.T) {
	f := newEventsFixture(t)
	ts := httptest.NewServer(f.handler)
	t.Cleanup(ts.Close)
	// The browser goes first (cleanups run last in, first out): ts.Close
	// waits for the open decision stream to end.
	ctx := uitest.NewBrowser(t)
	admin := f.token(t, "root", "warden-admin")

	// Sign-in: /ui leads there; a bad token is refused with the reason.
	uitest.Run(t, ctx, "open /ui",
		chromedp.Navigate(ts.URL+"/ui"),
		chromedp.WaitVisible(chromedp.ID("token")),
		// The pages' links show only once signed in.
		chromedp.WaitNotVisible(chromedp.ID("nav")),
		chromedp.WaitNotVisible(chromedp.ID("signout")),
	)
	uitest.Screenshot(t, ctx, "signin")
	uitest.Run(t, ctx, "sign in with garbage",
		chromedp.SetValue(chromedp.ID("token"), "not-a-token"),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.ID("signin-error")),
		uitest.TextContains("#signin-error", "token_malformed"),
	)
	uitest.Run(t, ctx, "sign in as a non-admin",
		chromedp.SetValue(chromedp.ID("token"), f.token(t, "bob", "staff")),
		chromedp.Click(chromedp.ID("signin-submit")),
		uitest.TextContains("#signin-error", "Not allowed"),
	)

	// Overview: this replica and the fleet from its heartbeats.
	uitest.Run(t, ctx, "sign in as admin",
		chromedp.SetValue(chromedp.ID("token"), admin),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#replicas tbody tr[data-replica="test"]`)),
		uitest.TextContains("#status", "connected"),
		uitest.TextContains("#who", "root"),
	)
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("warden.adminToken") + "|" + document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if stored != admin+"|" {
		t.Errorf("token storage = %q, want the token in sessionStorage and no cookie", stored)
	}

	// Live decisions: decisions made through the API appear in the table.
	uitest.Run(t, ctx, "open live decisions",
		chromedp.Click(chromedp.CSS(`#nav a[data-view="live"]`)),
		uitest.TextContains("#live-state", "Live"),
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
	uitest.Run(t, ctx, "decisions appear",
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="alice"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="bob"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="<img src=x id=pwned>"]`)),
		uitest.TextContains(`#decisions tbody tr[data-subject="bob"]`, "deny"),
	)
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("pwned") !== null`))
	if err != nil {
		t.Fatal(err)
	}
	if injected {
		t.Error("a subject was rendered as HTML")
	}

	// Filters hide what does not match, at once.
	uitest.Run(t, ctx, "filter by subject",
		chromedp.SendKeys(chromedp.ID("f-subject"), "bob"),
		chromedp.WaitNotVisible(chromedp.CSS(`#decisions tbody tr[data-subject="alice"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="bob"]`)),
		// Once typing stops, the server filters too.
		uitest.TextContains("#live-state", "filtered at the server"),
	)
	aliceRows := uitest.Eval[int](t, ctx, `document.querySelectorAll('#decisions tbody tr[data-subject="alice"]').length`)
	decide(f.token(t, "alice", "manager"), "orders:read")
	decide(f.token(t, "bob", "staff"), "orders:read")
	uitest.Run(t, ctx, "the filtered stream carries bob's decision",
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="bob"][data-allow="true"]`)),
		uitest.TextContains("#live-counts", "1 matching decision seen"),
	)
	// Entries arrive in order: alice's decision, made first, was never sent.
	if n := uitest.Eval[int](t, ctx, `document.querySelectorAll('#decisions tbody tr[data-subject="alice"]').length`); n != aliceRows {
		t.Errorf("alice has %d rows, was %d: the server did not filter", n, aliceRows)
	}
	uitest.Run(t, ctx, "filter allowed only",
		uitest.SetInput("#f-subject", ""),
		uitest.SetInput("#f-allow", "true"),
		chromedp.WaitVisible(chromedp.CSS(`#decisions tbody tr[data-subject="alice"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#decisions tbody tr[data-subject="bob"][data-allow="false"]`)),
	)

	// An expired admin token sends the admin back to sign in, saying so.
	expired := f.sign(t, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "root", "roles": []string{"warden-admin"},
		"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()})
	uitest.Run(t, ctx, "expired token",
		chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem("warden.adminToken", `+uitest.JSString(expired)+`)`),
		// A same-page navigation: the overview asks the API with the
		// expired token.
		chromedp.Navigate(ts.URL+"/ui/#/overview"),
		chromedp.WaitVisible(chromedp.ID("token")),
		uitest.TextContains("#notice", "expired"),
	)
}
