// Package decisionlog records every decision a replica answers, off the
// request path: a request goroutine only queues a small Entry (Record);
// one writer goroutine writes entries as JSON lines, keeps the most recent
// ones for GET /v1/decisions/recent, and hands them to the live decision
// streams of the admin UI (Subscribe). web records an entry for each
// answered check and serves the history and the streams; cmd chooses the
// output (decision_log.output).
package decisionlog

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardenauthz/warden/decision"
)

// Entry is one entry of the decision log: what was asked, what was
// answered, by which policy revision on which replica, and how long it took.
// It never holds the token or any claim but the subject, and of the resource
// only its "type" and "id".
type Entry struct {
	DecisionID     string          `json:"decision_id"`
	Time           time.Time       `json:"time"`
	Subject        string          `json:"subject"`
	Action         string          `json:"action"`
	ResourceType   string          `json:"resource_type"`
	ResourceID     string          `json:"resource_id"`
	Allow          bool            `json:"allow"`
	Reason         decision.Reason `json:"reason"`
	PolicyRevision string          `json:"policy_revision"`
	// LatencyMicros is the time Warden took to verify the token and decide
	// the request, in microseconds. Every check of one POST /v1/decisions
	// carries the time of the whole request, as
	// warden_decision_duration_seconds observes it.
	LatencyMicros int64  `json:"latency_us"`
	Replica       string `json:"replica"`
	// RequestID is the caller's X-Request-ID, when it sent one: the thread
	// from a gateway's access log to this entry.
	RequestID string `json:"request_id,omitempty"`
}

// logTimeLayout is RFC 3339 with exactly three fractional digits, so that
// the entries of a JSON lines file sort as text.
const logTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON encodes the entry with its time in UTC, to the millisecond.
func (e Entry) MarshalJSON() ([]byte, error) {
	// plain has Entry's fields without this method; the outer Time
	// shadows the embedded one.
	type plain Entry
	return json.Marshal(struct {
		plain
		Time string `json:"time"`
	}{plain(e), e.Time.UTC().Format(logTimeLayout)})
}

// Options are the optional settings of a Log.
type Options struct {
	// Buffer is how many entries may wait for the writer goroutine; an
	// entry that finds it full is dropped and counted. Default 4096.
	Buffer int
	// History is how many recent entries are kept in memory for
	// GET /v1/decisions/recent and for streams that resume. Default 1000.
	History int
	// Replica names this replica in every entry.
	Replica string
	// Logger receives write errors of the JSON lines output. Default:
	// discarded (Warden's packages log only through the logger their
	// caller passes).
	Logger *slog.Logger
}

// Default sizes of a Log.
const (
	DefaultBuffer  = 4096
	DefaultHistory = 1000
)

// subscriberBuffer is how many entries a live stream may fall behind before
// it misses some; the stream then tells its client how many it missed.
const subscriberBuffer = 256

// writeErrorLogInterval bounds how often a failing output is logged.
const writeErrorLogInterval = time.Minute

// Log records every decision off the request path. A request
// goroutine only copies a small Entry into a bounded queue, or drops it
// and counts the drop when the queue is full; one writer goroutine encodes
// the entries, writes them as JSON lines to the output (if any), keeps the
// most recent ones and hands them to live subscribers.
type Log struct {
	queue   chan Entry
	replica string
	logger  *slog.Logger

	// Only the writer goroutine touches these.
	output       io.Writer
	out          *bufio.Writer // nil without an output
	lastErrorLog time.Time

	dropped     atomic.Uint64
	writeErrors atomic.Uint64
	decisions   atomic.Uint64 // every entry recorded, dropped ones too
	denied      atomic.Uint64

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error // the final flush's, set before done is closed

	mu            sync.Mutex // guards everything below
	history       []Entry    // a ring: head is the next slot written
	head, count   int
	subs          map[*Subscription]struct{}
	streamsClosed bool
	load          load
}

// New starts a decision log writing JSON lines to out, or to
// nothing when out is nil. Close stops it; the caller owns out and closes
// it after Close.
func New(out io.Writer, opts Options) *Log {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		queue:   make(chan Entry, opts.Buffer),
		replica: opts.Replica,
		logger:  opts.Logger,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		history: make([]Entry, opts.History),
		subs:    map[*Subscription]struct{}{},
	}
	l.load.since = stepStart(time.Now())
	if out != nil {
		l.output = out
		l.out = bufio.NewWriterSize(out, 64<<10)
	}
	go l.run()
	return l
}

