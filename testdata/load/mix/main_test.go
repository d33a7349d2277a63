package main

import (
	"math"
	"slices"
	"testing"
)

// The draw is the mix the issue describes, and the same for a seed.
func TestDraw(t *testing.T) {
	const users, n = 1000, 50000
	reqs := draw(14, users, n)
	if !slices.Equal(reqs, draw(14, users, n)) {
		t.Fatal("two draws from one seed differ")
	}
	if slices.Equal(reqs[:100], draw(15, users, n)[:100]) {
		t.Fatal("two seeds drew the same requests")
	}
	var reads, own int
	ids := map[int]bool{}
	for _, r := range reqs {
		if r.User < 0 || r.User >= users || r.Owner < 0 || r.Owner >= users || r.ID < 0 || r.ID >= 1_000_000 {
			t.Fatalf("out of range: %+v", r)
		}
		if r.Action == "orders:read" {
			reads++
		} else if r.Action != "orders:approve" {
			t.Fatalf("action %q", r.Action)
		}
		if r.Owner == r.User {
			own++
		}
		ids[r.ID] = true
	}
	near := func(got int, want float64) bool { return math.Abs(float64(got)/n-want) < 0.01 }
	if !near(reads, 2.0/3) || !near(own, 0.25) || len(ids) < n*97/100 {
		t.Errorf("reads %d, own %d, distinct ids %d of %d: want about 2/3, 1/4 and nearly all", reads, own, len(ids), n)
	}
}
