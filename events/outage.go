package events

import (
	"fmt"
	"time"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

// DisconnectMode is what a replica does with tokens once it has been unable
// to follow the stream for longer than the grace period (events.on_disconnect).
type DisconnectMode string

// The outage policies.
const (
	// FreshOnly accepts only tokens issued within the fresh window: they
	// were minted with current roles, so no event they missed can concern
	// them. It is the default.
	FreshOnly DisconnectMode = "fresh_only"
	// DenyAll answers revocation_state_stale for every token.
	DenyAll DisconnectMode = "deny"
	// AllowAll keeps answering from the state as it was.
	AllowAll DisconnectMode = "allow"
)

// ParseDisconnectMode reads an events.on_disconnect value.
func ParseDisconnectMode(s string) (DisconnectMode, error) {
	switch m := DisconnectMode(s); m {
	case FreshOnly, DenyAll, AllowAll:
		return m, nil
	}
	return "", fmt.Errorf("events.on_disconnect: %q is not one of fresh_only, deny, allow", s)
}

var _ decision.Revocations = (*Consumer)(nil)

// Check returns why cl may no longer be honoured at now: the ledger's answer
// first, then, while the replica cannot follow the stream, the outage
// policy (after Grace).
//
// Before the first replay has caught up the replica knows nothing: the
// subject may be disabled, the token's jti revoked. A fresh token proves
// only that its roles are current, not that its subject may still log in,
// so fresh_only denies then as deny does; only allow, the operator's
// explicit choice of availability, answers from the partial state.
func (c *Consumer) Check(cl *claims.Claims, now time.Time) decision.Reason {
	if r := c.ledger.Check(cl, now); r != "" {
		return r
	}
	since := c.degradedSince.Load()
	if since == 0 {
		return ""
	}
	replayed := c.replayed.Load()
	if replayed && now.UnixNano()-since < int64(c.opts.Grace) {
		return ""
	}
	switch c.opts.OnDisconnect {
	case AllowAll:
		return ""
	case FreshOnly:
		if replayed && now.Sub(cl.IssuedAt) <= c.opts.FreshWindow {
			return ""
		}
	}
	return decision.ReasonRevocationStateStale
}
