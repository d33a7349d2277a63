package web

import (
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/wardenauthz/warden/claims"
)

// adminKey is where requireAdmin leaves the admin's verified claims for the
// handler (the actor of a published event, say). streamAuth leaves there the
// claims a stream ticket was issued for.
const adminKey = "warden.admin"

// requireAdmin guards the admin API. The caller's own bearer token is
// verified like any other (401 when it is missing or rejected), then the
// policy data.warden.admin decides over it with input.action set to
// "<METHOD> <route pattern>" (403 when it says no). An error evaluating the
// admin policy denies too.
func (s *server) requireAdmin(c *gin.Context) {
	token := s.token(c, "")
	if token == "" {
		s.writeError(c, errorf(codeUnauthorized, "admin API: send an admin token as Authorization: Bearer <token>"))
		return
	}
	ctx := c.Request.Context()
	cl, err := s.verifier.Verify(ctx, token)
	if err != nil {
		s.writeError(c, errorf(codeUnauthorized, "admin token rejected: "+string(s.tokenReason(ctx, err))))
		return
	}
	action := c.Request.Method + " " + c.FullPath()
	ok, err := s.engine.Admit(ctx, cl, action)
	if err != nil {
		s.writeError(c, errors.Join(errors.New("admin policy failed"), err))
		return
	}
	if !ok {
		s.writeError(c, errorf(codeForbidden, "the admin policy does not allow "+cl.Subject+" to "+action))
		return
	}
	c.Set(adminKey, cl)
	c.Next()
}

// admin returns the claims requireAdmin verified.
func admin(c *gin.Context) *claims.Claims {
	cl, _ := c.Get(adminKey)
	return cl.(*claims.Claims)
}
