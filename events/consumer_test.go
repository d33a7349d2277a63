package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

// TestThreeReplicas runs three replicas on one JetStream and checks that an
// event changes the answer of every one of them.
func TestThreeReplicas(t *testing.T) {
	_, pub, reps := threeFollowing(t)

	now := time.Now()
	at := now.Add(-time.Minute).Truncate(time.Second)
	old, fresh := at.Add(-10*time.Minute), at.Add(time.Second)
	type probe struct {
		token *claims.Claims
		want  decision.Reason
	}
	tests := []struct {
		name   string
		events []Event
		probes []probe
	}{
		{"roles_changed", []Event{{Type: TypeRolesChanged, Subject: "alice", At: at}}, []probe{
			{tok("alice", idp, old), decision.ReasonTokenStale},
			{tok("alice", idp, fresh), ""},
			{tok("bob", idp, old), ""},
		}},
		{"sessions_revoked", []Event{{Type: TypeSessionsRevoked, Subject: "bob", At: at}}, []probe{
			{tok("bob", idp, old), decision.ReasonTokenRevoked},
			{tok("bob", idp, fresh), ""},
		}},
		{"token_revoked", []Event{{Type: TypeTokenRevoked, Subject: "carol", JTI: "t-1", At: at}}, []probe{
			{withJTI(tok("carol", idp, fresh), "t-1"), decision.ReasonTokenRevoked},
			{withJTI(tok("carol", idp, old), "t-2"), ""},
		}},
		{"subject_disabled then enabled", []Event{
			{Type: TypeSubjectDisabled, Subject: "dave", At: at},
			{Type: TypeSubjectEnabled, Subject: "dave", At: at.Add(time.Second)},
		}, []probe{{tok("dave", idp, old), ""}}},
		{"subject_enabled (later) published before subject_disabled", []Event{
			{Type: TypeSubjectEnabled, Subject: "erin", At: at.Add(time.Second)},
			{Type: TypeSubjectDisabled, Subject: "erin", At: at},
		}, []probe{{tok("erin", idp, old), ""}}},
		{"subject_disabled (later) published after subject_enabled", []Event{
			{Type: TypeSubjectEnabled, Subject: "frank", At: at},
			{Type: TypeSubjectDisabled, Subject: "frank", At: at.Add(time.Second)},
		}, []probe{{tok("frank", idp, fresh), decision.ReasonSubjectDisabled}}},
		{"issuer-scoped", []Event{{Type: TypeRolesChanged, Subject: "gina", Issuer: idp, At: at}}, []probe{
			{tok("gina", idp, old), decision.ReasonTokenStale},
			{tok("gina", other, old), ""},
		}},
		{"perm_version", []Event{{Type: TypeRolesChanged, Subject: "hank", At: at, PermVersion: 5}}, []probe{
			{withVersion(tok("hank", idp, fresh), 4), decision.ReasonTokenStale},
			{withVersion(tok("hank", idp, old), 5), ""},
			{tok("hank", idp, old), decision.ReasonTokenStale},
		}},
		{"subjects with dots, spaces and unicode", []Event{
			{Type: TypeRolesChanged, Subject: "ivy.smith@example.com", At: at},
			{Type: TypeRolesChanged, Subject: "urn:example:user:Zoë Ñ 用户 >", At: at},
		}, []probe{
			{tok("ivy.smith@example.com", idp, old), decision.ReasonTokenStale},
			{tok("urn:example:user:Zoë Ñ 用户 >", idp, old), decision.ReasonTokenStale},
			{tok("ivy", idp, old), ""},
			{tok("urn:example:user:Zoë Ñ 用户", idp, old), ""},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var last uint64
			for _, e := range tc.events {
				last = publish(t, pub, e)
			}
			waitApplied(t, last, reps...)
			for _, r := range reps {
				for _, p := range tc.probes {
					if got := r.Check(p.token, now); got != p.want {
						t.Errorf("replica %s, %s iat %s: Check = %q, want %q", r.ReplicaID(), p.token.Subject, p.token.IssuedAt.Format(time.TimeOnly), got, p.want)
					}
				}
			}
		})
	}
	for _, r := range reps {
		if err := r.Ready(); err != nil {
			t.Errorf("replica %s not ready at the end: %v", r.ReplicaID(), err)
		}
	}
}

