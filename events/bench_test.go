package events

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

// benchLedger holds n subjects with one roles_changed each, like a ledger
// after a busy hour of demotions.
func benchLedger(b *testing.B, n int) *Ledger {
	l := newLedger()
	for i := range n {
		must(b, l.Apply(Event{V: 1, ID: fmt.Sprint("e", i), Type: TypeRolesChanged, Subject: fmt.Sprint("user-", i, "@example.com"), At: t0}))
	}
	must(b, l.Apply(Event{V: 1, ID: "j", Type: TypeTokenRevoked, Subject: "user-7@example.com", JTI: "jti-7", At: t0}))
	return l
}

// BenchmarkLedgerCheck measures the hot path: the revocation check every
// decision makes.
//
//	go test -run '^$' -bench BenchmarkLedgerCheck -benchmem ./events/
func BenchmarkLedgerCheck(b *testing.B) {
	now := t0.Add(time.Minute)
	cases := []struct {
		name  string
		l     *Ledger
		token *claims.Claims
		want  decision.Reason
	}{
		{"empty", newLedger(), withJTI(tok("alice@example.com", idp, t0), "jti-1"), ""},
		{"miss", benchLedger(b, 10_000), withJTI(tok("alice@example.com", idp, t0), "jti-1"), ""},
		{"hit-fresh", benchLedger(b, 10_000), withJTI(tok("user-42@example.com", idp, t0.Add(time.Second)), "jti-1"), ""},
		{"hit-stale", benchLedger(b, 10_000), withJTI(tok("user-42@example.com", idp, t0.Add(-time.Minute)), "jti-1"), decision.ReasonTokenStale},
		{"hit-jti", benchLedger(b, 10_000), withJTI(tok("user-7@example.com", idp, t0.Add(time.Second)), "jti-7"), decision.ReasonTokenRevoked},
	}
	// The engine calls Consumer.Check: the ledger plus the outage policy.
	healthy := &Consumer{ledger: benchLedger(b, 10_000), opts: ConsumerOptions{Grace: 30 * time.Second, OnDisconnect: FreshOnly, FreshWindow: time.Minute}}
	degraded := &Consumer{ledger: healthy.ledger, opts: healthy.opts}
	degraded.degradedSince.Store(now.Add(-time.Hour).UnixNano())
	degraded.replayed.Store(true)
	consumers := []struct {
		name  string
		c     *Consumer
		token *claims.Claims
		want  decision.Reason
	}{
		{"consumer-miss", healthy, withJTI(tok("alice@example.com", idp, t0), "jti-1"), ""},
		{"consumer-degraded-fresh_only", degraded, withJTI(tok("alice@example.com", idp, t0.Add(-10*time.Minute)), "jti-1"), decision.ReasonRevocationStateStale},
	}
	for _, tc := range consumers {
		if got := tc.c.Check(tc.token, now); got != tc.want {
			b.Fatalf("%s: Check = %q, want %q", tc.name, got, tc.want)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tc.c.Check(tc.token, now)
			}
		})
	}
	for _, tc := range cases {
		if got := tc.l.Check(tc.token, now); got != tc.want {
			b.Fatalf("%s: Check = %q, want %q", tc.name, got, tc.want)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tc.l.Check(tc.token, now)
			}
		})
		b.Run(tc.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tc.l.Check(tc.token, now)
				}
			})
		})
	}
}

// BenchmarkLedgerMemoryPerEntry reports the heap a ledger entry costs
// (subject, event id and the fold), over 100,000 subjects.
//
//	go test -run '^$' -bench BenchmarkLedgerMemoryPerEntry ./events/
func BenchmarkLedgerMemoryPerEntry(b *testing.B) {
	const n = 100_000
	for _, kind := range []Type{TypeRolesChanged, TypeTokenRevoked} {
		b.Run(string(kind), func(b *testing.B) {
			// Built before measuring, as a replica receives them: the
			// strings are then the ledger's to keep.
			evs := make([]Event, n)
			for i := range evs {
				evs[i] = Event{V: 1, ID: fmt.Sprintf("%026d", i), Type: kind, Subject: fmt.Sprintf("user-%d@example.com", i), At: t0}
				if kind == TypeTokenRevoked {
					evs[i].JTI = fmt.Sprintf("%036d", i)
				}
			}
			var perEntry float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				l := newLedger()
				for _, e := range evs {
					_ = l.Apply(e)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perEntry = float64(after.HeapAlloc-before.HeapAlloc) / n
				runtime.KeepAlive(l)
			}
			b.ReportMetric(perEntry, "B/entry")
		})
	}
}

