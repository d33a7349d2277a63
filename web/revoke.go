package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/events"
)

// RevokePath is the token revocation endpoint of RFC 7009 (docs/revocation.md).
const RevokePath = "/oauth2/revoke"

// RevocationClient is an OAuth client that may revoke tokens at RevokePath,
// authenticating with its client_id and client_secret (RFC 6749 §2.3.1).
type RevocationClient struct {
	ID string
	// SecretSHA256 is the SHA-256 of the client secret: the configuration
	// holds no secret, and comparing digests in constant time tells a
	// guesser nothing about the secret.
	SecretSHA256 [sha256.Size]byte
	// RevokeAny lets the client revoke tokens issued to other clients, as
	// an identity provider or an admin backend does. Without it a client
	// revokes only tokens whose client_id (or azp) claim names it.
	RevokeAny bool
}

// The outcomes of a revocation answered 200, labels of
// warden_revocation_requests_total; an error answer's outcome is its code.
const (
	revokeRevoked  = "revoked"   // token_revoked stored (or already, within the duplicate window)
	revokeNoEffect = "no_effect" // a token Warden does not accept: nothing to revoke
)

// revokeSeqHeader answers a revocation with the stream sequence of its
// event: send it as Warden-Min-Seq to read the revocation back at once.
const revokeSeqHeader = "Warden-Seq"

// revokePublishTimeout bounds the wait for JetStream's acknowledgement;
// past it the client gets 503 and retries (RFC 7009 §2.2.1).
const revokePublishTimeout = 5 * time.Second

// oauthErrors marks a request whose errors are answered as OAuth has them
// (RFC 6749 §5.2): {"error":"<code>","error_description":"..."}.
const oauthErrors = "warden.oauth-errors"

// revokers holds the configured revocation clients by id.
type revokers map[string]RevocationClient

func newRevokers(clients []RevocationClient) revokers {
	if len(clients) == 0 {
		return nil
	}
	r := make(revokers, len(clients))
	for _, c := range clients {
		r[c.ID] = c
	}
	return r
}

// handleRevoke answers POST /oauth2/revoke (RFC 7009): authenticate the
// client, verify the token with Warden's own verifier, and publish
// token_revoked for its jti until its exp. A token Warden does not accept
// (malformed, expired, another issuer or audience, a bad signature) is
// answered 200 with no effect, as §2.2 requires: Warden would refuse it
// anyway. The answer is 200 only once JetStream has stored the event.
func (s *server) handleRevoke() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(oauthErrors, true)
		c.Header("Cache-Control", "no-store")
		c.Header("Pragma", "no-cache")
		ctx := c.Request.Context()
		form, err := s.revocationForm(c)
		if err != nil {
			s.revokeFailed(c, "", err)
			return
		}
		client, err := s.revokers.authenticate(c.GetHeader("Authorization"), form)
		if err != nil {
			s.revokeFailed(c, client.ID, err)
			return
		}
		token := form.Get("token")
		if token == "" {
			s.revokeFailed(c, client.ID, errorf(codeInvalidRequest, "the token parameter is required"))
			return
		}
		// token_type_hint is only a hint (§2.1): Warden revokes the JWTs it
		// verifies, whatever the client calls them, and ignores the value.
		cl, err := s.verifier.Verify(ctx, token)
		if err != nil {
			s.logger.InfoContext(ctx, "token revocation: not a token Warden accepts; nothing revoked",
				"client", client.ID, "reason", s.tokenReason(ctx, err))
			s.revokeAnswered(c, client.ID, revokeNoEffect, 0)
			return
		}
		if !client.RevokeAny && !issuedTo(cl, client.ID) {
			s.revokeFailed(c, client.ID, errorf(codeUnauthorizedClient,
				"the token was not issued to client "+client.ID+" (its client_id or azp claim names another client, or none)"))
			return
		}
		e, err := revocationEvent(cl, client.ID, time.Now())
		if err != nil {
			s.revokeFailed(c, client.ID, err)
			return
		}
		pctx, cancel := context.WithTimeout(ctx, revokePublishTimeout)
		defer cancel()
		ack, err := s.events.Publisher.PublishAck(pctx, e)
		switch {
		case errors.Is(err, events.ErrInvalidEvent):
			// Valid a moment ago, the token has expired since (or its
			// event is otherwise effectless): Warden refuses it anyway.
			s.logger.InfoContext(ctx, "token revocation: nothing to revoke", "client", client.ID, "jti", cl.ID, "err", err)
			s.revokeAnswered(c, client.ID, revokeNoEffect, 0)
		case err != nil:
			conn := s.events.Stream.Status().Connection
			s.logger.ErrorContext(ctx, "token revocation: the event stream did not take the event", "client", client.ID, "jti", cl.ID, "nats", conn, "err", err)
			c.Header("Retry-After", strconv.Itoa(int(revokePublishTimeout.Seconds())))
			s.revokeFailed(c, client.ID, errorf(codeUnavailable,
				"the event stream did not confirm the revocation (NATS connection "+conn+"); count the token as not revoked and retry: a retry of the same token is stored once"))
		default:
			s.logger.InfoContext(ctx, "token revoked", "client", client.ID, "subject", cl.Subject, "issuer", cl.Issuer,
				"jti", cl.ID, "until", cl.ExpiresAt, "seq", ack.Seq, "duplicate", ack.Duplicate)
			s.revokeAnswered(c, client.ID, revokeRevoked, ack.Seq)
		}
	}
}

