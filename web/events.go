package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wardenauthz/warden/events"
)

// Publisher publishes permission-change events to the stream.
type Publisher interface {
	PublishAck(ctx context.Context, e events.Event) (events.Ack, error)
}

// Stream is this replica's view of the event stream.
type Stream interface {
	Status() events.Status
	WaitFor(ctx context.Context, seq uint64) error
	Ready() error
}

// Ledger lists the revocation state this replica enforces.
type Ledger interface {
	Entries() []events.Entry
}

// Fleet is what the replicas' heartbeats say about the whole deployment.
type Fleet interface {
	Replicas() []events.Replica
	Enforced(seq uint64) (applied, total int)
}

var (
	_ Publisher = (*events.Publisher)(nil)
	_ Stream    = (*events.Consumer)(nil)
	_ Ledger    = (*events.Ledger)(nil)
	_ Fleet     = (*events.Fleet)(nil)
)

// Events are the parts of the permission-change feed the HTTP API uses.
// All four are required together.
type Events struct {
	Publisher Publisher
	Stream    Stream
	Ledger    Ledger
	Fleet     Fleet
	// MinSeqWait bounds how long a decision carrying Warden-Min-Seq waits
	// for this replica to apply that sequence. Default 250ms.
	MinSeqWait time.Duration
	// ReplicaID names this replica in /v1/status.
	ReplicaID string
}

// maxEnforceWait bounds ?wait= on POST /v1/events.
const maxEnforceWait = 10 * time.Second

// PublishResponse is the answer to POST /v1/events.
type PublishResponse struct {
	Seq       uint64       `json:"seq"`
	ID        string       `json:"id"`
	Duplicate bool         `json:"duplicate"`
	Event     events.Event `json:"event"`
	// Enforced is reported when the request asked to wait (?wait=500ms):
	// how many live replicas had applied the event, of how many, and when
	// the count was taken.
	Enforced *Enforcement `json:"enforced,omitempty"`
}

// Enforcement says how many live replicas had applied an event, of how
// many, and when the count was taken.
type Enforcement struct {
	Applied   int   `json:"applied"`
	Total     int   `json:"total"`
	ElapsedMS int64 `json:"elapsed_ms"`
}

// handlePublishEvent answers POST /v1/events: validate, publish, answer
// with the stream sequence. The actor is the admin token's subject, whatever
// the body says, so the audit trail names who really made the change. With
// ?wait=DURATION it also waits, at most that long, until every live replica
// reports the event applied.
func (s *server) handlePublishEvent() gin.HandlerFunc {
	return func(c *gin.Context) {
		var wait time.Duration
		if w := c.Query("wait"); w != "" {
			d, err := time.ParseDuration(w)
			if err != nil || d < 0 || d > maxEnforceWait {
				s.writeError(c, errorf(codeInvalidRequest, fmt.Sprintf("wait=%q: want a duration from 0 to %v, e.g. wait=500ms", w, maxEnforceWait)))
				return
			}
			wait = d
		}
		// The event is read by the events package's own strict parser,
		// the reference for every publisher (docs/events.md).
		body, err := s.readBody(c, s.opts.MaxBodyBytes, "application/json")
		if err != nil {
			s.writeError(c, err)
			return
		}
		e, err := events.Decode(body)
		if err != nil {
			s.writeError(c, errorf(codeInvalidRequest, err.Error()))
			return
		}
		e.Actor = admin(c).Subject
		ctx := c.Request.Context()
		start := time.Now()
		ack, err := s.events.Publisher.PublishAck(ctx, e)
		if errors.Is(err, events.ErrInvalidEvent) {
			s.writeError(c, errorf(codeInvalidRequest, err.Error()))
			return
		}
		if err != nil {
			conn := s.events.Stream.Status().Connection
			s.writeError(c, errorf(codeUnavailable, "the event stream did not take the event (NATS connection "+conn+"): "+err.Error()))
			return
		}
		resp := PublishResponse{Seq: ack.Seq, ID: ack.Event.ID, Duplicate: ack.Duplicate, Event: ack.Event}
		if wait > 0 {
			resp.Enforced = s.awaitEnforced(ctx, ack.Seq, start, wait)
		}
		c.JSON(http.StatusOK, resp)
	}
}

// awaitEnforced polls the fleet until every live replica has applied seq or
// wait has passed.
func (s *server) awaitEnforced(ctx context.Context, seq uint64, start time.Time, wait time.Duration) *Enforcement {
	deadline := start.Add(wait)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		applied, total := s.events.Fleet.Enforced(seq)
		now := time.Now()
		if (total > 0 && applied == total) || now.After(deadline) || ctx.Err() != nil {
			return &Enforcement{Applied: applied, Total: total, ElapsedMS: now.Sub(start).Milliseconds()}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// handleRevocations answers GET /v1/revocations: the ledger entries this
// replica enforces, newest first; ?subject= keeps one subject's.
func (s *server) handleRevocations() gin.HandlerFunc {
	return func(c *gin.Context) {
		q, err := strictQuery(c, "subject")
		if err != nil {
			s.writeError(c, err)
			return
		}
		entries := s.events.Ledger.Entries()
		if subject := q.Get("subject"); subject != "" {
			entries = slices.DeleteFunc(entries, func(e events.Entry) bool { return e.Subject != subject })
		}
		if entries == nil {
			entries = []events.Entry{}
		}
		c.JSON(http.StatusOK, gin.H{"entries": entries, "now": time.Now().UTC()})
	}
}

// handleStatus answers GET /v1/status.
func (s *server) handleStatus() gin.HandlerFunc {
	return func(c *gin.Context) {
		st := gin.H{
			"replica_id":      s.events.ReplicaID,
			"policy_revision": s.engine.Revision(),
			"ready":           s.ready() == nil,
			"events":          s.events.Stream.Status(),
		}
		if s.policies != nil {
			st["policies"] = s.policies.Status()
		}
		c.JSON(http.StatusOK, st)
	}
}

// handleReplicas answers GET /v1/replicas: the fleet as its heartbeats
// describe it.
func (s *server) handleReplicas() gin.HandlerFunc {
	return func(c *gin.Context) {
		replicas := s.events.Fleet.Replicas()
		if replicas == nil {
			replicas = []events.Replica{}
		}
		c.JSON(http.StatusOK, gin.H{"replicas": replicas})
	}
}

// minSeqHeader lets a caller that just published a change read its own
// write: the decision waits until this replica has applied that sequence.
const minSeqHeader = "Warden-Min-Seq"

// awaitMinSeq honours Warden-Min-Seq. It returns an *APIError when the header
// is malformed (400) or the replica is still behind after MinSeqWait (503).
func (s *server) awaitMinSeq(c *gin.Context) error {
	h := c.GetHeader(minSeqHeader)
	if h == "" {
		return nil
	}
	seq, err := strconv.ParseUint(h, 10, 64)
	if err != nil {
		return errorf(codeInvalidRequest, minSeqHeader+" must be a stream sequence number, e.g. 42")
	}
	if s.events == nil {
		return errorf(codeBehind, "this replica follows no event stream")
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.events.MinSeqWait)
	defer cancel()
	if err := s.events.Stream.WaitFor(ctx, seq); err != nil {
		applied := s.events.Stream.Status().AppliedSeq
		return errorf(codeBehind, fmt.Sprintf("this replica has applied sequence %d, not yet %d; retry or ask another replica", applied, seq))
	}
	return nil
}
