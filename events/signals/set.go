// Package signals makes Warden an OpenID Shared Signals (SSF 1.0, CAEP 1.0,
// RISC 1.0) receiver. A transmitter — an identity provider — delivers
// Security Event Tokens (RFC 8417) by push (RFC 8935, Receiver.Push, wired
// to POST /v1/signals/{transmitter} by web); each SET is verified with the
// claims package's key machinery (claims.WithSETs), its events are mapped
// to permission-change events (Mapping) and published to the same
// JetStream stream as every other event, so every replica enforces the
// identity provider's change as it enforces an admin's. The SET's jti is
// the event id; a replayed jti changes nothing (Receiver deduplicates it
// durably in a NATS key-value bucket).
package signals

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/wardenauthz/warden/claims"
)

// Event type URIs this package knows (CAEP 1.0 §3, RISC 1.0 §2, SSF 1.0 §8).
const (
	caep = "https://schemas.openid.net/secevent/caep/event-type/"
	risc = "https://schemas.openid.net/secevent/risc/event-type/"

	CAEPSessionRevoked       = caep + "session-revoked"
	CAEPTokenClaimsChange    = caep + "token-claims-change"
	CAEPCredentialChange     = caep + "credential-change"
	CAEPAssuranceLevelChange = caep + "assurance-level-change"
	RISCAccountDisabled      = risc + "account-disabled"
	RISCAccountEnabled       = risc + "account-enabled"
	RISCSessionsRevoked      = risc + "sessions-revoked"
	// SSFVerification is the transmitter's check that delivery works: it
	// is accepted and recorded, and changes no permission.
	SSFVerification = "https://schemas.openid.net/secevent/ssf/event-type/verification"
)

// SET is the part of a verified Security Event Token the receiver uses.
type SET struct {
	JTI    string
	Issuer string
	TXN    string // the transaction id (RFC 8417 §2.2), kept for the audit trail
	IAT    time.Time
	// SubID is the SET's top-level sub_id (SSF 1.0 §4.1); nil when the
	// SET carries the subject inside its event instead (older CAEP drafts).
	SubID map[string]any
	// Events are the SET's events, sorted by type URI.
	Events []SETEvent
}

// SETEvent is one member of the SET's events claim.
type SETEvent struct {
	Type    string
	Payload map[string]any
}

// ParseSET reads a SET out of claims verified by a claims.WithSETs
// verifier. It fails when jti or events is missing or has the wrong JSON
// type (RFC 8417 §2.2 requires both, events as an object of objects).
func ParseSET(c *claims.Claims) (SET, error) {
	s := SET{JTI: c.ID, Issuer: c.Issuer, IAT: c.IssuedAt}
	if s.JTI == "" {
		return SET{}, fmt.Errorf("the SET has no jti")
	}
	if txn, ok := c.Raw["txn"]; ok {
		if s.TXN, ok = txn.(string); !ok {
			return SET{}, fmt.Errorf("txn is not a string")
		}
	}
	if sub, ok := c.Raw["sub_id"]; ok {
		if s.SubID, ok = sub.(map[string]any); !ok {
			return SET{}, fmt.Errorf("sub_id is not an object")
		}
	}
	evs, ok := c.Raw["events"].(map[string]any)
	if !ok || len(evs) == 0 {
		return SET{}, fmt.Errorf("events is missing or not a non-empty object")
	}
	for typ, p := range evs {
		payload, ok := p.(map[string]any)
		if !ok {
			return SET{}, fmt.Errorf("event %q is not an object", claims.Clip(typ))
		}
		s.Events = append(s.Events, SETEvent{Type: typ, Payload: payload})
	}
	sort.Slice(s.Events, func(i, j int) bool { return s.Events[i].Type < s.Events[j].Type })
	return s, nil
}

// at is when the change took effect: the event's event_timestamp (CAEP
// 1.0 §2), else the SET's iat.
func (e SETEvent) at(iat time.Time) (time.Time, error) {
	v, ok := e.Payload["event_timestamp"]
	if !ok {
		return iat, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, fmt.Errorf("event_timestamp is not a number")
	}
	f, err := n.Float64()
	if err != nil || f <= 0 {
		return time.Time{}, fmt.Errorf("event_timestamp %q is not a positive NumericDate", n)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
}
