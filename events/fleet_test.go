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
	nc := dial(t, srv.ClientURL())
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
		r := replica(t, srv.ClientURL(), ConsumerOptions{ReplicaID: fmt.Sprint("replica-", i)})
		reps = append(reps, r)
		hb, err := NewHeartbeat(dial(t, srv.ClientURL()), r, HeartbeatOptions{
			Interval: interval, MinGap: time.Millisecond,
			PolicyRevision: func() string { return "rev-" + fmt.Sprint(i) },
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
		if r.ID != fmt.Sprint("replica-", i) || r.AppliedSeq != seq || r.Lag != 0 || r.PolicyRevision != fmt.Sprint("rev-", i) {
			t.Errorf("replica %d: %+v", i, r)
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
		if n := fleet.BadBeats(); n != 2 {
			return fmt.Errorf("%d bad beats, want 2", n)
		}
		return nil
	})
	if n := len(fleet.Replicas()); n != 0 {
		t.Errorf("bad beats added replicas: %+v", fleet.Replicas())
	}
}
