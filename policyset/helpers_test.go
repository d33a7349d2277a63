package policyset

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/events"
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

// startServer runs a real NATS server with JetStream under dir (Warden's
// embedded one), listening on a random loopback port, and stops it at the
// end of the test.
func startServer(t testing.TB, dir string) *events.Embedded {
	t.Helper()
	return startServerAt(t, dir, "127.0.0.1:0")
}

func startServerAt(t testing.TB, dir, listen string) *events.Embedded {
	t.Helper()
	srv, err := events.StartEmbedded(dir, events.EmbeddedOptions{Listen: listen, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// dial connects to srv over TCP as a replica, with reconnect settings fast
// enough for tests.
func dial(t testing.TB, srv *events.Embedded) *nats.Conn {
	t.Helper()
	nc, err := events.Connect(events.ConnectOptions{
		URLs: srv.ClientURL(), NkeySeedFile: srv.SeedFile(events.ReplicaUser), Logger: testLogger(t),
		ReconnectWait: 20 * time.Millisecond, ReconnectJitter: 10 * time.Millisecond,
		PingInterval: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
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

// newDirManager follows dir, read every poll, with engine.
func newDirManager(t testing.TB, dir string, engine *decision.Engine, poll time.Duration) (*Manager, error) {
	t.Helper()
	src, err := NewDir(dir, poll)
	if err != nil {
		return nil, err
	}
	return NewManager(tctx(t), src, engine, ManagerOptions{Logger: testLogger(t)})
}
