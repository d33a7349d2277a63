package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wardenauthz/warden/web/ui/uitest"
)

// TestUISignals pushes a SET to one of two replicas and finds it in the
// admin UI's Signals view: the transmitter, the event, the Warden event it
// became and that both replicas enforce it.
func TestUISignals(t *testing.T) {
	tr := newSSFTransmitter(t)
	dataDir := t.TempDir()
	replicas := startReplicas(t, dataDir, 2, "--config", tr.config(t, ""))
	ctx := uitest.NewBrowser(t)

	token := mint(t, dataDir, "--sub", "erin", "--roles", "manager")
	set := tr.set(t, "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
		map[string]any{"event_timestamp": time.Now().Add(time.Second).Unix()}, issSub("erin"), nil)
	if status, code := pushSET(t, replicas[1], ssfAuth, "application/secevent+jwt", set); status != http.StatusAccepted {
		t.Fatalf("push: %d %s", status, code)
	}
	awaitReason(t, replicas, token, "token_revoked")

	uitest.Run(t, ctx, "sign in and open Signals",
		chromedp.Navigate(replicas[0]+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("dev-token")),
		chromedp.Click(chromedp.ID("dev-token")),
		chromedp.WaitVisible(chromedp.CSS(`#nav a[data-view="signals"]`)),
		chromedp.Click(chromedp.CSS(`#nav a[data-view="signals"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#signals tbody tr`)),
		uitest.TextContains("#signals tbody", "idp"),
		uitest.TextContains("#signals tbody", "session-revoked"),
		uitest.TextContains("#signals tbody", "mapped"),
		uitest.TextContains("#signals tbody", "sessions_revoked erin"),
		uitest.TextContains("#signals tbody", "2/2 replicas"),
	)
	uitest.Screenshot(t, ctx, "signals")
}
