package web

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wardenauthz/warden/events/signals"
)

// Signals receives Security Event Tokens from identity providers
// (events/signals, docs/signals.md).
type Signals interface {
	Push(ctx context.Context, transmitter, authorization, contentType string, body io.Reader) (signals.Delivery, error)
	Recent(ctx context.Context, limit int) ([]signals.Delivery, error)
	Counts() []signals.Count
}

var _ Signals = (*signals.Receiver)(nil)

// maxSignalsListed bounds GET /v1/signals.
const maxSignalsListed = 500

// handlePushSignal answers POST /v1/signals/:transmitter, RFC 8935 push
// delivery: 202 with no body when the SET is accepted (a replayed jti
// too: it changes nothing), otherwise the RFC's error object
// {"err","description"} with 400, 401 (authentication_failed, also for a
// transmitter name that is not configured) or 413 (a body over signals.MaxSETBytes; RFC 8935
// leaves the size to the receiver and 413 says what happened).
func (s *server) handlePushSignal() gin.HandlerFunc {
	return func(c *gin.Context) {
		name := c.Param("transmitter")
		_, err := s.signals.Push(c.Request.Context(), name, c.GetHeader("Authorization"), c.GetHeader("Content-Type"), c.Request.Body)
		if err != nil {
			s.signalError(c, name, err)
			return
		}
		c.Status(http.StatusAccepted)
	}
}

// signalError writes a refused push in RFC 8935 §2.3's shape; an error
// that is not a *signals.Error (NATS unreachable) is a 503 with the house
// error shape, so the transmitter retries.
func (s *server) signalError(c *gin.Context, name string, err error) {
	var se *signals.Error
	if !errors.As(err, &se) {
		s.logger.Error("signal not recorded", "transmitter", name, "err", err)
		s.writeError(c, errorf(codeUnavailable, "the SET could not be recorded (event stream unreachable); deliver it again"))
		return
	}
	s.logger.Warn("signal refused", "transmitter", name, "err", se.Code, "description", se.Description, "cause", se.Cause)
	c.JSON(se.Status, gin.H{"err": se.Code, "description": se.Description})
}

// SignalView is one received SET in GET /v1/signals, with how many live
// replicas have enforced its events.
type SignalView struct {
	signals.Delivery
	Enforced *Enforcement `json:"enforced,omitempty"`
}

// handleListSignals answers GET /v1/signals: the received SETs, newest
// first.
func (s *server) handleListSignals() gin.HandlerFunc {
	return func(c *gin.Context) {
		ds, err := s.signals.Recent(c.Request.Context(), maxSignalsListed)
		if err != nil {
			s.writeError(c, err)
			return
		}
		out := make([]SignalView, len(ds))
		for i, d := range ds {
			out[i].Delivery = d
			if d.Seq > 0 && s.events != nil {
				applied, total := s.events.Fleet.Enforced(d.Seq)
				out[i].Enforced = &Enforcement{Applied: applied, Total: total}
			}
		}
		c.JSON(http.StatusOK, gin.H{"signals": out})
	}
}