// revokeAnswered answers 200 with an empty body, RFC 7009's answer whether
// or not anything was revoked, and counts the outcome. seq, when not 0, is
// the stream sequence of the event published.
func (s *server) revokeAnswered(c *gin.Context, client, outcome string, seq uint64) {
	if seq != 0 {
		c.Header(revokeSeqHeader, strconv.FormatUint(seq, 10))
	}
	s.metrics.revocations.WithLabelValues(client, outcome).Inc()
	c.Status(http.StatusOK)
}

// revokeFailed answers err in OAuth's error shape and counts its code as
// the outcome.
func (s *server) revokeFailed(c *gin.Context, client string, err error) {
	s.metrics.revocations.WithLabelValues(client, classify(err).Code).Inc()
	s.writeError(c, err)
}

// revocationForm reads the request's form body strictly: only
// application/x-www-form-urlencoded, at most MaxBodyBytes, no parameter
// twice (RFC 6749 §3.2), nothing in the URL's query (a token there would
// reach access logs). Parameters without a value count as absent (§3.2)
// and unknown ones are ignored, as OAuth has it.
func (s *server) revocationForm(c *gin.Context) (url.Values, error) {
	if c.Request.URL.RawQuery != "" {
		return nil, errorf(codeInvalidRequest, "the revocation endpoint takes its parameters in the form body, not in the URL")
	}
	body, err := s.readBody(c, s.opts.MaxBodyBytes, "application/x-www-form-urlencoded")
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errorf(codeInvalidRequest, "the body is not a valid application/x-www-form-urlencoded form")
	}
	for name, values := range form {
		if len(values) > 1 {
			return nil, errorf(codeInvalidRequest, fmt.Sprintf("parameter %s is sent %d times; send each parameter once", clip(name), len(values)))
		}
	}
	return form, nil
}

