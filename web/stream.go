package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/web/decisionlog"
)

// streamAction is how the admin policy sees a request to watch the stream,
// whether it comes with a bearer token or a ticket.
const streamAction = "GET /v1/decisions/stream"

// streamWriteTimeout bounds one write to a stream's client. The server's
// WriteTimeout would end every stream after a few seconds, so each write
// sets its own deadline instead: a client that stops reading is dropped, its
// slot freed.
const streamWriteTimeout = 10 * time.Second

// defaultRecentLimit is how many entries GET /v1/decisions/recent returns
// without ?limit.
const defaultRecentLimit = 100

// handleStreamTicket answers POST /v1/decisions/stream/tickets (admin): a
// single-use ticket that opens one decision stream within 30 seconds. The
// admin policy must allow the caller the stream itself as well, so a ticket
// never grants more than its holder's token would.
func (s *server) handleStreamTicket() gin.HandlerFunc {
	return func(c *gin.Context) {
		cl := admin(c)
		if err := s.admit(c.Request.Context(), cl, streamAction, nil); err != nil {
			s.writeError(c, err)
			return
		}
		ticket, err := s.tickets.issue(cl)
		if err != nil {
			s.writeError(c, errorf(codeUnavailable, err.Error()+"; use them or wait 30 seconds"))
			return
		}
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, gin.H{"ticket": ticket, "expires_in": int(ticketTTL / time.Second)})
	}
}

// streamAuth guards GET /v1/decisions/stream. A ?ticket= is redeemed (401
// when it is unknown, expired or used); without one, the request needs an
// admin bearer token like the rest of the admin API. An admin token in the
// URL is never looked at: URLs end up in logs and browser history.
func (s *server) streamAuth(c *gin.Context) {
	ticket := c.Query("ticket")
	if ticket == "" {
		if s.token(c, "") == "" {
			s.writeError(c, errorf(codeUnauthorized, "decision stream: add ?ticket= from POST /v1/decisions/stream/tickets, or send an admin token as Authorization: Bearer <token> (never in the URL)"))
			return
		}
		// requireAdmin calls the handler itself once the token passes.
		s.requireAdmin(c)
		return
	}
	cl, ok := s.tickets.redeem(ticket)
	if !ok {
		s.writeError(c, errorf(codeUnauthorized, "stream ticket is invalid, expired or already used; get a new one with POST /v1/decisions/stream/tickets"))
		return
	}
	// The ticket holds the token it was traded for; the admin may have been
	// demoted, disabled or logged out since, or the token expired.
	if !s.opts.Now().Before(cl.ExpiresAt) {
		s.writeError(c, errorf(codeUnauthorized, "the admin token this ticket was traded for has expired; sign in again"))
		return
	}
	if err := s.admit(c.Request.Context(), cl, streamAction, nil); err != nil {
		s.writeError(c, err)
		return
	}
	c.Set(adminKey, cl)
	c.Next()
}

