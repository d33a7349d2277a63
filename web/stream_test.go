package web

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/web/decisionlog"
)

// testClock is a clock the test moves forward.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// sseEvent is one server-sent event, or a comment when comment is set.
type sseEvent struct {
	id, name, data, comment string
}

// sseClient reads a decision stream in a goroutine, one event at a time.
type sseClient struct {
	events chan sseEvent // closed when the stream ends
	close  func()
}

// streamServer serves f.handler over real HTTP, so that streams stream.
func (f *fixture) streamServer(t *testing.T) *httptest.Server {
	ts := httptest.NewServer(f.handler)
	t.Cleanup(ts.Close)
	return ts
}

// openStream opens url. On 200 it returns a client reading the stream; on
// any other status it returns the status and the decoded error body.
func openStream(t *testing.T, url string, header ...string) (*sseClient, int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		defer cancel()
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return nil, resp.StatusCode, body
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	c := &sseClient{events: make(chan sseEvent, 64)}
	var once sync.Once
	c.close = func() { once.Do(func() { cancel(); resp.Body.Close() }) }
	t.Cleanup(c.close)
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				c.events <- ev
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = strings.TrimSpace(line[1:])
			default:
				field, value, _ := strings.Cut(line, ": ")
				switch field {
				case "id":
					ev.id = value
				case "event":
					ev.name = value
				case "data":
					ev.data = value
				default:
					t.Errorf("unexpected line %q", line)
				}
			}
		}
	}()
	return c, 200, nil
}

// next returns the next event that is not a comment. It fails the test
// when none comes in time or the stream ends.
func (c *sseClient) next(t *testing.T) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if ev.comment == "" {
				return ev
			}
		case <-timeout:
			t.Fatal("no event in 10s")
		}
	}
}

// ended waits until the stream has ended, skipping what comes before.
func (c *sseClient) ended(t *testing.T) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-c.events:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the stream did not end in 10s")
		}
	}
}

// post sends a JSON body over real HTTP and decodes the answer.
func post(t *testing.T, url, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func TestStreamTickets(t *testing.T) {
	f := newFixture(t)
	clock := &testClock{}
	f.serve(t, nil, decisionlog.Options{}, Options{Now: clock.Now})
	ts := f.streamServer(t)
	admin := []string{"Authorization", "Bearer " + f.token(t, "root", "warden-admin")}
	staff := []string{"Authorization", "Bearer " + f.token(t, "bob", "staff")}

	newTicket := func(t *testing.T) string {
		t.Helper()
		status, got := post(t, ts.URL+"/v1/decisions/stream/tickets", "", admin...)
		if status != 200 {
			t.Fatalf("POST tickets = %d %v", status, got)
		}
		ticket := str(got["ticket"])
		if raw, err := base64.RawURLEncoding.DecodeString(ticket); err != nil || len(raw) != 32 {
			t.Fatalf("ticket %q is not 256 bits in base64url: %v", ticket, err)
		}
		if got["expires_in"] != float64(30) {
			t.Errorf("expires_in = %v, want 30", got["expires_in"])
		}
		return ticket
	}
	stream := ts.URL + "/v1/decisions/stream"

	t.Run("a ticket opens one stream", func(t *testing.T) {
		ticket := newTicket(t)
		c, status, got := openStream(t, stream+"?ticket="+ticket)
		if status != 200 {
			t.Fatalf("first use = %d %v", status, got)
		}
		c.close()
		if _, status, got := openStream(t, stream+"?ticket="+ticket); status != 401 || got["error"].(map[string]any)["code"] != "unauthorized" {
			t.Errorf("second use = %d %v, want 401 unauthorized", status, got)
		}
	})
	t.Run("an expired ticket", func(t *testing.T) {
		ticket := newTicket(t)
		clock.advance(31 * time.Second)
		if _, status, got := openStream(t, stream+"?ticket="+ticket); status != 401 {
			t.Errorf("= %d %v, want 401", status, got)
		}
	})
	t.Run("a ticket used just before it expires", func(t *testing.T) {
		ticket := newTicket(t)
		clock.advance(29 * time.Second)
		c, status, got := openStream(t, stream+"?ticket="+ticket)
		if status != 200 {
			t.Fatalf("= %d %v, want 200", status, got)
		}
		c.close()
	})

	for _, tt := range []struct {
		name       string
		method     string
		url        string
		header     []string
		wantStatus int
		wantCode   string
	}{
		{"a non-admin cannot get a ticket", "POST", "/v1/decisions/stream/tickets", staff, 403, "forbidden"},
		{"nor can anyone anonymous", "POST", "/v1/decisions/stream/tickets", nil, 401, "unauthorized"},
		{"no ticket, no token", "GET", "/v1/decisions/stream", nil, 401, "unauthorized"},
		{"a made-up ticket", "GET", "/v1/decisions/stream?ticket=" + strings.Repeat("A", 43), nil, 401, "unauthorized"},
		{"a ticket of the wrong size", "GET", "/v1/decisions/stream?ticket=abc", nil, 401, "unauthorized"},
		{"an admin token in the URL is not accepted", "GET", "/v1/decisions/stream?token=" + strings.TrimPrefix(admin[1], "Bearer "), nil, 401, "unauthorized"},
		{"nor beside a bearer header", "GET", "/v1/decisions/stream?token=x", admin, 400, "invalid_request"},
		{"a non-admin bearer", "GET", "/v1/decisions/stream", staff, 403, "forbidden"},
		{"a bad filter", "GET", "/v1/decisions/stream?allow=yes", admin, 400, "invalid_request"},
		{"a bad last event id", "GET", "/v1/decisions/stream?last_event_id=x", admin, 400, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var (
				status int
				got    map[string]any
			)
			if tt.method == "POST" {
				status, got = post(t, ts.URL+tt.url, "", tt.header...)
			} else {
				_, status, got = openStream(t, ts.URL+tt.url, tt.header...)
			}
			if e, _ := got["error"].(map[string]any); status != tt.wantStatus || e["code"] != tt.wantCode {
				t.Errorf("= %d %v, want %d %s", status, got, tt.wantStatus, tt.wantCode)
			}
		})
	}

	t.Run("an admin bearer header works too", func(t *testing.T) {
		c, status, got := openStream(t, stream, admin...)
		if status != 200 {
			t.Fatalf("= %d %v", status, got)
		}
		c.close()
	})
}

