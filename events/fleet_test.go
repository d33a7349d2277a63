package events

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestFleet runs three replicas with heartbeats and a watcher: an event is
// seen enforced on 3/3 replicas, a replica that leaves disappears, and one
// that stops beating is dropped after three missed beats.
func TestFleet(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	ensureStream(t, nc)

	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	fleet, err := NewFleet(nc, FleetOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })

	const interval = 5 * time.Minute // beats after events only: nothing here waits for the ticker
	var beats []*Heartbeat
	var reps []*Consumer
	for i := range 3 {
		r := replica(t, srv, ConsumerOptions{ReplicaID: fmt.Sprint("replica-", i)})
		reps = append(reps, r)
		hb, err := NewHeartbeat(dial(t, srv), r, HeartbeatOptions{
			Interval: interval, MinGap: time.Millisecond,
			PolicyRevision: func() string { return "rev-" + fmt.Sprint(i) },
			Decisions:      func() (uint64, uint64) { return uint64(10 * i), uint64(i) },
			Load:           func() *Load { return loadOf(uint64(10 * i)) },
		})
		if err != nil {
			t.Fatal(err)
		}
		beats = append(beats, hb)
		t.Cleanup(hb.Close)
	}
	waitReady(t, reps...)

	seq := publish(t, newPublisher(t, nc), Event{Type: TypeRolesChanged, Subject: "alice"})
	eventually(t, 10*time.Second, func() error {
		if n, total := fleet.Enforced(seq); n != 3 || total != 3 {
			return fmt.Errorf("enforced on %d/%d replicas", n, total)
		}
		return nil
	})
	got := fleet.Replicas()
	for i, r := range got {
		if r.ID != fmt.Sprint("replica-", i) || r.AppliedSeq != seq || r.Lag != 0 || r.PolicyRevision != fmt.Sprint("rev-", i) ||
			r.Decisions != uint64(10*i) || r.Denied != uint64(i) {
			t.Errorf("replica %d: %+v", i, r)
		}
		if r.Load == nil || r.Load.Decisions[1] != uint64(10*i) || r.Load.P99Micros[1] != 900 || !r.Load.Start.Equal(loadOf(0).Start) {
			t.Errorf("replica %d: load %+v, want its beat's", i, r.Load)
		}
	}

	beats[2].Close()
	eventually(t, 5*time.Second, func() error {
		if n := len(fleet.Replicas()); n != 2 {
			return fmt.Errorf("%d replicas after one left, want 2", n)
		}
		return nil
	})

	// Three missed beats: the watcher's clock moves, the replicas stay
	// silent (their interval is minutes).
	mu.Lock()
	clock = clock.Add(3*interval - time.Second)
	mu.Unlock()
	if n := len(fleet.Replicas()); n != 2 {
		t.Errorf("%d replicas just before three missed beats, want 2", n)
	}
	mu.Lock()
	clock = clock.Add(2 * time.Second)
	mu.Unlock()
	if n := len(fleet.Replicas()); n != 0 {
		t.Errorf("%d replicas after three missed beats, want 0", n)
	}

	// A beat whose load is malformed (series of different lengths) is
	// kept without its load.
	ragged := loadOf(1)
	ragged.P99Micros = ragged.P99Micros[:1]
	withBadLoad, _ := json.Marshal(Beat{V: 1, Replica: "replica-z", IntervalMS: 1000, Load: ragged})
	if err := nc.Publish(ReplicasSubjectPrefix+"replica-z", withBadLoad); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if got := fleet.Replicas(); len(got) != 1 || got[0].ID != "replica-z" || got[0].Load != nil {
			return fmt.Errorf("replicas %+v, want replica-z without a load", got)
		}
		return nil
	})
	mu.Lock()
	clock = clock.Add(time.Hour)
	mu.Unlock()

	// Malformed beats and beats under another replica's subject are ignored.
	bad, _ := json.Marshal(Beat{V: 1, Replica: "replica-0", IntervalMS: 1000})
	for subject, data := range map[string][]byte{
		ReplicasSubjectPrefix + "replica-x": bad,
		ReplicasSubjectPrefix + "replica-y": []byte("not json"),
	} {
		if err := nc.Publish(subject, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if n := fleet.bad.Load(); n != 3 {
			return fmt.Errorf("%d bad beats, want 3 (one of them kept without its load)", n)
		}
		return nil
	})
	if n := len(fleet.Replicas()); n != 0 {
		t.Errorf("bad beats added replicas: %+v", fleet.Replicas())
	}
}

// TestFleetRates checks the decision and deny rates the fleet derives from
// the counters in a replica's beats.
func TestFleetRates(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	fleet, err := NewFleet(nc, FleetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })

	t0 := time.Now().UTC()
	steps := []struct {
		name              string
		after             time.Duration // beat time after t0
		decisions, denied uint64
		rate, denyRate    float64
	}{
		{"first beat: nothing to measure against", 0, 100, 10, 0, 0},
		{"200ms later: too close to measure", 200 * time.Millisecond, 150, 10, 0, 0},
		{"2s after the first: measured from it", 2 * time.Second, 500, 110, 200, 50},
		{"100ms later: the last rate stands", 2100 * time.Millisecond, 900, 110, 200, 50},
		{"1.5s after the last measure", 3500 * time.Millisecond, 1400, 410, 600, 200},
		{"counters went back (restart)", 4 * time.Second, 3, 0, 0, 0},
		{"measured again after the restart", 6 * time.Second, 203, 100, 100, 50},
	}
	for _, st := range steps {
		data, _ := json.Marshal(Beat{V: 1, Replica: "r1", IntervalMS: 60000, Time: t0.Add(st.after),
			Decisions: st.decisions, Denied: st.denied, AppliedSeq: uint64(st.after)})
		if err := nc.Publish(ReplicasSubjectPrefix+"r1", data); err != nil {
			t.Fatal(err)
		}
		// AppliedSeq tells the beats apart, so the test knows this one arrived.
		eventually(t, 5*time.Second, func() error {
			if rs := fleet.Replicas(); len(rs) != 1 || rs[0].AppliedSeq != uint64(st.after) {
				return fmt.Errorf("%s: beat not seen yet: %+v", st.name, rs)
			}
			return nil
		})
		r := fleet.Replicas()[0]
		if r.Decisions != st.decisions || r.Denied != st.denied || r.DecisionRate != st.rate || r.DenyRate != st.denyRate {
			t.Errorf("%s: decisions %d denied %d rate %v deny rate %v, want %d %d %v %v",
				st.name, r.Decisions, r.Denied, r.DecisionRate, r.DenyRate, st.decisions, st.denied, st.rate, st.denyRate)
		}
	}
}

// loadOf is a load of two intervals, the second with n decisions.
func loadOf(n uint64) *Load {
	return &Load{
		Start: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), StepSeconds: 10,
		Decisions: []uint64{0, n}, Denied: []uint64{0, n / 2}, P50Micros: []int64{0, 100}, P99Micros: []int64{0, 900},
	}
}