// BenchmarkReplay measures how fast a replica replays the stream at start:
// one million events stored in JetStream (file storage, in-process
// connection), folded into a fresh ledger. It takes a minute and about 300 MB
// of disk, so it runs only when -bench names it:
//
//	go test -run '^$' -bench BenchmarkReplay -benchtime 1x ./events/
func BenchmarkReplay(b *testing.B) {
	if !strings.Contains(flag.Lookup("test.bench").Value.String(), "Replay") {
		b.Skip("takes a minute; run it with -bench BenchmarkReplay")
	}
	const events = 1_000_000
	srv, err := StartEmbedded(b.TempDir(), EmbeddedOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect(ConnectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	ensureStream(b, nc)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	at := time.Now().Add(-time.Minute).UTC()
	types := []Type{TypeRolesChanged, TypeRolesChanged, TypeSessionsRevoked, TypeTokenRevoked, TypeSubjectDisabled}
	for i := range events {
		e := Event{V: 1, ID: fmt.Sprintf("ev-%d", i), Type: types[i%len(types)], Subject: fmt.Sprintf("user-%d@example.com", i%200_000), At: at}
		if e.Type == TypeTokenRevoked {
			e.JTI = fmt.Sprint("jti-", i)
		}
		data, _ := json.Marshal(e)
		if _, err := js.PublishAsync(e.Type.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("publishing did not complete")
	}
	b.Logf("published %d events in %s", events, time.Since(start).Round(time.Millisecond))

	for b.Loop() {
		start := time.Now()
		c, err := NewConsumer(nc, NewLedger(LedgerOptions{}), ConsumerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if err := c.WaitFor(ctx, events); err != nil {
			b.Fatal(err)
		}
		cancel()
		elapsed := time.Since(start)
		if st := c.Status(); st.EventsApplied != events || st.BadMessages != 0 {
			b.Fatalf("status after replay: %+v", st)
		}
		c.Close()
		b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
		b.ReportMetric(elapsed.Seconds(), "s/replay")
	}
}

// BenchmarkPropagation measures, over at least 1,000 events on loopback TCP,
// the time from a publish being acknowledged by JetStream to three replicas
// (each with its own connection, as separate processes would have) all
// answering token_stale for the subject's old token.
//
//	go test -run '^$' -bench BenchmarkPropagation ./events/
func BenchmarkPropagation(b *testing.B) {
	_, pub, reps := threeFollowing(b)

	samples := max(b.N, 1000)
	afterAck := make([]time.Duration, 0, samples)
	afterPublish := make([]time.Duration, 0, samples)
	ctx := context.Background()
	b.ResetTimer()
	for i := range samples {
		subject := fmt.Sprintf("user-%d@example.com", i)
		old := tok(subject, idp, time.Now().Add(-time.Minute))
		start := time.Now()
		seq, err := pub.Publish(ctx, Event{Type: TypeRolesChanged, Subject: subject})
		if err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for _, r := range reps {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := r.WaitFor(wctx, seq); err != nil {
				b.Fatal(err)
			}
			cancel()
		}
		done := time.Now()
		for _, r := range reps {
			if got := r.Check(old, done); got != decision.ReasonTokenStale {
				b.Fatalf("replica %s: Check = %q after applying %d", r.ReplicaID(), got, seq)
			}
		}
		afterAck = append(afterAck, done.Sub(acked))
		afterPublish = append(afterPublish, done.Sub(start))
	}
	b.StopTimer()
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds()), name+"-p50-µs")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), name+"-p99-µs")
	}
	report("ack-to-deny", afterAck)
	report("publish-to-deny", afterPublish)
	b.ReportMetric(float64(samples), "events")
}

// BenchmarkPublishSync measures what events.embedded_sync costs a publish
// acknowledged by the embedded server: always (fsync before each
// acknowledgement) against the default interval.
//
//	go test -run '^$' -bench BenchmarkPublishSync -benchtime 2000x ./events/
func BenchmarkPublishSync(b *testing.B) {
	for _, c := range []struct {
		name string
		opts EmbeddedOptions
	}{
		{"interval-2m", EmbeddedOptions{SyncInterval: 2 * time.Minute}},
		{"always", EmbeddedOptions{SyncAlways: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			srv, err := StartEmbedded(b.TempDir(), c.opts)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(srv.Shutdown)
			nc, err := srv.Connect(ConnectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(nc.Close)
			ensureStream(b, nc)
			pub := newPublisher(b, nc)
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				if _, err := pub.Publish(ctx, Event{Type: TypeRolesChanged, Subject: fmt.Sprint("user-", i)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