// authenticate finds the client that authorization (an Authorization header
// value) or the form's client_id and client_secret (RFC 6749 §2.3.1)
// authenticate. Errors are invalid_client (unknown client, wrong secret, no
// or unsupported credentials) or invalid_request (two ways of
// authenticating at once). The client returned with an error is the one
// the request named when it is configured, for the metrics; else the zero
// client.
func (r revokers) authenticate(authorization string, form url.Values) (RevocationClient, error) {
	id, secret := form.Get("client_id"), form.Get("client_secret")
	if authorization != "" {
		basicID, basicSecret, err := basicCredentials(authorization)
		if err != nil {
			return RevocationClient{}, err
		}
		switch {
		case secret != "":
			return r.named(basicID), errorf(codeInvalidRequest, "the client authenticates with HTTP Basic and client_secret at once; use one")
		case id != "" && id != basicID:
			return r.named(basicID), errorf(codeInvalidRequest, "client_id in the body differs from the HTTP Basic user")
		}
		id, secret = basicID, basicSecret
	}
	if id == "" || secret == "" {
		return RevocationClient{}, errorf(codeInvalidClient, "client authentication is required: HTTP Basic with client_id and client_secret, or both in the form body")
	}
	client, known := r[id]
	// An unknown id costs the same comparison as a known one.
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], client.SecretSHA256[:]) != 1 || !known {
		return r.named(id), errorf(codeInvalidClient, "client authentication failed")
	}
	return client, nil
}

// named is the configured client id, or the zero client when id is not
// configured (so that made-up ids never become metric labels).
func (r revokers) named(id string) RevocationClient {
	if c, ok := r[id]; ok {
		return RevocationClient{ID: c.ID}
	}
	return RevocationClient{}
}

// basicCredentials reads "Basic base64(urlencode(id):urlencode(secret))",
// RFC 6749 §2.3.1. Any other scheme is invalid_client: Warden's clients
// authenticate with a secret only.
func basicCredentials(authorization string) (id, secret string, err error) {
	scheme, encoded, _ := strings.Cut(authorization, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", errorf(codeInvalidClient, "unsupported client authentication scheme; use HTTP Basic with client_id and client_secret")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", "", errorf(codeInvalidClient, "the HTTP Basic credentials are not valid base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errorf(codeInvalidClient, "the HTTP Basic credentials lack the colon between client_id and client_secret")
	}
	if id, err = url.QueryUnescape(user); err == nil {
		secret, err = url.QueryUnescape(pass)
	}
	if err != nil {
		return "", "", errorf(codeInvalidClient, "the HTTP Basic client_id and client_secret must be form-urlencoded (RFC 6749 section 2.3.1)")
	}
	return id, secret, nil
}

// issuedTo reports whether the token was issued to client: its client_id
// claim (RFC 9068) or its azp claim (OpenID Connect) names the client, and
// neither names another. A token naming no client belongs to none.
func issuedTo(cl *claims.Claims, client string) bool {
	named := false
	for _, claim := range []string{"client_id", "azp"} {
		v, ok := cl.Raw[claim]
		if !ok {
			continue
		}
		if s, _ := v.(string); s != client {
			return false
		}
		named = true
	}
	return named
}

// revocationEvent is the token_revoked event for cl, revoked by client at
// now. Its id is derived from the token, so a retried revocation (or a
// second client revoking the same token) is stored once within the
// stream's duplicate window. A token without a jti, or whose claims do not
// fit an event, cannot be revoked singly: unsupported_token_type.
func revocationEvent(cl *claims.Claims, client string, now time.Time) (events.Event, error) {
	if cl.ID == "" {
		return events.Event{}, errorf(codeUnsupportedTokenType,
			"the token has no jti claim, and Warden revokes single tokens by jti; revoke the user's sessions instead (sessions_revoked)")
	}
	sum := sha256.Sum256([]byte(cl.Issuer + "\x00" + cl.Subject + "\x00" + cl.ID))
	e := events.Event{
		V:         events.Version,
		ID:        "oauth2-revoke-" + hex.EncodeToString(sum[:16]),
		Type:      events.TypeTokenRevoked,
		Subject:   cl.Subject,
		Issuer:    cl.Issuer,
		At:        now.UTC(),
		JTI:       cl.ID,
		ExpiresAt: cl.ExpiresAt.UTC(),
		Actor:     "oauth2-revoke:" + client,
		Reason:    "revoked by client " + client + " (RFC 7009)",
	}
	if err := e.Validate(); err != nil {
		return events.Event{}, errorf(codeUnsupportedTokenType, "the token cannot be revoked singly: "+err.Error())
	}
	return e, nil
}
