package web

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/policyset"
)

// handleHealthz answers GET /healthz: the process is alive.
func (s *server) handleHealthz() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	}
}

// handleReadyz answers GET /readyz: 200 when a policy set is active, the
// event stream is caught up and every part in Options.Readiness is ready,
// else 503 not_ready saying which part is not, in one sentence. It needs no
// credentials, so it says no more: the detail (a refused set's problems and
// test output, which can quote policy data) is on the admin route
// GET /v1/status.
func (s *server) handleReadyz() gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.ready(); err != nil {
			s.writeError(c, errorf(codeNotReady, notReadyMessage(err)))
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready", "policy_revision": s.engine.Revision()})
	}
}

// errNoPolicySet is ready's error before any policy set is active.
var errNoPolicySet = errors.New("no policy set is active")

// notReadyMessage says which part of the replica is not ready, without the
// detail of why, for clients without credentials.
func notReadyMessage(err error) string {
	switch {
	case errors.Is(err, errNoPolicySet):
		return "no policy set is active yet"
	case errors.Is(err, events.ErrNotReady):
		return "the replica is not following the event stream (starting, catching up or cut off); see GET /v1/status"
	case errors.Is(err, policyset.ErrNotReady):
		return "the replica does not run a policy set from its source yet; see GET /v1/status"
	default:
		return "the replica is not ready; see GET /v1/status"
	}
}

// canDecide returns why this replica must not answer decisions, or nil:
// what ready says, except that a replica which has replayed the event
// stream and lost it since still decides. Within events.grace it trusts its
// state, after it events.on_disconnect says what passes; refusing outright
// would turn a NATS outage into an outage of every replica at once, which
// is what on_disconnect exists to choose against. /readyz still reports it,
// so a load balancer prefers a replica that follows the stream.
func (s *server) canDecide() error {
	err := s.ready()
	if errors.Is(err, events.ErrNotReady) && !errors.Is(err, events.ErrNoState) {
		return nil
	}
	return err
}

// ready returns why this replica cannot serve yet, or nil.
func (s *server) ready() error {
	if s.engine.Revision() == "" {
		return errNoPolicySet
	}
	for _, r := range s.readiness {
		if err := r.Ready(); err != nil {
			return err
		}
	}
	return nil
}