// Record queues e for the writer goroutine without ever blocking: when the
// queue is full the entry is dropped and counted. It is the only part of
// the decision log that runs on the request path.
func (l *Log) Record(e Entry) {
	l.decisions.Add(1)
	if !e.Allow {
		l.denied.Add(1)
	}
	select {
	case l.queue <- e:
	default:
		l.dropped.Add(1)
	}
}

// Counts returns how many decisions this replica has made since it
// started, and how many of them denied. Heartbeats carry them, so that the
// fleet's decision and deny rates can be told (events.Replica).
func (l *Log) Counts() (decisions, denied uint64) {
	return l.decisions.Load(), l.denied.Load()
}

// Dropped returns how many entries were dropped because the queue was full.
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// WriteErrors returns how many times writing the output failed.
func (l *Log) WriteErrors() uint64 { return l.writeErrors.Load() }

// CloseStreams ends every live Subscription and refuses new ones. The HTTP
// server calls it when it starts shutting down (http.Server.RegisterOnShutdown)
// so that open decision streams, which never go idle on their own, do not
// hold up Shutdown; decisions still in flight keep being written.
func (l *Log) CloseStreams() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.streamsClosed = true
	for sub := range l.subs {
		close(sub.done)
		delete(l.subs, sub)
	}
}

// Close ends the streams, writes every queued entry, flushes the output and
// stops the writer goroutine. Entries recorded after Close are dropped. It
// returns the error of the final flush, if any.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.CloseStreams()
		close(l.stop)
	})
	<-l.done
	return l.closeErr
}

// writerPause is how long the writer goroutine rests after a batch. While
// it rests, entries wait in the queue and recording one wakes nobody: on a
// busy replica the writer runs at most 1/writerPause times a second
// instead of once per decision, and a request pays for a channel send only.
// An idle log waits on the queue itself, so the first entry after a quiet
// spell is written at once.
const writerPause = 5 * time.Millisecond

// run is the writer goroutine. It takes what the queue holds, writes it,
// flushes the output, and rests.
func (l *Log) run() {
	defer close(l.done)
	pause := time.NewTimer(writerPause)
	for {
		select {
		case e := <-l.queue:
			l.write(e)
		case <-l.stop:
			l.closeErr = l.drain()
			return
		}
		l.drain()
		pause.Reset(writerPause)
		select {
		case <-pause.C:
		case <-l.stop:
			l.closeErr = l.drain()
			return
		}
	}
}

// drain writes every entry the queue holds now and flushes the output.
func (l *Log) drain() error {
	for {
		select {
		case e := <-l.queue:
			l.write(e)
		default:
			return l.flush()
		}
	}
}