func TestPublish(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	ensureStream(t, nc)
	clock := t0
	pub, err := NewPublisher(nc, PublisherOptions{Now: func() time.Time { return clock }, Issuers: []string{idp, other}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("fills id, v and at", func(t *testing.T) {
		ack, err := pub.PublishAck(ctx, Event{Type: TypeRolesChanged, Subject: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if ack.Seq == 0 || ack.Duplicate || ack.Event.ID == "" || ack.Event.V != 1 || !ack.Event.At.Equal(t0) {
			t.Errorf("ack = %+v", ack)
		}
	})
	t.Run("duplicate id returns the original sequence", func(t *testing.T) {
		e := Event{ID: "same-id", Type: TypeSessionsRevoked, Subject: "bob", At: t0}
		first, err := pub.PublishAck(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		again, err := pub.PublishAck(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if again.Seq != first.Seq || !again.Duplicate || first.Duplicate {
			t.Errorf("first %+v, again %+v", first, again)
		}
	})
	t.Run("invalid events are refused", func(t *testing.T) {
		for _, e := range []Event{
			{Type: "role_changed", Subject: "a"},
			{Type: TypeTokenRevoked, Subject: "a"},
			{Type: TypeRolesChanged},
			{Type: TypeRolesChanged, Subject: "a", At: t0.Add(MaxAtSkew + time.Second)},
			// Valid, but they can change nothing.
			{Type: TypeSubjectEnabled, Subject: "a", At: t0.Add(2 * time.Minute)},
			{Type: TypeRolesChanged, Subject: "a", At: t0.Add(-claims.DefaultMaxLifetime - claims.DefaultLeeway - time.Second)},
			{Type: TypeRolesChanged, Subject: "a", Issuer: "https://stranger.example/"},
			{Type: TypeTokenRevoked, Subject: "a", JTI: "j1", ExpiresAt: t0.Add(-claims.DefaultLeeway - time.Second)},
			{Type: TypeRolesChanged, Subject: "a", Reason: strings.Repeat("x", MaxReasonLen+1)},
		} {
			if _, err := pub.Publish(ctx, e); !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("Publish(%+v) = %v, want ErrInvalidEvent", e, err)
			}
		}
	})
	t.Run("the edges of what can still change something are accepted", func(t *testing.T) {
		for _, e := range []Event{
			{Type: TypeSubjectEnabled, Subject: "a", At: t0.Add(MaxAtSkew)},
			{Type: TypeRolesChanged, Subject: "a", At: t0.Add(-claims.DefaultMaxLifetime - claims.DefaultLeeway)},
			{Type: TypeRolesChanged, Subject: "a", Issuer: idp},
			{Type: TypeTokenRevoked, Subject: "a", JTI: "j1", ExpiresAt: t0.Add(-claims.DefaultLeeway)},
		} {
			if _, err := pub.Publish(ctx, e); err != nil {
				t.Errorf("Publish(%+v) = %v", e, err)
			}
		}
	})
	t.Run("the user subject is not in the NATS subject", func(t *testing.T) {
		ack, err := pub.PublishAck(ctx, Event{Type: TypeRolesChanged, Subject: "a.b *>", At: t0})
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		stream, err := js.Stream(ctx, DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.GetMsg(ctx, ack.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Subject != SubjectRolesChanged || msg.Header.Get(jetstream.MsgIDHeader) != ack.Event.ID {
			t.Errorf("stored on %q with Nats-Msg-Id %q", msg.Subject, msg.Header.Get(jetstream.MsgIDHeader))
		}
	})
}

// TestEnsureStreamIdempotent: ensuring the stream again changes nothing, a
// longer token lifetime grows its retention, a shorter one never shrinks it.
func TestEnsureStreamIdempotent(t *testing.T) {
	srv, err := StartEmbedded(t.TempDir(), EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	if srv.ClientURL() != "" {
		t.Errorf("ClientURL = %q without Listen, want no port", srv.ClientURL())
	}
	nc, err := srv.Connect(ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	short := StreamOptions{MaxLifetime: 15 * time.Minute, Leeway: time.Minute}
	long := StreamOptions{}
	for _, step := range []struct {
		opts StreamOptions
		want time.Duration
	}{
		{short, 16 * time.Minute},
		{short, 16 * time.Minute},
		{long, long.StreamConfig().MaxAge}, // grows with the longest tokens
		// A replica with shorter-lived tokens (a canary) never shortens
		// what the others' tokens need.
		{short, long.StreamConfig().MaxAge},
	} {
		s, err := EnsureStream(ctx, nc, step.opts)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		if cfg.MaxAge != step.want || cfg.Duplicates != 2*time.Minute || cfg.Storage != jetstream.FileStorage ||
			cfg.Discard != jetstream.DiscardOld || len(cfg.Subjects) != 1 || cfg.Subjects[0] != SubjectAll {
			t.Errorf("after EnsureStream with max lifetime %s: stream config %+v, want MaxAge %s", step.opts.MaxLifetime, cfg, step.want)
		}
	}
	if got := (StreamOptions{}).StreamConfig().MaxAge; got != claims.DefaultMaxLifetime+claims.DefaultLeeway {
		t.Errorf("default MaxAge = %s", got)
	}
}

// TestLateReplicaReplays starts a replica after the events were published:
// it is not ready until it has replayed them, then answers like the others.
func TestLateReplicaReplays(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	ensureStream(t, nc)
	pub := newPublisher(t, nc)
	at := time.Now().Add(-time.Minute)
	var last uint64
	for i := range 1000 {
		last = publish(t, pub, Event{Type: TypeRolesChanged, Subject: fmt.Sprint("user-", i), At: at})
	}

	late := replica(t, srv, ConsumerOptions{})
	// Catching up takes round trips to the server; the constructor has
	// returned long before.
	if err := late.Ready(); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Ready right after start = %v, want ErrNotReady", err)
	}
	// Before the first replay the outage policy applies at once (fresh_only).
	if got := late.Check(tok("someone", idp, at.Add(-time.Hour)), time.Now()); got != decision.ReasonRevocationStateStale && late.Ready() != nil {
		t.Errorf("Check before replay = %q", got)
	}
	waitReady(t, late)
	if st := late.Status(); st.AppliedSeq != last || st.StreamLastSeq != last || st.Lag != 0 || !st.Ready {
		t.Errorf("status after replay %+v, want applied = last = %d", st, last)
	}
	for _, i := range []int{0, 499, 999} {
		if got := late.Check(tok(fmt.Sprint("user-", i), idp, at.Add(-time.Minute)), time.Now()); got != decision.ReasonTokenStale {
			t.Errorf("user-%d: Check = %q after replay", i, got)
		}
	}
}

// TestNATSUnreachableAtStart starts a replica before its NATS server: it is
// not ready (and says why) until the server comes up.
func TestNATSUnreachableAtStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	dir := t.TempDir()
	_, seeds, err := embeddedUsers(dir) // the seeds the server will use
	if err != nil {
		t.Fatal(err)
	}
	rep := replicaAt(t, "nats://"+addr, seeds[ReplicaUser], ConsumerOptions{})
	eventually(t, 5*time.Second, func() error {
		if err := rep.Ready(); err == nil || !strings.Contains(err.Error(), "NATS connection") {
			return fmt.Errorf("Ready = %v", err)
		}
		return nil
	})
	// Before its first replay the replica knows nothing (alice may be
	// disabled, her token's jti revoked), so under every mode but allow
	// even a token minted a second ago is refused; the HTTP layer answers
	// 503 not_ready before it asks.
	now := time.Now()
	if got := rep.Check(tok("alice", idp, now.Add(-time.Second)), now); got != decision.ReasonRevocationStateStale {
		t.Errorf("fresh token before the first replay (fresh_only): Check = %q, want revocation_state_stale", got)
	}
	allow := replicaAt(t, "nats://"+addr, seeds[ReplicaUser], ConsumerOptions{OnDisconnect: AllowAll})
	if got := allow.Check(tok("alice", idp, now.Add(-time.Hour)), now); got != "" {
		t.Errorf("before the first replay with allow: Check = %q, want nothing", got)
	}

	srv := startServerAt(t, dir, addr)
	nc := dial(t, srv)
	ensureStream(t, nc)
	seq := publish(t, newPublisher(t, nc), Event{Type: TypeSubjectDisabled, Subject: "alice"})
	waitApplied(t, seq, rep)
	waitReady(t, rep)
	if got := rep.Check(tok("alice", idp, time.Now()), time.Now()); got != decision.ReasonSubjectDisabled {
		t.Errorf("Check = %q", got)
	}
}

// TestServerRestartLosesNothing stops the NATS server between events and
// starts it again on the same store: a replica that was following resumes,
// and a new replica replays every event.
func TestServerRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir) // shut down by the test, and again at cleanup (a no-op)
	url := srv.ClientURL()
	addr := strings.TrimPrefix(url, "nats://")
	nc := dial(t, srv)
	ensureStream(t, nc)
	pub := newPublisher(t, nc)
	follower := replica(t, srv, ConsumerOptions{ReplicaID: "follower"})
	waitReady(t, follower)

	at := time.Now().Add(-time.Minute)
	for i := range 50 {
		publish(t, pub, Event{Type: TypeRolesChanged, Subject: fmt.Sprint("before-", i), At: at})
	}
	waitApplied(t, 50, follower)

	srv.Shutdown()
	eventually(t, 5*time.Second, func() error {
		if st := follower.Status(); st.Ready || st.DegradedSince.IsZero() {
			return fmt.Errorf("follower still healthy: %+v", st)
		}
		return nil
	})
	// The state is kept while degraded.
	if got := follower.ledger.Check(tok("before-7", idp, at.Add(-time.Minute)), time.Now()); got != decision.ReasonTokenStale {
		t.Errorf("ledger lost its state on disconnect: %q", got)
	}

	restarted := startServerAt(t, dir, addr)
	var last uint64
	eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var err error
		last, err = pub.Publish(ctx, Event{Type: TypeRolesChanged, Subject: "after-0", At: at})
		return err
	})
	for i := 1; i < 50; i++ {
		last = publish(t, pub, Event{Type: TypeRolesChanged, Subject: fmt.Sprint("after-", i), At: at})
	}
	if last != 100 {
		t.Errorf("last sequence %d after the restart, want 100: the store lost or duplicated events", last)
	}
	waitApplied(t, last, follower)
	waitReady(t, follower)

	fresh := replica(t, restarted, ConsumerOptions{ReplicaID: "fresh"})
	waitApplied(t, last, fresh)
	waitReady(t, fresh)
	for _, r := range []*Consumer{follower, fresh} {
		for _, s := range []string{"before-0", "before-49", "after-0", "after-49"} {
			if got := r.Check(tok(s, idp, at.Add(-time.Minute)), time.Now()); got != decision.ReasonTokenStale {
				t.Errorf("replica %s, %s: Check = %q", r.ReplicaID(), s, got)
			}
		}
		if st := r.Status(); st.EventsApplied != 100 || st.BadMessages != 0 {
			t.Errorf("replica %s applied %d events (%d bad), want 100", r.ReplicaID(), st.EventsApplied, st.BadMessages)
		}
	}
}

// TestOutagePolicies cuts three replicas off the stream, one per
// on_disconnect mode, and checks their answers within and after the grace
// period, then their recovery.
func TestOutagePolicies(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir) // shut down by the test, and again at cleanup (a no-op)
	url := srv.ClientURL()
	nc := dial(t, srv)
	ensureStream(t, nc)
	// Check takes the time as an argument: the test asks about moments
	// within and after the grace period instead of waiting it out.
	const grace = 10 * time.Minute
	modes := []DisconnectMode{FreshOnly, DenyAll, AllowAll}
	reps := map[DisconnectMode]*Consumer{}
	for _, m := range modes {
		reps[m] = replica(t, srv, ConsumerOptions{ReplicaID: string(m), OnDisconnect: m, Grace: grace, FreshWindow: time.Minute})
	}
	at := time.Now().Add(-time.Minute)
	seq := publish(t, newPublisher(t, nc), Event{Type: TypeRolesChanged, Subject: "alice", At: at})
	waitApplied(t, seq, reps[FreshOnly], reps[DenyAll], reps[AllowAll])
	waitReady(t, reps[FreshOnly], reps[DenyAll], reps[AllowAll])

	srv.Shutdown()
	for _, m := range modes {
		eventually(t, 5*time.Second, func() error {
			if st := reps[m].Status(); st.DegradedSince.IsZero() || st.Ready || st.Connection == "connected" {
				return fmt.Errorf("%s: %+v", m, st)
			}
			return nil
		})
	}

	type probe struct {
		name  string
		token func(now time.Time) *claims.Claims
		want  map[DisconnectMode]decision.Reason
	}
	stale, revState := decision.ReasonTokenStale, decision.ReasonRevocationStateStale
	probes := []probe{
		{"old token", func(now time.Time) *claims.Claims { return tok("bob", idp, now.Add(-10*time.Minute)) },
			map[DisconnectMode]decision.Reason{FreshOnly: revState, DenyAll: revState, AllowAll: ""}},
		{"fresh token", func(now time.Time) *claims.Claims { return tok("bob", idp, now.Add(-30*time.Second)) },
			map[DisconnectMode]decision.Reason{FreshOnly: "", DenyAll: revState, AllowAll: ""}},
		{"token the ledger revokes", func(now time.Time) *claims.Claims { return tok("alice", idp, at.Add(-time.Minute)) },
			map[DisconnectMode]decision.Reason{FreshOnly: stale, DenyAll: stale, AllowAll: stale}},
	}
	for _, m := range modes {
		since := reps[m].Status().DegradedSince
		for _, p := range probes {
			within := since.Add(grace - time.Second)
			if got, want := reps[m].Check(p.token(within), within), p.want[AllowAll]; got != want {
				t.Errorf("%s, %s, within grace: Check = %q, want %q", m, p.name, got, want)
			}
			after := since.Add(grace)
			if got := reps[m].Check(p.token(after), after); got != p.want[m] {
				t.Errorf("%s, %s, after grace: Check = %q, want %q", m, p.name, got, p.want[m])
			}
		}
	}

	restarted := startServerAt(t, dir, strings.TrimPrefix(url, "nats://"))
	_ = restarted
	waitReady(t, reps[FreshOnly], reps[DenyAll], reps[AllowAll])
	for _, m := range modes {
		later := time.Now().Add(2 * grace)
		if got := reps[m].Check(tok("bob", idp, later.Add(-10*time.Minute)), later); got != "" {
			t.Errorf("%s after recovery: Check = %q", m, got)
		}
	}
}

// TestHostileEvents puts messages on the stream that are not valid events:
// each is skipped and counted, and the events after them still apply.
func TestHostileEvents(t *testing.T) {
	_, nc, rep := followed(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	good := func(ty, extra string) string {
		return `{"v":1,"id":"` + randomID() + `","type":"` + ty + `","subject":"mallory","at":"` + at + `"` + extra + `}`
	}
	hostile := []struct {
		name, subject, data string
	}{
		{"garbage", SubjectRolesChanged, "\x00\x01\x02 not json"},
		{"empty", SubjectRolesChanged, ""},
		{"JSON array", SubjectRolesChanged, "[1,2,3]"},
		{"oversize", SubjectRolesChanged, good("roles_changed", `,"reason":"`+strings.Repeat("x", 9000)+`"`)},
		{"unknown type", "warden.events.roles_exploded", good("roles_exploded", "")},
		{"missing subject", SubjectRolesChanged, `{"v":1,"id":"x","type":"roles_changed","at":"` + at + `"}`},
		{"unparsable at", SubjectRolesChanged, `{"v":1,"id":"x","type":"roles_changed","subject":"mallory","at":"soon"}`},
		{"wrong v", SubjectRolesChanged, strings.Replace(good("roles_changed", ""), `"v":1`, `"v":99`, 1)},
		{"token_revoked without jti", SubjectTokenRevoked, good("token_revoked", "")},
		{"type and NATS subject disagree", SubjectRolesChanged, good("subject_disabled", "")},
		{"unknown field", SubjectRolesChanged, good("roles_changed", `,"admin":true`)},
		{"far future at", SubjectSubjectDisabled, strings.Replace(good("subject_disabled", ""), at, time.Now().Add(time.Hour).UTC().Format(time.RFC3339), 1)},
		{"invalid UTF-8", SubjectRolesChanged, strings.Replace(good("roles_changed", ""), "mallory", "mall\xffory", 1)},
	}
	for _, h := range hostile {
		if _, err := js.Publish(ctx, h.subject, []byte(h.data)); err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
	}
	// A message too big for any event is refused by the stream itself.
	if _, err := js.Publish(ctx, SubjectRolesChanged, make([]byte, 100<<10)); err == nil {
		t.Error("the stream stored a 100 KiB message")
	}
	ack, err := js.Publish(ctx, SubjectSubjectDisabled, []byte(good("subject_disabled", "")))
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, ack.Sequence, rep)
	if got := rep.Check(tok("mallory", idp, time.Now()), time.Now()); got != decision.ReasonSubjectDisabled {
		t.Errorf("the good event after the bad ones: Check = %q", got)
	}
	st := rep.Status()
	if st.BadMessages != uint64(len(hostile)) || st.EventsApplied != 1 {
		t.Errorf("bad messages %d, applied %d; want %d and 1", st.BadMessages, st.EventsApplied, len(hostile))
	}
	waitReady(t, rep)
}

func TestWaitFor(t *testing.T) {
	_, nc, rep := followed(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := rep.WaitFor(ctx, 1)
	if !errors.Is(err, ErrBehind) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor an unpublished sequence = %v", err)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- rep.WaitFor(ctx, 3)
	}()
	pub := newPublisher(t, nc)
	for range 3 {
		publish(t, pub, Event{Type: TypeRolesChanged, Subject: "alice"})
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := rep.WaitFor(context.Background(), 2); err != nil {
		t.Fatalf("WaitFor a sequence already applied = %v", err)
	}
}

func TestConnectErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts ConnectOptions
		want string
	}{
		{"no URL", ConnectOptions{}, "no NATS URL"},
		{"cert without key", ConnectOptions{URLs: "nats://127.0.0.1:1", CertFile: "c.pem"}, "both a cert file and a key file"},
		{"missing credentials", ConnectOptions{URLs: "nats://127.0.0.1:1", CredsFile: "/nonexistent/x.creds"}, "credentials file"},
		{"missing CA", ConnectOptions{URLs: "nats://127.0.0.1:1", CAFile: "/nonexistent/ca.pem"}, "rootCA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := Connect(tc.opts)
			if err == nil {
				nc.Close()
				t.Fatal("Connect succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestConsumerOptions(t *testing.T) {
	srv, err := StartEmbedded(t.TempDir(), EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect(ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, opts := range []ConsumerOptions{
		{ReplicaID: "has.dot"},
		{ReplicaID: "has space"},
		{ReplicaID: strings.Repeat("x", 65)},
		{OnDisconnect: "maybe"},
	} {
		if c, err := NewConsumer(nc, NewLedger(LedgerOptions{}), opts); err == nil {
			c.Close()
			t.Errorf("NewConsumer(%+v) accepted", opts)
		}
	}
	if id := DefaultReplicaID(); !replicaIDPattern.MatchString(id) {
		t.Errorf("DefaultReplicaID() = %q is not a valid id", id)
	}
}

func randomID() string { return nats.NewInbox()[len("_INBOX."):] }

// TestStreamRecreated deletes the stream under a following replica and
// creates it again: sequences start over, and the replica follows the new
// stream from its start while keeping what it had folded.
func TestStreamRecreated(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	ensureStream(t, nc)
	pub := newPublisher(t, nc)
	rep := replica(t, srv, ConsumerOptions{})
	at := time.Now().Add(-time.Minute)
	var last uint64
	for i := range 5 {
		last = publish(t, pub, Event{Type: TypeRolesChanged, Subject: fmt.Sprint("old-", i), At: at})
	}
	waitApplied(t, last, rep)
	waitReady(t, rep)

	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(context.Background(), DefaultStream); err != nil {
		t.Fatal(err)
	}
	// The server removes the old store in the background; creating the
	// stream again can fail until it has.
	eventually(t, 10*time.Second, func() error {
		_, err := EnsureStream(context.Background(), nc, StreamOptions{})
		return err
	})
	// More events than the old stream had: the new stream's last sequence
	// passes the replica's before it notices, and the first events must
	// still not be skipped.
	for i := range 8 {
		publish(t, pub, Event{Type: TypeSubjectDisabled, Subject: fmt.Sprint("new-", i), At: at})
	}
	eventually(t, 20*time.Second, func() error {
		if got := rep.Check(tok("new-0", idp, time.Now()), time.Now()); got != decision.ReasonSubjectDisabled {
			return fmt.Errorf("event on the recreated stream not applied: %q (%+v)", got, rep.Status())
		}
		return rep.Ready()
	})
	if got := rep.Check(tok("old-3", idp, at.Add(-time.Minute)), time.Now()); got != decision.ReasonTokenStale {
		t.Errorf("state from the old stream lost: %q", got)
	}
	waitApplied(t, 8, rep)
	if got := rep.Check(tok("new-7", idp, time.Now()), time.Now()); got != decision.ReasonSubjectDisabled {
		t.Errorf("last event on the recreated stream: %q", got)
	}
	if st := rep.Status(); st.AppliedSeq != 8 {
		t.Errorf("applied %d on the new stream, want 8", st.AppliedSeq)
	}
}

// TestRetentionShort: a stream shortened around Warden (here by hand, below
// what a replica's tokens need) is reported in Status and not lengthened
// behind the operator's back by the consumer; EnsureStream restores it.
func TestRetentionShort(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	ensureStream(t, nc)
	r := replica(t, srv, ConsumerOptions{})
	need := claims.DefaultMaxLifetime + claims.DefaultLeeway
	eventually(t, 10*time.Second, func() error {
		if st := r.Status(); st.Retention != need || st.RetentionNeeded != need || st.RetentionShort {
			return fmt.Errorf("status %+v, want retention %s, not short", st, need)
		}
		return nil
	})

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := (StreamOptions{}).StreamConfig()
	cfg.MaxAge = 10 * time.Minute
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if st := r.Status(); st.Retention != 10*time.Minute || !st.RetentionShort {
			return fmt.Errorf("status %+v, want retention 10m, short", st)
		}
		return nil
	})
	if _, err := EnsureStream(t.Context(), nc, StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if st := r.Status(); st.Retention != need || st.RetentionShort {
			return fmt.Errorf("status %+v, want retention %s again", st, need)
		}
		return nil
	})
}