// handleStream answers GET /v1/decisions/stream: server-sent events, one
// "decision" event per decision-log entry that matches the filters
// (?subject, ?action, ?allow=true|false), with the entry's decision id as
// the event id. A Last-Event-ID header (or ?last_event_id) first replays
// what the recent history holds after that entry. An idle stream sends a
// comment every StreamHeartbeat; a subscriber that falls behind gets a
// "missed" event saying how many entries it lost.
//
// A stream lives no longer than the admin token that opened it (directly or
// through a ticket): it ends when that token expires, and when the admin
// policy, asked again at every heartbeat, no longer allows it (the admin was
// demoted or revoked). It also ends when the client goes or the server shuts
// down. Warden says why in a last "end" event, so a client knows whether to
// sign in again before it reconnects.
func (s *server) handleStream() gin.HandlerFunc {
	return func(c *gin.Context) {
		q, filter, err := logQuery(c, "ticket", "last_event_id")
		if err != nil {
			s.writeError(c, err)
			return
		}
		after := c.GetHeader("Last-Event-ID")
		if q.Has("last_event_id") {
			after = q.Get("last_event_id")
		}
		if after != "" {
			if _, err := uuid.Parse(after); err != nil {
				s.writeError(c, errorf(codeInvalidRequest, "last event id "+strconv.Quote(after)+" is not a decision id"))
				return
			}
		}
		watcher := admin(c)
		release, err := s.takeStreamSlot(watcher)
		if err != nil {
			s.writeError(c, err)
			return
		}
		defer release()
		sub, backlog := s.decisionLog.Subscribe(filter, after)
		if sub == nil {
			s.writeError(c, errorf(codeUnavailable, "the server is shutting down"))
			return
		}
		defer s.decisionLog.Unsubscribe(sub)

		s.logger.Info("decision stream opened", "admin", watcher.Subject)

		h := c.Writer.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back
		c.Status(http.StatusOK)
		sw := &sseWriter{w: c.Writer, rc: http.NewResponseController(c.Writer)}
		// The headers go out now: an EventSource is open once it has them,
		// and by then the subscription exists, so a decision made after
		// "open" is never missed.
		for _, e := range backlog {
			sw.event(e.DecisionID, "decision", mustJSON(e))
		}
		if sw.flush() != nil {
			return
		}

		heartbeat := time.NewTicker(s.opts.StreamHeartbeat)
		defer heartbeat.Stop()
		expiry := time.NewTimer(watcher.ExpiresAt.Sub(s.opts.Now()))
		defer expiry.Stop()
		ctx := c.Request.Context()
		end := func(reason string) {
			s.logger.Info("decision stream closed", "admin", watcher.Subject, "reason", reason)
			if reason != "client_gone" {
				sw.event("", "end", fmt.Appendf(nil, `{"reason":%q}`, reason))
				sw.flush()
			}
		}
		failures := 0 // admin policy evaluations in a row that failed
		for {
			select {
			case <-ctx.Done():
				end("client_gone")
				return
			case <-sub.Done():
				end("shutting_down")
				return
			case <-expiry.C:
				end("token_expired")
				return
			case <-heartbeat.C:
				reason, err := s.engine.Admit(ctx, watcher, streamAction, nil)
				switch {
				case ctx.Err() != nil:
					end("client_gone")
					return
				case err != nil:
					// The policy could not answer (a timeout on a loaded
					// replica): the admin was admitted and nothing says
					// otherwise yet. Twice in a row ends the stream.
					failures++
					s.logger.ErrorContext(ctx, "decision stream: the admin policy failed", "err", err, "in_a_row", failures)
					if failures >= 2 {
						end("access_revoked")
						return
					}
				case reason != decision.ReasonAllowed:
					end("access_revoked")
					return
				default:
					failures = 0
				}
				sw.comment("heartbeat")
			case r := <-sub.Deliveries():
				sw.event(r.Entry.DecisionID, "decision", r.JSON)
				// Events already waiting go out in the same write.
				for more := true; more; {
					select {
					case r := <-sub.Deliveries():
						sw.event(r.Entry.DecisionID, "decision", r.JSON)
					default:
						more = false
					}
				}
			}
			if n := sub.TakeMissed(); n > 0 {
				sw.event("", "missed", fmt.Appendf(nil, `{"missed":%d}`, n))
			}
			if sw.flush() != nil {
				return
			}
		}
	}
}

// handleRecentDecisions answers GET /v1/decisions/recent (admin): the
// recent history, newest first, filtered like the stream, at most ?limit
// entries (default 100).
func (s *server) handleRecentDecisions() gin.HandlerFunc {
	return func(c *gin.Context) {
		q, filter, err := logQuery(c, "limit")
		if err != nil {
			s.writeError(c, err)
			return
		}
		limit, size := defaultRecentLimit, s.decisionLog.HistorySize()
		if v := q.Get("limit"); v != "" {
			if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > size {
				s.writeError(c, errorf(codeInvalidRequest, fmt.Sprintf("limit=%q: want a number from 1 to %d", v, size)))
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"entries": s.decisionLog.Recent(filter, limit)})
	}
}

// strictQuery returns the request's query parameters after checking that
// each is one the route takes, once. A token in the URL gets a message of
// its own.
func strictQuery(c *gin.Context, known ...string) (url.Values, error) {
	q := c.Request.URL.Query()
	for key, values := range q {
		switch {
		case key == "token" || key == "access_token":
			return nil, errorf(codeInvalidRequest, "a token is never accepted in the URL; send it as Authorization: Bearer, or use a stream ticket")
		case !slices.Contains(known, key):
			return nil, errorf(codeInvalidRequest, fmt.Sprintf("unknown query parameter %q; this route takes %s", key, strings.Join(known, ", ")))
		case len(values) > 1:
			return nil, errorf(codeInvalidRequest, fmt.Sprintf("query parameter %q is given %d times", key, len(values)))
		}
	}
	return q, nil
}