// write hands one entry to every sink. It encodes the entry only when the
// output or a subscriber wants it: with neither, keeping it in the history
// costs no encoding.
func (l *Log) write(e Entry) {
	e.Replica = l.replica
	var line []byte
	encode := func() []byte {
		if line == nil {
			// Entry's fields cannot fail to encode.
			line, _ = json.Marshal(e)
		}
		return line
	}
	if l.out != nil {
		_, err := l.out.Write(encode())
		if err == nil {
			err = l.out.WriteByte('\n')
		}
		if err != nil {
			l.outputFailed(err)
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.history[l.head] = e
	l.head = (l.head + 1) % len(l.history)
	l.count = min(l.count+1, len(l.history))
	l.load.add(e.Time, e.Allow, e.LatencyMicros)
	for sub := range l.subs {
		if !sub.filter.Match(e) {
			continue
		}
		select {
		case sub.records <- Delivery{Entry: e, JSON: encode()}:
		default:
			sub.missed.Add(1)
		}
	}
}

// flush writes what the output buffer holds.
func (l *Log) flush() error {
	if l.out == nil || l.out.Buffered() == 0 {
		return nil
	}
	err := l.out.Flush()
	if err != nil {
		l.outputFailed(err)
	}
	return err
}

// outputFailed counts and logs (at most once a minute) a failed write. A
// bufio.Writer keeps its first error forever, so the buffer is reset: the
// entries it held are lost, later ones are tried again.
func (l *Log) outputFailed(err error) {
	n := l.writeErrors.Add(1)
	if n == 1 || time.Since(l.lastErrorLog) >= writeErrorLogInterval {
		l.lastErrorLog = time.Now()
		l.logger.Error("decision log: writing the output failed; entries are lost until it works again", "err", err, "failures", n)
	}
	l.out.Reset(l.output)
}

// Delivery is an entry on its way to a subscriber, with its JSON encoding.
type Delivery struct {
	Entry Entry
	JSON  []byte
}

// Filter selects entries by subject and action, exactly or by a
// case-insensitive substring (held in lower case), and by allow when
// ByAllow; an empty field selects everything.
type Filter struct {
	Subject, Action                 string
	SubjectContains, ActionContains string
	Allow, ByAllow                  bool
}

// Match reports whether e is selected.
func (f Filter) Match(e Entry) bool {
	return (f.Subject == "" || f.Subject == e.Subject) &&
		(f.Action == "" || f.Action == e.Action) &&
		(f.SubjectContains == "" || strings.Contains(strings.ToLower(e.Subject), f.SubjectContains)) &&
		(f.ActionContains == "" || strings.Contains(strings.ToLower(e.Action), f.ActionContains)) &&
		(!f.ByAllow || f.Allow == e.Allow)
}

// Subscription is one live reader of the log. The writer goroutine sends it
// matching records without blocking; when records is full, the record is
// counted in missed instead.
type Subscription struct {
	filter  Filter
	records chan Delivery
	done    chan struct{} // closed by CloseStreams or Unsubscribe
	missed  atomic.Uint64
}

// Deliveries are the matching entries, as they are written.
func (sub *Subscription) Deliveries() <-chan Delivery { return sub.records }

// Done is closed when the subscription ends (CloseStreams, Unsubscribe).
func (sub *Subscription) Done() <-chan struct{} { return sub.done }

// TakeMissed returns how many entries the reader missed since the last
// call (it fell more than subscriberBuffer behind), and resets the count.
func (sub *Subscription) TakeMissed() uint64 { return sub.missed.Swap(0) }

// Subscribe registers a live reader. With after set (a decision id the
// reader has seen), it also returns the matching entries of the history
// recorded after that one, oldest first, taken under the same lock as the
// registration so that nothing is lost or repeated between the two. It
// returns nil once CloseStreams has been called.
func (l *Log) Subscribe(f Filter, after string) (*Subscription, []Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streamsClosed {
		return nil, nil
	}
	sub := &Subscription{filter: f, records: make(chan Delivery, subscriberBuffer), done: make(chan struct{})}
	l.subs[sub] = struct{}{}
	if after == "" {
		return sub, nil
	}
	// Newest first, until the entry the reader saw. Ids are UUIDv7 and
	// sort by time, so when that entry has left the history every entry
	// with a greater id is newer; among entries of the same moment the
	// queue order can differ from the id order, which is why a remembered
	// entry is looked for by position first.
	var backlog []Entry
	found := false
	l.each(func(e Entry) bool {
		if e.DecisionID == after {
			found = true
			return false
		}
		if f.Match(e) {
			backlog = append(backlog, e)
		}
		return true
	})
	if !found {
		backlog = slices.DeleteFunc(backlog, func(e Entry) bool { return e.DecisionID <= after })
	}
	slices.Reverse(backlog)
	return sub, backlog
}

// unsubscribe ends a Subscription; it is a no-op if CloseStreams already
// ended it.
func (l *Log) Unsubscribe(sub *Subscription) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.subs[sub]; ok {
		close(sub.done)
		delete(l.subs, sub)
	}
}

// Recent returns up to limit entries of the history that match f, newest
// first.
func (l *Log) Recent(f Filter, limit int) []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Entry{}
	l.each(func(e Entry) bool {
		if f.Match(e) {
			out = append(out, e)
		}
		return len(out) < limit
	})
	return out
}

// each calls yield on the history, newest first, until it returns false.
// The caller holds l.mu.
func (l *Log) each(yield func(Entry) bool) {
	n := len(l.history)
	for i := range l.count {
		if !yield(l.history[(l.head-1-i+n)%n]) {
			return
		}
	}
}

// HistorySize is how many entries the history holds at most.
func (l *Log) HistorySize() int { return len(l.history) }
