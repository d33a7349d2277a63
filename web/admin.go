package web

import (
	"context"
	"errors"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
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
	// The request's span names who made it, allowed or not.
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("warden.admin", cl.Subject))
	if err := s.admit(ctx, cl, action, nil); err != nil {
		s.writeError(c, err)
		return
	}
	c.Set(adminKey, cl)
	c.Next()
}

// admit asks the admin policy whether cl may make the request action on
// resource, and returns nil or the error to answer: 403 naming the action
// when the policy says no, 403 with the revocation reason when the admin's
// token is no longer honoured (demoted, logged out, disabled), an internal
// error when the policy failed.
func (s *server) admit(ctx context.Context, cl *claims.Claims, action string, resource map[string]any) error {
	reason, err := s.engine.Admit(ctx, cl, action, resource)
	switch {
	case err != nil:
		return errors.Join(errors.New("admin policy failed"), err)
	case reason == decision.ReasonAllowed:
		return nil
	case reason == decision.ReasonPolicyDenied:
		return errorf(codeForbidden, "the admin policy does not allow "+cl.Subject+" to "+action)
	default:
		return errorf(codeForbidden, "the admin token of "+cl.Subject+" is no longer honoured ("+string(reason)+"): its permissions changed since it was issued; sign in again")
	}
}

// admin returns the claims requireAdmin verified.
func admin(c *gin.Context) *claims.Claims {
	cl, _ := c.Get(adminKey)
	return cl.(*claims.Claims)
}