// maxStreamsPerAdmin bounds the decision streams one admin may hold open,
// so that one admin (a viewer, say) cannot take every slot of the replica.
const maxStreamsPerAdmin = 4

// takeStreamSlot takes one of the replica's stream slots for admin, and one
// of admin's own; release gives both back.
func (s *server) takeStreamSlot(admin *claims.Claims) (release func(), err error) {
	key := admin.Issuer + "\x00" + admin.Subject
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streamsBy[key] >= maxStreamsPerAdmin {
		return nil, errorf(codeTooManyStreams, fmt.Sprintf("%s has %d decision streams open, the most one admin may; close one", admin.Subject, maxStreamsPerAdmin))
	}
	select {
	case s.streams <- struct{}{}:
	default:
		return nil, errorf(codeTooManyStreams, fmt.Sprintf("%d decision streams are open, the most this replica serves; close one or try later", cap(s.streams)))
	}
	s.streamsBy[key]++
	return func() {
		s.streamsMu.Lock()
		defer s.streamsMu.Unlock()
		if s.streamsBy[key]--; s.streamsBy[key] == 0 {
			delete(s.streamsBy, key)
		}
		<-s.streams
	}, nil
}

// logQuery reads the query of a route that filters the decision log: the
// filter — ?subject and ?action (exact), ?subject_contains and
// ?action_contains (a substring, case-insensitive), ?allow — and the
// route's own parameters, extra; any other parameter is an error.
func logQuery(c *gin.Context, extra ...string) (url.Values, decisionlog.Filter, error) {
	q, err := strictQuery(c, slices.Concat([]string{"subject", "action", "subject_contains", "action_contains", "allow"}, extra)...)
	if err != nil {
		return nil, decisionlog.Filter{}, err
	}
	f := decisionlog.Filter{
		Subject: q.Get("subject"), Action: q.Get("action"),
		SubjectContains: strings.ToLower(q.Get("subject_contains")),
		ActionContains:  strings.ToLower(q.Get("action_contains")),
	}
	switch v := q.Get("allow"); v {
	case "":
	case "true", "false":
		f.ByAllow, f.Allow = true, v == "true"
	default:
		return nil, decisionlog.Filter{}, errorf(codeInvalidRequest, fmt.Sprintf("allow=%q: want true or false", v))
	}
	return q, f, nil
}

// sseWriter writes server-sent events into a buffer and sends the buffer
// with one write and a flush.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
}

// event appends one event. Its data is one line of JSON: encoding/json
// never writes a newline inside it.
func (sw *sseWriter) event(id, name string, data []byte) {
	if id != "" {
		sw.buf = append(sw.buf, "id: "...)
		sw.buf = append(sw.buf, id...)
		sw.buf = append(sw.buf, '\n')
	}
	sw.buf = append(sw.buf, "event: "...)
	sw.buf = append(sw.buf, name...)
	sw.buf = append(sw.buf, "\ndata: "...)
	sw.buf = append(sw.buf, data...)
	sw.buf = append(sw.buf, "\n\n"...)
}

// comment appends a comment line, which clients ignore.
func (sw *sseWriter) comment(text string) {
	sw.buf = append(sw.buf, ": "...)
	sw.buf = append(sw.buf, text...)
	sw.buf = append(sw.buf, "\n\n"...)
}

// flush sends what is buffered, under a fresh write deadline, and flushes
// it to the client. It sends the response headers even when nothing is
// buffered. An error means the client is gone or stuck.
func (sw *sseWriter) flush() error {
	// Where deadlines are not supported (a test's recorder), there is
	// nothing to extend.
	_ = sw.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if len(sw.buf) > 0 {
		if _, err := sw.w.Write(sw.buf); err != nil {
			return err
		}
		sw.buf = sw.buf[:0]
	}
	return sw.rc.Flush()
}

// mustJSON encodes an entry, which cannot fail.
func mustJSON(e decisionlog.Entry) []byte {
	b, _ := e.MarshalJSON()
	return b
}
