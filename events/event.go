package events

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Version is the event schema version this package reads and writes.
const Version = 1

// Type is what happened to a subject.
type Type string

// The event types of schema version 1.
const (
	// TypeRolesChanged makes the subject's older tokens token_stale.
	TypeRolesChanged Type = "roles_changed"
	// TypeSessionsRevoked makes the subject's older tokens token_revoked
	// ("log out everywhere").
	TypeSessionsRevoked Type = "sessions_revoked"
	// TypeTokenRevoked makes one token (by jti) token_revoked.
	TypeTokenRevoked Type = "token_revoked"
	// TypeSubjectDisabled makes every token of the subject subject_disabled.
	TypeSubjectDisabled Type = "subject_disabled"
	// TypeSubjectEnabled lifts a subject_disabled with an earlier at.
	TypeSubjectEnabled Type = "subject_enabled"
)

// Types lists every known type, in the order of DESIGN §4.
var Types = []Type{TypeRolesChanged, TypeSessionsRevoked, TypeTokenRevoked, TypeSubjectDisabled, TypeSubjectEnabled}

// NATS subjects. The user's subject is never part of them: it may contain
// dots, spaces, wildcards or anything else, and lives in the payload only.
const (
	// SubjectPrefix starts the subject of every event.
	SubjectPrefix = "warden.events."
	// SubjectAll matches every event; it is the stream's subject filter.
	SubjectAll = SubjectPrefix + ">"

	SubjectRolesChanged    = SubjectPrefix + string(TypeRolesChanged)
	SubjectSessionsRevoked = SubjectPrefix + string(TypeSessionsRevoked)
	SubjectTokenRevoked    = SubjectPrefix + string(TypeTokenRevoked)
	SubjectSubjectDisabled = SubjectPrefix + string(TypeSubjectDisabled)
	SubjectSubjectEnabled  = SubjectPrefix + string(TypeSubjectEnabled)
)

// Subject is the NATS subject events of type t are published to.
func (t Type) Subject() string { return SubjectPrefix + string(t) }

// Known reports whether t is a type of schema version 1.
func (t Type) Known() bool {
	switch t {
	case TypeRolesChanged, TypeSessionsRevoked, TypeTokenRevoked, TypeSubjectDisabled, TypeSubjectEnabled:
		return true
	}
	return false
}

// Size limits. An event is a small, human-made statement; anything larger is
// a mistake or an attack, and refusing it keeps the ledger's memory bounded
// per event.
const (
	MaxEventBytes  = 8 << 10 // a whole encoded event
	MaxIDLen       = 256
	MaxSubjectLen  = 1024
	MaxIssuerLen   = 1024
	MaxJTILen      = 512
	MaxActorLen    = 256
	MaxReasonLen   = 1024
	maxPermVersion = 1<<53 - 1 // exactly representable in every JSON implementation
)

// MaxAtSkew is how far in the future an event's at may lie, compared with
// the publisher's clock (Publisher) or with the time JetStream stored the
// message (Consumer): the clock skew allowed between an event's author and
// NATS, as tokens.leeway is for tokens. It bounds how long an entry can
// live and how far a subject_enabled can reach past a later disable, and
// comparing with the stored time keeps every replica's verdict the same.
const MaxAtSkew = 30 * time.Second

// ErrInvalidEvent is wrapped by every error of Decode, Parse and
// Event.Validate: the event does not follow schema version 1.
var ErrInvalidEvent = errors.New("invalid event")

// Schema is the JSON Schema (draft 2020-12) of an event, event.schema.json.
//
//go:embed event.schema.json
var Schema []byte

