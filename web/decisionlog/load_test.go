package decisionlog

import (
	"testing"
	"time"
)

// TestLoadSeries: decisions land in the interval of their time, with their
// count, denials and latency quantiles (within the histogram's two
// significant digits); intervals without decisions are zero; an interval
// slot reused a window later starts afresh; what is older than the window
// is left out.
func TestLoadSeries(t *testing.T) {
	var l load
	now := time.Date(2026, 12, 5, 10, 0, 5, 0, time.UTC) // 5 s into an interval
	// The current interval: 100 decisions, latencies 1..100 µs, every
	// fourth denied.
	for i := range 100 {
		l.add(now.Add(-time.Duration(i)*time.Millisecond), i%4 != 0, int64(i+1))
	}
	// Two minutes ago: one slow denial.
	l.add(now.Add(-2*time.Minute), false, 250_000)
	// Older than the window, in the slot the current interval reuses
	// before it: ignored.
	l.add(now.Add(-LoadWindow-time.Second), true, 5)

	s := l.series(now)
	n := len(s.Decisions)
	if n != loadIntervals || len(s.Denied) != n || len(s.P50Micros) != n || len(s.P99Micros) != n {
		t.Fatalf("series lengths %d %d %d %d, want %d", n, len(s.Denied), len(s.P50Micros), len(s.P99Micros), loadIntervals)
	}
	if want := time.Date(2026, 12, 5, 9, 45, 10, 0, time.UTC); !s.Start.Equal(want) || !s.End.Equal(now) || s.StepSeconds != 10 {
		t.Errorf("start %s end %s step %d, want %s, %s and 10", s.Start, s.End, s.StepSeconds, want, now)
	}
	last := n - 1
	if s.Decisions[last] != 100 || s.Denied[last] != 25 {
		t.Errorf("current interval: %d decisions, %d denied; want 100 and 25", s.Decisions[last], s.Denied[last])
	}
	within := func(got, want int64) bool { return got >= want*99/100 && got <= want*101/100+1 }
	if !within(s.P50Micros[last], 50) || !within(s.P99Micros[last], 99) {
		t.Errorf("current interval: p50 %d µs, p99 %d µs; want 50 and 99", s.P50Micros[last], s.P99Micros[last])
	}
	twoAgo := last - 12
	if s.Decisions[twoAgo] != 1 || s.Denied[twoAgo] != 1 || !within(s.P50Micros[twoAgo], 250_000) || !within(s.P99Micros[twoAgo], 250_000) {
		t.Errorf("two minutes ago: %d/%d p50 %d p99 %d, want 1/1 and 250 ms", s.Decisions[twoAgo], s.Denied[twoAgo], s.P50Micros[twoAgo], s.P99Micros[twoAgo])
	}
	var total uint64
	for _, d := range s.Decisions {
		total += d
	}
	if total != 101 {
		t.Errorf("%d decisions in the window, want 101", total)
	}

	// A window later, the current interval's slot is reused: it counts
	// afresh, and the old decisions are out of the series.
	later := now.Add(LoadWindow)
	l.add(later, true, 7)
	s = l.series(later)
	if s.Decisions[last] != 1 || s.Denied[last] != 0 || !within(s.P99Micros[last], 7) {
		t.Errorf("reused interval: %d decisions, %d denied, p99 %d; want 1, 0, 7", s.Decisions[last], s.Denied[last], s.P99Micros[last])
	}
	if s.Decisions[twoAgo] != 0 {
		t.Errorf("a decision of a window ago is still in the series")
	}
}

// TestLoadSinceStart: a series reaches back to the interval the log
// started in, not further, until the window is full.
func TestLoadSinceStart(t *testing.T) {
	started := time.Date(2026, 12, 5, 10, 0, 3, 0, time.UTC)
	l := load{since: stepStart(started)}
	l.add(started.Add(25*time.Second), false, 40)
	s := l.series(started.Add(25 * time.Second))
	if len(s.Decisions) != 3 || !s.Start.Equal(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)) || s.Decisions[2] != 1 || s.Denied[2] != 1 {
		t.Errorf("25 s after the start: start %s, decisions %v, denied %v; want 3 intervals from 10:00:00, the last with the denial", s.Start, s.Decisions, s.Denied)
	}
	if s := l.series(started.Add(time.Hour)); len(s.Decisions) != loadIntervals {
		t.Errorf("an hour after the start: %d intervals, want the whole window's %d", len(s.Decisions), loadIntervals)
	}
}

// TestLoadFromRecord: Record feeds the series that Load reports.
func TestLoadFromRecord(t *testing.T) {
	l := New(nil, Options{})
	defer l.Close()
	l.Record(Entry{Time: time.Now(), Allow: false, LatencyMicros: 300})
	l.Record(Entry{Time: time.Now(), Allow: true, LatencyMicros: 300})
	eventually(t, "both decisions in the load", func() bool {
		s := l.Load()
		var decisions, denied uint64
		for i := range s.Decisions {
			decisions += s.Decisions[i]
			denied += s.Denied[i]
		}
		return decisions == 2 && denied == 1
	})
}
