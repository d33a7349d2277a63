package web

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/policies"
)

// newEventsFixture is the fixture with a real permission-change feed: an
// embedded NATS server with JetStream in a temporary directory (f.nats).
func newEventsFixture(t *testing.T) *fixture { return newEventsFixtureWith(t, nil) }

// newEventsFixtureWith is newEventsFixture, its server's options set by more
// when more is not nil.
func newEventsFixtureWith(t *testing.T, more func(*Options)) *fixture {
	t.Helper()
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	emb, err := events.StartEmbedded(t.TempDir(), events.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	f.nats = emb
	nc, err := emb.Connect(events.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := events.EnsureStream(ctx, nc, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	ledger := events.NewLedger(events.LedgerOptions{})
	consumer, err := events.NewConsumer(nc, ledger, events.ConsumerOptions{ReplicaID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(consumer.Close)
	pub, err := events.NewPublisher(nc, events.PublisherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := events.NewFleet(nc, events.FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	engine, err := decision.NewEngine(ctx, policies.FS(), decision.Options{Revocations: consumer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := events.NewHeartbeat(nc, consumer, events.HeartbeatOptions{PolicyRevision: engine.Revision})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hb.Close)

	v, err := claims.NewVerifier(ctx, claims.Config{Issuers: []claims.IssuerConfig{{
		Issuer: testIssuer, Audiences: []string{testAudience}, PublicKeys: []string{f.pemPath}, Algorithms: []string{"ES256"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Events: &Events{
		Publisher: pub, Stream: consumer, Ledger: ledger, Fleet: fleet, ReplicaID: "test", MinSeqWait: time.Second,
	}, DecisionLog: f.log, StreamHeartbeat: 20 * time.Millisecond}
	if more != nil {
		more(&opts)
	}
	f.handler = NewServer(slog.New(slog.DiscardHandler), v, engine, opts)
	deadline := time.Now().Add(10 * time.Second)
	for consumer.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("consumer not ready: %v", consumer.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f
}

func TestAdminAuth(t *testing.T) {
	f := newEventsFixture(t)
	admin := f.token(t, "root", "warden-admin")
	staff := f.token(t, "bob", "staff")
	expired := f.sign(t, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "root", "roles": []string{"warden-admin"},
		"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()})

	for _, route := range [][2]string{{"GET", "/v1/status"}, {"GET", "/v1/revocations"}, {"GET", "/v1/replicas"}, {"POST", "/v1/events"}} {
		for _, tt := range []struct {
			name       string
			auth       string
			wantStatus int
			wantCode   string
			wantMsg    string
		}{
			{"anonymous", "", 401, "unauthorized", "Authorization: Bearer"},
			{"expired admin token", "Bearer " + expired, 401, "unauthorized", "token_expired"},
			{"garbage", "Bearer nope", 401, "unauthorized", "token_malformed"},
			{"not an admin", "Bearer " + staff, 403, "forbidden", "bob"},
		} {
			t.Run(route[0]+" "+route[1]+"/"+tt.name, func(t *testing.T) {
				var header []string
				if tt.auth != "" {
					header = []string{"Authorization", tt.auth}
				}
				status, got := f.do(t, route[0], route[1], "application/json", `{"type":"roles_changed","subject":"x"}`, header...)
				e, _ := got["error"].(map[string]any)
				if status != tt.wantStatus || e["code"] != tt.wantCode {
					t.Fatalf("= %d %v, want %d %s", status, got, tt.wantStatus, tt.wantCode)
				}
				if msg, _ := e["message"].(string); !strings.Contains(msg, tt.wantMsg) {
					t.Errorf("message %q does not mention %q", msg, tt.wantMsg)
				}
			})
		}
	}
	if status, got := f.do(t, "GET", "/v1/status", "", "", "Authorization", "Bearer "+admin); status != 200 || got["replica_id"] != "test" {
		t.Errorf("admin GET /v1/status = %d %v", status, got)
	}
}

func TestPublishEvent(t *testing.T) {
	f := newEventsFixture(t)
	auth := []string{"Authorization", "Bearer " + f.token(t, "root", "warden-admin")}
	alice := f.token(t, "alice", "manager")

	for _, tt := range []struct {
		name, body, want string
	}{
		{"unknown type", `{"type":"roles_exploded","subject":"alice"}`, "roles_exploded"},
		{"no subject", `{"type":"roles_changed"}`, "subject"},
		{"token_revoked without jti", `{"type":"token_revoked","subject":"alice"}`, "jti"},
		{"bad time", `{"type":"roles_changed","subject":"alice","at":"yesterday"}`, "yesterday"},
		{"unknown field", `{"type":"roles_changed","subject":"alice","expires":"x"}`, `unknown field "expires"`},
		{"malformed JSON", `{"type":`, "malformed JSON"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, got := f.do(t, "POST", "/v1/events", "application/json", tt.body, auth...)
			e, _ := got["error"].(map[string]any)
			if msg, _ := e["message"].(string); status != 400 || e["code"] != "invalid_request" || !strings.Contains(msg, tt.want) {
				t.Errorf("= %d %v, want 400 invalid_request mentioning %q", status, got, tt.want)
			}
		})
	}

	status, got := f.do(t, "POST", "/v1/events?wait=2s", "application/json",
		`{"type":"roles_changed","subject":"alice","reason":"demoted","actor":"someone-else"}`, auth...)
	if status != 200 {
		t.Fatalf("publish = %d %v", status, got)
	}
	seq := uint64(got["seq"].(float64))
	if ev := got["event"].(map[string]any); ev["actor"] != "root" || ev["id"] == "" {
		t.Errorf("published event %v: want the admin token's subject as actor and an id", ev)
	}
	if enf, _ := got["enforced"].(map[string]any); enf["applied"] != float64(1) || enf["total"] != float64(1) {
		t.Errorf("enforced = %v, want 1 of 1", got["enforced"])
	}

	status, got = f.do(t, "POST", "/v1/decision", "application/json", `{"token":"`+alice+`","action":"orders:approve"}`,
		"Warden-Min-Seq", strconv.FormatUint(seq, 10))
	if status != 200 || got["reason"] != "token_stale" || got["refresh"] != true {
		t.Errorf("alice's old token after roles_changed = %d %v, want token_stale with refresh", status, got)
	}

	status, got = f.do(t, "GET", "/v1/revocations", "", "", auth...)
	entries, _ := got["entries"].([]any)
	if status != 200 || len(entries) != 1 || entries[0].(map[string]any)["subject"] != "alice" || got["now"] == nil {
		t.Errorf("/v1/revocations = %d %v", status, got)
	}
	for query, want := range map[string]int{"?subject=alice": 1, "?subject=bob": 0} {
		status, got = f.do(t, "GET", "/v1/revocations"+query, "", "", auth...)
		if entries, ok := got["entries"].([]any); status != 200 || !ok || len(entries) != want {
			t.Errorf("/v1/revocations%s = %d %v, want %d entries", query, status, got, want)
		}
	}
	status, got = f.do(t, "GET", "/v1/revocations?user=alice", "", "", auth...)
	if e, _ := got["error"].(map[string]any); status != 400 || !strings.Contains(e["message"].(string), `"user"`) {
		t.Errorf("/v1/revocations?user= = %d %v, want 400 naming the parameter", status, got)
	}

	for _, tt := range []struct {
		header     string
		wantStatus int
		wantCode   string
	}{{"abc", 400, "invalid_request"}, {"-1", 400, "invalid_request"}, {"999999", 503, "behind"}} {
		status, got := f.do(t, "POST", "/v1/decision", "application/json", `{"token":"`+alice+`","action":"orders:read"}`, "Warden-Min-Seq", tt.header)
		if e, _ := got["error"].(map[string]any); status != tt.wantStatus || e["code"] != tt.wantCode {
			t.Errorf("Warden-Min-Seq %s = %d %v, want %d %s", tt.header, status, got, tt.wantStatus, tt.wantCode)
		}
	}
}