func TestStreamReceivesDecisions(t *testing.T) {
	f := newFixture(t)
	ts := f.streamServer(t)
	admin := []string{"Authorization", "Bearer " + f.token(t, "root", "warden-admin")}
	all, status, got := openStream(t, ts.URL+"/v1/decisions/stream", admin...)
	if status != 200 {
		t.Fatalf("= %d %v", status, got)
	}
	aliceDenied, _, _ := openStream(t, ts.URL+"/v1/decisions/stream?subject=alice&allow=false", admin...)
	reads, _, _ := openStream(t, ts.URL+"/v1/decisions/stream?action=orders:read", admin...)
	// What the admin UI's filter boxes send: part of the name, any case.
	bobLike, _, _ := openStream(t, ts.URL+"/v1/decisions/stream?subject_contains=BO&action_contains=approve", admin...)

	manager := f.token(t, "alice", "manager")
	decide := func(token, action string) string {
		t.Helper()
		status, got := post(t, ts.URL+"/v1/decision", `{"token":"`+token+`","action":"`+action+`","resource":{"type":"order","id":"42"}}`)
		if status != 200 {
			t.Fatalf("decision = %d %v", status, got)
		}
		return str(got["decision_id"])
	}
	allowed := decide(manager, "orders:approve")
	bobDenied := decide(f.token(t, "bob", "staff"), "orders:approve")
	aliceRead := decide(manager, "orders:read")
	denied := decide(f.token(t, "alice", "staff"), "orders:approve")

	for i, want := range []string{allowed, bobDenied, aliceRead, denied} {
		ev := all.next(t)
		if ev.id != want || ev.name != "decision" {
			t.Fatalf("event %d = %+v, want decision %s", i, ev, want)
		}
		var e decisionlog.Entry
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			t.Fatal(err)
		}
		if e.DecisionID != want || e.Replica != "test" || e.ResourceType != "order" || e.ResourceID != "42" {
			t.Errorf("event %d data = %+v", i, e)
		}
		for _, seg := range strings.Split(manager, ".") {
			if strings.Contains(ev.data, seg) {
				t.Fatalf("a token segment is in the stream: %s", ev.data)
			}
		}
	}
	// Entries reach subscribers in the order they were recorded, so the
	// first event of a filtered stream proves the earlier entries were
	// filtered out.
	if ev := aliceDenied.next(t); ev.id != denied {
		t.Errorf("subject=alice&allow=false got %+v first, want %s", ev, denied)
	}
	if ev := reads.next(t); ev.id != aliceRead {
		t.Errorf("action=orders:read got %+v first, want %s", ev, aliceRead)
	}
	if ev := bobLike.next(t); ev.id != bobDenied {
		t.Errorf("subject_contains=BO&action_contains=approve got %+v first, want %s", ev, bobDenied)
	}
}

