package policyset

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/policies"
)

// TestPolicyWatchThreeReplicas: three replicas, each with its own connection,
// get the stored set at start and then every put, in order.
func TestPolicyWatchThreeReplicas(t *testing.T) {
	srv := startServer(t, t.TempDir())
	admin := newPolicyStore(t, dial(t, srv), StoreOptions{})
	ctx := tctx(t)
	first, _, err := Seed(ctx, admin, policySet(0))
	if err != nil {
		t.Fatal(err)
	}

	recs, ws := watchers(t, srv, 3, first.KVRevision)

	last := first
	for i := 1; i <= 10; i++ {
		if last, err = admin.Put(ctx, policySet(i), last.KVRevision); err != nil {
			t.Fatal(err)
		}
	}
	waitDelivered(t, last.KVRevision, ws...)
	for i, r := range recs {
		revs := r.kvRevisions()
		increasing(t, fmt.Sprint("replica ", i), revs)
		if revs[0] != first.KVRevision {
			t.Errorf("replica %d: first delivery at %d, want the stored set at %d", i, revs[0], first.KVRevision)
		}
		got, _ := r.last()
		if got.Revision != last.Revision || got.KVRevision != last.KVRevision || got.Message != "set 10" {
			t.Errorf("replica %d ends on %s at %d (%q), want %s at %d", i, got.Revision, got.KVRevision, got.Message, last.Revision, last.KVRevision)
		}
		if _, err := fsReadFile(got, "authz.rego"); err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
		if n := ws[i].Skipped(); n != 0 {
			t.Errorf("replica %d skipped %d values", i, n)
		}
	}
}

func fsReadFile(s Set, name string) (string, error) {
	b, ok := s.Files[name]
	if !ok {
		return "", fmt.Errorf("no %s in the set", name)
	}
	return string(b), nil
}

// TestPolicyWatchSkipsMalformed: values that are not policy sets (written
// with the KV API directly) are counted and skipped; the next good put still
// arrives.
func TestPolicyWatchSkipsMalformed(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	s := newPolicyStore(t, nc, StoreOptions{})
	ctx := tctx(t)
	good, err := s.Put(ctx, policySet(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	recs, ws := watchers(t, srv, 3, good.KVRevision)

	kv := rawBucket(t, nc, DefaultBucket)
	data, _, err := encodeSet(policySet(2), DefaultMaxFiles)
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(data), "input.n == 2", "true", 1)
	for _, raw := range []string{"garbage", `{"v":1}`, tampered} {
		if _, err := kv.PutString(ctx, setKey, raw); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() error {
		for i, w := range ws {
			if n := w.Skipped(); n != 3 {
				return fmt.Errorf("replica %d skipped %d values, want 3", i, n)
			}
		}
		return nil
	})

	// Each watch handed the bad values to fn as errors (the newest at
	// least: values that arrive while fn is busy are coalesced).
	for i := range recs {
		errs, revs := recs[i].invalid()
		if len(errs) == 0 || revs[len(revs)-1] != good.KVRevision+3 {
			t.Errorf("replica %d was handed errors for revisions %v, want the last at %d", i, revs, good.KVRevision+3)
		}
		for _, err := range errs {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("replica %d: error %v, want ErrInvalid", i, err)
			}
		}
	}

	// Current tells the bad value's revision, so that it can be replaced.
	cur, err := s.Current(ctx)
	if !errors.Is(err, ErrInvalid) || cur.KVRevision != good.KVRevision+3 {
		t.Fatalf("Current = revision %d, %v; want ErrInvalid and revision %d", cur.KVRevision, err, good.KVRevision+3)
	}
	// And says it as the watch did: a manager that read the value both ways
	// (at start and from its watch) records it once, not twice.
	for i := range recs {
		if errs, _ := recs[i].invalid(); errs[len(errs)-1].Error() != err.Error() {
			t.Errorf("replica %d was handed %q; Current says %q", i, errs[len(errs)-1], err)
		}
	}
	next, err := s.Put(ctx, policySet(3), cur.KVRevision)
	if err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, next.KVRevision, ws...)
	for i := range recs {
		if got, want := recs[i].kvRevisions(), []uint64{good.KVRevision, next.KVRevision}; !slices.Equal(got, want) {
			t.Errorf("replica %d delivered %v, want %v", i, got, want)
		}
	}
	// History leaves the bad values out.
	hist, err := s.History(ctx)
	if err != nil || len(hist) != 2 || hist[0].KVRevision != next.KVRevision || hist[1].KVRevision != good.KVRevision {
		t.Errorf("History = %d sets, %v", len(hist), err)
	}
}

