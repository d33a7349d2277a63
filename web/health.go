package web

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// handleHealthz answers GET /healthz: the process is alive.
func (s *server) handleHealthz() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	}
}

// handleReadyz answers GET /readyz: 200 when a policy set is active and every
// part in Options.Readiness is ready, else 503 with the first reason.
func (s *server) handleReadyz() gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.engine.Revision() == "" {
			s.writeError(c, errorf(codeNotReady, "no policy set is active"))
			return
		}
		for _, r := range s.readiness {
			if err := r.Ready(); err != nil {
				s.writeError(c, errorf(codeNotReady, err.Error()))
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready", "policy_revision": s.engine.Revision()})
	}
}