func TestStreamResumesAfterLastEventID(t *testing.T) {
	f := newFixture(t)
	ts := f.streamServer(t)
	admin := []string{"Authorization", "Bearer " + f.token(t, "root", "warden-admin")}
	token := f.token(t, "alice", "manager")
	var ids []string
	for range 3 {
		_, got := post(t, ts.URL+"/v1/decision", `{"token":"`+token+`","action":"orders:read"}`)
		ids = append(ids, str(got["decision_id"]))
	}
	eventually(t, "three entries in the history", func() bool { return len(f.log.Recent(decisionlog.Filter{}, 10)) == 3 })

	for _, tt := range []struct {
		name   string
		query  string
		header []string
	}{
		{"Last-Event-ID header", "", append([]string{"Last-Event-ID", ids[0]}, admin...)},
		{"last_event_id parameter", "?last_event_id=" + ids[0], admin},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, status, got := openStream(t, ts.URL+"/v1/decisions/stream"+tt.query, tt.header...)
			if status != 200 {
				t.Fatalf("= %d %v", status, got)
			}
			for _, want := range ids[1:] {
				if ev := c.next(t); ev.id != want {
					t.Errorf("replayed %+v, want %s", ev, want)
				}
			}
			c.close()
		})
	}
}

func TestStreamHeartbeatAndEnd(t *testing.T) {
	f := newFixture(t)
	f.serve(t, nil, decisionlog.Options{}, Options{StreamHeartbeat: 20 * time.Millisecond})
	ts := httptest.NewUnstartedServer(f.handler)
	// As serve.go does: shutting the server down ends the streams.
	ts.Config.RegisterOnShutdown(f.log.CloseStreams)
	// Timeouts far shorter than a stream lives must not cut it.
	ts.Config.WriteTimeout = 50 * time.Millisecond
	ts.Config.ReadTimeout = 50 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)
	admin := []string{"Authorization", "Bearer " + f.token(t, "root", "warden-admin")}
	streams := func() string {
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		for line := range strings.Lines(rec.Body.String()) {
			if v, ok := strings.CutPrefix(line, "warden_decision_streams "); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}

	c, status, got := openStream(t, ts.URL+"/v1/decisions/stream", admin...)
	if status != 200 {
		t.Fatalf("= %d %v", status, got)
	}
	start := time.Now()
	for i := range 8 {
		ev, ok := <-c.events
		if !ok {
			t.Fatalf("the stream ended after %d heartbeats, %v in", i, time.Since(start))
		}
		if ev.comment != "heartbeat" {
			t.Fatalf("got %+v, want a heartbeat", ev)
		}
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("8 heartbeats in %v; the test needs them to outlast the server's timeouts", took)
	}
	if got := streams(); got != "1" {
		t.Errorf("warden_decision_streams = %s, want 1", got)
	}
	c.close()
	eventually(t, "the stream's slot freed when its client went", func() bool { return streams() == "0" })

	c, _, _ = openStream(t, ts.URL+"/v1/decisions/stream", admin...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Config.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with an open stream = %v, want nil", err)
	}
	if ev := c.next(t); ev.name != "end" || ev.data != `{"reason":"shutting_down"}` {
		t.Errorf("last event = %+v, want end shutting_down", ev)
	}
	c.ended(t)
}

func TestStreamEndsWithItsToken(t *testing.T) {
	f := newFixture(t)
	ts := f.streamServer(t)
	now := time.Now()
	shortLived := f.sign(t, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "root", "roles": []string{"warden-admin"},
		"iat": now.Unix(), "exp": now.Add(time.Second).Unix()})

	// Through a ticket as well: the ticket carries the token's expiry.
	status, got := post(t, ts.URL+"/v1/decisions/stream/tickets", "", "Authorization", "Bearer "+shortLived)
	if status != 200 {
		t.Fatalf("POST tickets = %d %v", status, got)
	}
	c, status, got := openStream(t, ts.URL+"/v1/decisions/stream?ticket="+str(got["ticket"]))
	if status != 200 {
		t.Fatalf("= %d %v", status, got)
	}
	if ev := c.next(t); ev.name != "end" || ev.data != `{"reason":"token_expired"}` {
		t.Errorf("event = %+v, want end token_expired", ev)
	}
	c.ended(t)
}

func TestStreamEndsWhenAdminLosesAccess(t *testing.T) {
	f := newEventsFixture(t)
	ts := f.streamServer(t)
	root := []string{"Authorization", "Bearer " + f.token(t, "root", "warden-admin")}
	ops := []string{"Authorization", "Bearer " + f.token(t, "ops", "warden-admin")}

	c, status, got := openStream(t, ts.URL+"/v1/decisions/stream", root...)
	if status != 200 {
		t.Fatalf("= %d %v", status, got)
	}
	if status, got := f.do(t, "POST", "/v1/events?wait=2s", "application/json", `{"type":"subject_disabled","subject":"root","reason":"left"}`, ops...); status != 200 {
		t.Fatalf("publish = %d %v", status, got)
	}
	if ev := c.next(t); ev.name != "end" || ev.data != `{"reason":"access_revoked"}` {
		t.Errorf("event = %+v, want end access_revoked", ev)
	}
	c.ended(t)
}

