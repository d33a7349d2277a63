package decisionlog

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/wardenauthz/warden/events"
)

// The load series: the replica's decisions in LoadStep intervals over the
// last LoadWindow, which its heartbeats carry to every replica's Overview.
// The writer goroutine keeps it from the entries it writes, so an entry
// dropped from a full queue is missing from it as from the log.
const (
	LoadStep   = 10 * time.Second
	LoadWindow = 15 * time.Minute
)

const loadIntervals = int(LoadWindow / LoadStep)

// Latency histograms cover 1 µs to a minute with two significant digits;
// a longer decision counts as a minute.
const (
	maxLatencyMicros = int64(time.Minute / time.Microsecond)
	latencyDigits    = 2
)

// interval is one LoadStep of decisions.
type interval struct {
	start             int64 // Unix seconds, a multiple of the step
	decisions, denied uint64
	latency           *hdrhistogram.Histogram // allocated on first use, reset when the slot is reused
}

// load is a ring of intervals indexed by start time. Log.mu guards it.
type load struct {
	// since is the start of the interval the log started in: a series
	// reaches no further back, so that a young replica's chart does not
	// show decisions it never had the chance to make as zeros.
	since int64
	ring  [loadIntervals]interval
}

func stepStart(t time.Time) int64 {
	step := int64(LoadStep / time.Second)
	u := t.Unix()
	return u - u%step
}

// add counts one decision made at t.
func (l *load) add(t time.Time, allow bool, latencyMicros int64) {
	start := stepStart(t)
	iv := &l.ring[(start/int64(LoadStep/time.Second))%int64(loadIntervals)]
	switch {
	case iv.start > start:
		return // older than the window: its slot holds a later interval
	case iv.start < start:
		iv.start, iv.decisions, iv.denied = start, 0, 0
		if iv.latency != nil {
			iv.latency.Reset()
		}
	}
	if iv.latency == nil {
		iv.latency = hdrhistogram.New(1, maxLatencyMicros, latencyDigits)
	}
	iv.decisions++
	if !allow {
		iv.denied++
	}
	_ = iv.latency.RecordValue(min(max(latencyMicros, 1), maxLatencyMicros))
}

// series is the load of the LoadWindow that ends with the interval holding
// now, oldest interval first, from the log's start when that is later.
func (l *load) series(now time.Time) *events.Load {
	step := int64(LoadStep / time.Second)
	last := stepStart(now)
	first := max(last-int64(loadIntervals-1)*step, min(l.since, last))
	n := int((last-first)/step) + 1
	out := &events.Load{
		Start:       time.Unix(first, 0).UTC(),
		End:         now.UTC(),
		StepSeconds: step,
		Decisions:   make([]uint64, n),
		Denied:      make([]uint64, n),
		P50Micros:   make([]int64, n),
		P99Micros:   make([]int64, n),
	}
	for i := range n {
		start := first + int64(i)*step
		iv := &l.ring[(start/step)%int64(loadIntervals)]
		if iv.start != start || iv.decisions == 0 {
			continue
		}
		out.Decisions[i], out.Denied[i] = iv.decisions, iv.denied
		out.P50Micros[i] = iv.latency.ValueAtQuantile(50)
		out.P99Micros[i] = iv.latency.ValueAtQuantile(99)
	}
	return out
}

// Load returns this replica's decisions over the last LoadWindow, in
// LoadStep intervals ending with the current one. Heartbeats carry it.
func (l *Log) Load() *events.Load {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.load.series(time.Now())
}