// Event is a permission change, schema version 1 (DESIGN §4).
type Event struct {
	V       int    `json:"v"`
	ID      string `json:"id"`      // unique; the Nats-Msg-Id, so publishing is deduplicated
	Type    Type   `json:"type"`    // one of Types
	Subject string `json:"subject"` // the token's sub, compared exactly
	// Issuer, when set, scopes the event to tokens whose iss is exactly
	// this; empty applies to the subject's tokens of every issuer.
	Issuer string    `json:"issuer,omitempty"`
	At     time.Time `json:"at"` // when the change took effect; RFC 3339
	// JTI names the revoked token (token_revoked only, required there).
	JTI string `json:"jti,omitempty"`
	// ExpiresAt is the revoked token's exp (token_revoked only, optional):
	// the entry is dropped then instead of at at + max_lifetime.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// PermVersion is the subject's permission version after the change
	// (roles_changed and sessions_revoked only); 0 means none.
	PermVersion int64  `json:"perm_version,omitempty"`
	Actor       string `json:"actor,omitempty"`  // who made the change, for the audit trail
	Reason      string `json:"reason,omitempty"` // why, for the audit trail
}

// Validate reports every way e breaks schema version 1, or nil. The error
// wraps ErrInvalidEvent and names each field.
func (e Event) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	long := func(field, v string, limit int) {
		if len(v) > limit {
			add("%s: %d bytes, over the limit of %d", field, len(v), limit)
		}
	}

	switch {
	case e.V == 0:
		add("v: required, must be %d", Version)
	case e.V != Version:
		add("v: unsupported version %d (this Warden reads version %d)", e.V, Version)
	}
	if e.ID == "" {
		add("id: required (it is the Nats-Msg-Id that deduplicates publishing)")
	}
	long("id", e.ID, MaxIDLen)
	switch {
	case e.Type == "":
		add("type: required, one of %s", typeList())
	case !e.Type.Known():
		add("type: unknown type %q, want one of %s", truncate(string(e.Type), 64), typeList())
	}
	if e.Subject == "" {
		add("subject: required (the token's sub)")
	}
	long("subject", e.Subject, MaxSubjectLen)
	long("issuer", e.Issuer, MaxIssuerLen)
	switch {
	case e.At.IsZero():
		add("at: required (RFC 3339 time of the change)")
	case !inUnixNanoRange(e.At):
		add("at: %s is out of range (after 1970, before 2200)", e.At.Format(time.RFC3339))
	}
	if e.Type == TypeTokenRevoked {
		if e.JTI == "" {
			add("jti: required for token_revoked (the revoked token's jti)")
		}
		if !e.ExpiresAt.IsZero() && !inUnixNanoRange(e.ExpiresAt) {
			add("expires_at: %s is out of range (after 1970, before 2200)", e.ExpiresAt.Format(time.RFC3339))
		}
	} else if e.Type.Known() {
		// A jti on sessions_revoked most likely means its author wanted
		// token_revoked; refusing says so instead of revoking every session.
		if e.JTI != "" {
			add("jti: only for token_revoked, not %s", e.Type)
		}
		if !e.ExpiresAt.IsZero() {
			add("expires_at: only for token_revoked, not %s", e.Type)
		}
	}
	long("jti", e.JTI, MaxJTILen)
	switch {
	case e.PermVersion < 0 || e.PermVersion > maxPermVersion:
		add("perm_version: %d is out of range (0 to 2^53-1)", e.PermVersion)
	case e.PermVersion != 0 && e.Type.Known() && e.Type != TypeRolesChanged && e.Type != TypeSessionsRevoked:
		add("perm_version: only for roles_changed and sessions_revoked, not %s", e.Type)
	}
	long("actor", e.Actor, MaxActorLen)
	long("reason", e.Reason, MaxReasonLen)

	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidEvent, strings.Join(problems, "; "))
}

// Parse decodes data strictly (see Decode) and validates the result: it is
// what a replica accepts from the stream.
func Parse(data []byte) (Event, error) {
	e, err := Decode(data)
	if err != nil {
		return Event{}, err
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// inUnixNanoRange reports whether t is after the Unix epoch and early
// enough that t + max_lifetime still fits in an int64 of nanoseconds, the
// ledger's representation.
func inUnixNanoRange(t time.Time) bool {
	return t.After(time.Unix(0, 0)) && t.Before(maxEventTime)
}

var maxEventTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

func typeList() string {
	names := make([]string, len(Types))
	for i, t := range Types {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// truncate keeps error messages about hostile input short.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