func TestStreamLimit(t *testing.T) {
	f := newFixture(t)
	f.serve(t, nil, decisionlog.Options{}, Options{MaxStreams: 2})
	ts := f.streamServer(t)
	admin := []string{"Authorization", "Bearer " + f.token(t, "root", "warden-admin")}
	url := ts.URL + "/v1/decisions/stream"

	first, _, _ := openStream(t, url, admin...)
	if _, status, got := openStream(t, url, admin...); status != 200 {
		t.Fatalf("second stream = %d %v", status, got)
	}
	_, status, got := openStream(t, url, admin...)
	if e, _ := got["error"].(map[string]any); status != 503 || e["code"] != "too_many_streams" {
		t.Fatalf("third stream = %d %v, want 503 too_many_streams", status, got)
	}
	first.close()
	eventually(t, "a slot after a stream closed", func() bool {
		c, status, _ := openStream(t, url, admin...)
		if c != nil {
			c.close()
		}
		return status == 200
	})
}

// TestStreamTicketOfARevokedAdmin: a ticket taken before its admin was
// disabled opens nothing: admission is asked again when it is redeemed, and
// the answer says why.
func TestStreamTicketOfARevokedAdmin(t *testing.T) {
	f := newEventsFixture(t)
	ts := httptest.NewServer(f.handler)
	t.Cleanup(ts.Close)
	root := f.token(t, "root", "warden-admin")
	status, got := post(t, ts.URL+"/v1/decisions/stream/tickets", "", "Authorization", "Bearer "+root)
	if status != 200 {
		t.Fatalf("POST tickets = %d %v", status, got)
	}
	ticket := str(got["ticket"])
	other := f.token(t, "sec-lead", "warden-admin")
	if status, got := post(t, ts.URL+"/v1/events?wait=5s", `{"type":"subject_disabled","subject":"root","reason":"left"}`, "Authorization", "Bearer "+other); status != 200 {
		t.Fatalf("disable root = %d %v", status, got)
	}
	c, status, got := openStream(t, ts.URL+"/v1/decisions/stream?ticket="+ticket)
	if c != nil {
		c.close()
	}
	e, _ := got["error"].(map[string]any)
	if msg, _ := e["message"].(string); status != 403 || !strings.Contains(msg, "subject_disabled") {
		t.Errorf("stream with the disabled admin's ticket = %d %v, want 403 naming subject_disabled", status, got)
	}
	// The admin API says the same about the token itself.
	status, got = post(t, ts.URL+"/v1/decisions/stream/tickets", "", "Authorization", "Bearer "+root)
	if e, _ := got["error"].(map[string]any); status != 403 || !strings.Contains(e["message"].(string), "no longer honoured (subject_disabled)") {
		t.Errorf("POST tickets with the disabled admin's token = %d %v", status, got)
	}
}

// TestStreamLimitsPerAdmin: one admin cannot take every ticket or every
// stream slot of the replica; another admin still can get them.
func TestStreamLimitsPerAdmin(t *testing.T) {
	ts := newTicketStore(time.Now)
	viewer := &claims.Claims{Subject: "viewer", Issuer: "idp"}
	for i := range maxTicketsPerAdmin {
		if _, err := ts.issue(viewer); err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
	}
	if _, err := ts.issue(viewer); !errors.Is(err, errTooManyTickets) {
		t.Errorf("ticket %d of one admin = %v, want refused", maxTicketsPerAdmin+1, err)
	}
	if _, err := ts.issue(&claims.Claims{Subject: "viewer", Issuer: "other-idp"}); err != nil {
		t.Errorf("another admin's ticket: %v", err)
	}

	s := &server{streams: make(chan struct{}, 32), streamsBy: map[string]int{}}
	var releases []func()
	for i := range maxStreamsPerAdmin {
		release, err := s.takeStreamSlot(viewer)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		releases = append(releases, release)
	}
	if _, err := s.takeStreamSlot(viewer); err == nil || !strings.Contains(err.Error(), "the most one admin may") {
		t.Errorf("stream %d of one admin = %v, want refused", maxStreamsPerAdmin+1, err)
	}
	release, err := s.takeStreamSlot(&claims.Claims{Subject: "admin", Issuer: "idp"})
	if err != nil {
		t.Errorf("another admin's stream: %v", err)
	}
	release()
	for _, r := range releases {
		r()
	}
	if len(s.streams) != 0 || len(s.streamsBy) != 0 {
		t.Errorf("after release: %d slots taken, %v", len(s.streams), s.streamsBy)
	}
}
