package events

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

// testLogger shows the package's log with -v only when WARDEN_TEST_LOG is
// set; otherwise tests stay quiet.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("WARDEN_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// startServer runs an embedded server with JetStream under dir, listening
// on a random loopback port, and stops it at the end of the test.
func startServer(t testing.TB, dir string) *Embedded {
	t.Helper()
	return startServerAt(t, dir, "127.0.0.1:0")
}

func startServerAt(t testing.TB, dir, listen string) *Embedded {
	t.Helper()
	srv, err := StartEmbedded(dir, EmbeddedOptions{Listen: listen, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// dial connects to srv over TCP as a replica, with reconnect settings fast
// enough for tests.
func dial(t testing.TB, srv *Embedded) *nats.Conn {
	t.Helper()
	return dialAt(t, srv.ClientURL(), srv.SeedFile(ReplicaUser))
}

// dialAt connects to url with the nkey seed in seed.
func dialAt(t testing.TB, url, seed string) *nats.Conn {
	t.Helper()
	nc, err := Connect(ConnectOptions{
		URLs: url, NkeySeedFile: seed, Logger: testLogger(t),
		ReconnectWait: 20 * time.Millisecond, ReconnectJitter: 10 * time.Millisecond,
		PingInterval: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func ensureStream(t testing.TB, nc *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := EnsureStream(ctx, nc, StreamOptions{}); err != nil {
		t.Fatal(err)
	}
}

func newPublisher(t testing.TB, nc *nats.Conn) *Publisher {
	t.Helper()
	p, err := NewPublisher(nc, PublisherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// replica is one Warden replica's events side: its own connection, ledger
// and consumer.
func replica(t testing.TB, srv *Embedded, opts ConsumerOptions) *Consumer {
	t.Helper()
	return replicaAt(t, srv.ClientURL(), srv.SeedFile(ReplicaUser), opts)
}

// replicaAt is a replica of the server at url, which may not be up yet.
func replicaAt(t testing.TB, url, seed string, opts ConsumerOptions) *Consumer {
	t.Helper()
	nc := dialAt(t, url, seed)
	if opts.PollInterval == 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	c, err := NewConsumer(nc, NewLedger(LedgerOptions{}), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func publish(t testing.TB, p *Publisher, e Event) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seq, err := p.Publish(ctx, e)
	if err != nil {
		t.Fatalf("publish %+v: %v", e, err)
	}
	return seq
}

// waitApplied waits until every consumer has applied seq.
func waitApplied(t testing.TB, seq uint64, cs ...*Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range cs {
		if err := c.WaitFor(ctx, seq); err != nil {
			t.Fatalf("replica %s: %v (status %+v)", c.ReplicaID(), err, c.Status())
		}
	}
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", within, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitReady(t testing.TB, cs ...*Consumer) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		for _, c := range cs {
			if err := c.Ready(); err != nil {
				return fmt.Errorf("replica %s: %w", c.ReplicaID(), err)
			}
		}
		return nil
	})
}

// tok is a verified token as the ledger sees it.
func tok(sub, iss string, iat time.Time) *claims.Claims {
	return &claims.Claims{Subject: sub, Issuer: iss, IssuedAt: iat, ExpiresAt: iat.Add(time.Hour)}
}

func withJTI(c *claims.Claims, jti string) *claims.Claims { c.ID = jti; return c }

func withVersion(c *claims.Claims, v int64) *claims.Claims {
	c.PermVersion, c.HasPermVersion = v, true
	return c
}

// checker is what both Ledger and Consumer offer.
type checker interface {
	Check(c *claims.Claims, now time.Time) decision.Reason
}

// followed is a server with the stream and one replica following it, ready.
func followed(t testing.TB) (*Embedded, *nats.Conn, *Consumer) {
	t.Helper()
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	ensureStream(t, nc)
	rep := replica(t, srv, ConsumerOptions{})
	waitReady(t, rep)
	return srv, nc, rep
}

// threeFollowing is a server with the stream, a publisher, and three
// replicas (r0, r1, r2) following it on their own connections, ready.
func threeFollowing(t testing.TB) (*Embedded, *Publisher, []*Consumer) {
	t.Helper()
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	ensureStream(t, nc)
	pub := newPublisher(t, nc)
	var reps []*Consumer
	for i := range 3 {
		reps = append(reps, replica(t, srv, ConsumerOptions{ReplicaID: fmt.Sprint("r", i)}))
	}
	waitReady(t, reps...)
	return srv, pub, reps
}
