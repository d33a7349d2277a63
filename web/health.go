package web

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
)

// handleHealthz answers GET /healthz: the process is alive.
func (s *server) handleHealthz() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	}
}

// handleReadyz answers GET /readyz: 200 when a policy set is active, the
// event stream is caught up and every part in Options.Readiness is ready,
// else 503 with the first reason.
func (s *server) handleReadyz() gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.ready(); err != nil {
			s.writeError(c, errorf(codeNotReady, err.Error()))
			return
		}
		body := gin.H{"status": "ready", "policy_revision": s.engine.Revision()}
		if s.policies != nil {
			// Ready, but a refused set is worth seeing here too: the
			// replica answers with the previous set.
			if st := s.policies.Status(); st.LastError != nil {
				body["policy_refused"] = st.LastError
			}
		}
		c.JSON(http.StatusOK, body)
	}
}

// ready returns why this replica cannot serve yet, or nil.
func (s *server) ready() error {
	if s.engine.Revision() == "" {
		return errors.New("no policy set is active")
	}
	for _, r := range s.readiness {
		if err := r.Ready(); err != nil {
			return err
		}
	}
	return nil
}
