package decisionlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestDecisionLogWriteErrors(t *testing.T) {
	l := New(failingWriter{}, Options{Logger: slog.New(slog.DiscardHandler)})
	l.Record(Entry{DecisionID: "a"})
	l.Record(Entry{DecisionID: "b"})
	// Close writes what is still queued, into the failed output if the
	// writer had not taken it yet: then Close reports that failure.
	if err := l.Close(); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Close = %v, want nil or the output's error", err)
	}
	if l.WriteErrors() == 0 {
		t.Error("no write error counted")
	}
	// The history keeps working without the output.
	if n := len(l.Recent(Filter{}, 10)); n != 2 {
		t.Errorf("%d entries in the history, want 2", n)
	}
}

func TestDecisionLogHistory(t *testing.T) {
	l := New(nil, Options{History: 3, Replica: "r1"})
	defer l.Close()
	for i := range 5 {
		l.Record(Entry{DecisionID: fmt.Sprintf("id-%d", i), Subject: []string{"alice", "bob"}[i%2], Allow: i%3 == 0})
	}
	l.Close() // every entry recorded is in the history once Close returns
	ids := func(es []Entry) []string {
		out := []string{}
		for _, e := range es {
			out = append(out, e.DecisionID)
		}
		return out
	}
	for _, tt := range []struct {
		name   string
		filter Filter
		limit  int
		want   []string
	}{
		{"newest first, oldest forgotten", Filter{}, 10, []string{"id-4", "id-3", "id-2"}},
		{"limit", Filter{}, 1, []string{"id-4"}},
		{"subject", Filter{Subject: "alice"}, 10, []string{"id-4", "id-2"}},
		{"allow", Filter{ByAllow: true, Allow: true}, 10, []string{"id-3"}},
		{"deny", Filter{ByAllow: true}, 10, []string{"id-4", "id-2"}},
		{"nothing matches", Filter{Action: "x"}, 10, []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ids(l.Recent(tt.filter, tt.limit))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if got := l.Recent(Filter{}, 1); got[0].Replica != "r1" {
		t.Errorf("replica = %q, want r1", got[0].Replica)
	}
}

func TestSubscribeReplaysAfterLastSeen(t *testing.T) {
	l := New(nil, Options{})
	defer l.Close()
	// UUIDv7-like ids: the order of their text is the order of time.
	for _, id := range []string{"01-a", "02-b", "03-c", "04-d"} {
		l.Record(Entry{DecisionID: id, Subject: id[3:]})
	}
	eventually(t, "four entries", func() bool { return len(l.Recent(Filter{}, 10)) == 4 })
	for _, tt := range []struct {
		name   string
		after  string
		filter Filter
		want   []string
	}{
		{"after a remembered entry", "02-b", Filter{}, []string{"03-c", "04-d"}},
		{"after the newest", "04-d", Filter{}, nil},
		{"filtered", "01-a", Filter{Subject: "c"}, []string{"03-c"}},
		{"entry no longer held: by id order", "02-a", Filter{}, []string{"02-b", "03-c", "04-d"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sub, backlog := l.Subscribe(tt.filter, tt.after)
			defer l.Unsubscribe(sub)
			var got []string
			for _, e := range backlog {
				got = append(got, e.DecisionID)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSubscriberThatFallsBehindMisses(t *testing.T) {
	l := New(nil, Options{})
	defer l.Close()
	sub, _ := l.Subscribe(Filter{}, "")
	for i := range subscriberBuffer + 10 {
		l.Record(Entry{DecisionID: fmt.Sprint(i)})
	}
	eventually(t, "ten missed", func() bool { return sub.missed.Load() == 10 })
	if len(sub.records) != subscriberBuffer {
		t.Errorf("%d records waiting, want %d", len(sub.records), subscriberBuffer)
	}
	l.CloseStreams()
	select {
	case <-sub.done:
	default:
		t.Error("CloseStreams did not end the Subscription")
	}
	if sub, _ := l.Subscribe(Filter{}, ""); sub != nil {
		t.Error("subscribe after CloseStreams returned a Subscription")
	}
}