// TestPolicyWatchCoalesces: while fn is busy, puts pile up; fn then gets the
// newest, never an older one after a newer.
func TestPolicyWatchCoalesces(t *testing.T) {
	srv := startServer(t, t.TempDir())
	s := newPolicyStore(t, dial(t, srv), StoreOptions{})
	ctx := tctx(t)
	first, err := s.Put(ctx, policySet(0), 0)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var rec recorder
	w, err := s.Watch(ctx, func(set Set, err error) {
		rec.fn(set, err)
		if set.KVRevision == first.KVRevision {
			<-release // a slow compile
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	eventually(t, 10*time.Second, func() error {
		if revs := rec.kvRevisions(); len(revs) == 0 {
			return errors.New("nothing delivered")
		}
		return nil
	})
	last := first
	for i := 1; i <= 20; i++ {
		if last, err = s.Put(ctx, policySet(i), last.KVRevision); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	waitDelivered(t, last.KVRevision, w)
	revs := rec.kvRevisions()
	increasing(t, "watch", revs)
	if len(revs) > 21 {
		t.Errorf("delivered %d sets", len(revs))
	}
	t.Logf("20 puts while busy: delivered %d sets after the first", len(revs)-1)
}

// TestPolicyWatchSurvivesRestart stops the NATS server and starts it again on
// the same store: the set is still there, watchers carry on without
// delivering it twice, and a put after the restart reaches them.
func TestPolicyWatchSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := events.StartEmbedded(dir, events.EmbeddedOptions{Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	admin := newPolicyStore(t, dial(t, srv), StoreOptions{})
	ctx := tctx(t)
	first, err := admin.Put(ctx, policySet(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	recs, ws := watchers(t, srv, 3, first.KVRevision)

	srv.Shutdown()
	startServerAt(t, dir, strings.TrimPrefix(url, "nats://"))

	// The set survived.
	var cur Set
	eventually(t, 10*time.Second, func() error {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		cur, err = admin.Current(c)
		return err
	})
	if cur.Revision != first.Revision || cur.KVRevision != first.KVRevision {
		t.Errorf("after the restart the store holds %s at %d, want %s at %d", cur.Revision, cur.KVRevision, first.Revision, first.KVRevision)
	}
	// Every watcher re-created its watch after reconnecting.
	eventually(t, 10*time.Second, func() error {
		for i, w := range ws {
			if w.Restarts() == 0 {
				return fmt.Errorf("replica %d has not re-created its watch", i)
			}
		}
		return nil
	})
	next, err := admin.Put(ctx, policySet(2), first.KVRevision)
	if err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, next.KVRevision, ws...)
	for i := range recs {
		if got, want := recs[i].kvRevisions(), []uint64{first.KVRevision, next.KVRevision}; !slices.Equal(got, want) {
			t.Errorf("replica %d delivered %v, want %v", i, got, want)
		}
	}
}

// TestPolicyWatchEnds: Stop waits for the watch to end, and a closed
// connection ends it too.
func TestPolicyWatchEnds(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	s := newPolicyStore(t, nc, StoreOptions{})
	w1, err := s.Watch(context.Background(), func(Set, error) {})
	if err != nil {
		t.Fatal(err)
	}
	w1.Stop()
	select {
	case <-w1.Done():
	default:
		t.Error("Done is open after Stop")
	}
	w2, err := s.Watch(context.Background(), func(Set, error) {})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	select {
	case <-w2.Done():
	case <-time.After(10 * time.Second):
		t.Error("the watch goes on after its connection was closed")
	}
	if _, err := s.Watch(context.Background(), nil); err == nil {
		t.Error("Watch with a nil fn succeeded")
	}
}

// BenchmarkPolicyPush measures, over at least 200 pushes on loopback TCP, the
// time from Put being called (and from its acknowledgement) to three replicas
// (each with its own connection, as separate processes would have) all having
// received the new set from their watch. It covers storing and distributing
// only: compiling and testing the set with the decision package, which a
// replica does before activating it, is not included.
//
//	go test -run '^$' -bench BenchmarkPolicyPush ./events/
func BenchmarkPolicyPush(b *testing.B) {
	shipped, err := FromFS(policies.FS(), ".")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		extra int // bytes of data added to the shipped set
	}{
		{"shipped", 0},
		{"256KiB", 256 << 10},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			srv := startServer(b, b.TempDir())
			admin := newPolicyStore(b, dial(b, srv), StoreOptions{})
			got := make(chan uint64, 16)
			var ws []*Watcher
			for range 3 {
				s := newPolicyStore(b, dial(b, srv), StoreOptions{})
				w, err := s.Watch(context.Background(), func(set Set, _ error) { got <- set.KVRevision })
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(w.Stop)
				ws = append(ws, w)
			}
			filler := strings.Repeat("x", c.extra)
			set := func(i int) Set {
				files := maps.Clone(shipped.Files)
				files["bench/data.json"] = fmt.Appendf(nil, `{"push":%d,"filler":%q}`, i, filler)
				return Set{Files: files, Author: "bench", Message: fmt.Sprint("push ", i)}
			}

			samples := max(b.N, 200)
			afterAck := make([]time.Duration, 0, samples)
			afterPut := make([]time.Duration, 0, samples)
			var last uint64
			ctx := context.Background()
			b.ResetTimer()
			for i := range samples {
				next := set(i)
				start := time.Now()
				stored, err := admin.Put(ctx, next, last)
				if err != nil {
					b.Fatal(err)
				}
				acked := time.Now()
				for n := 0; n < 3; {
					select {
					case rev := <-got:
						if rev == stored.KVRevision {
							n++
						}
					case <-time.After(10 * time.Second):
						b.Fatalf("push %d: not on all three replicas after 10s", i)
					}
				}
				done := time.Now()
				last = stored.KVRevision
				afterAck = append(afterAck, done.Sub(acked))
				afterPut = append(afterPut, done.Sub(start))
			}
			b.StopTimer()
			report := func(name string, d []time.Duration) {
				slices.Sort(d)
				b.ReportMetric(float64(d[len(d)/2].Microseconds()), name+"-p50-µs")
				b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), name+"-p99-µs")
			}
			report("ack-to-3", afterAck)
			report("put-to-3", afterPut)
			b.ReportMetric(float64(samples), "pushes")
			data, _, _ := encodeSet(set(0), DefaultMaxFiles)
			b.ReportMetric(float64(len(data)), "B/set")
		})
	}
}
