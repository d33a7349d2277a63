package signals

import (
	"fmt"
	"slices"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/events"
)

// Ignore, as the value of a mapping entry, drops events of that type.
const Ignore = "ignore"

// DefaultMapping maps CAEP and RISC event types to Warden's event types
// (docs/signals.md). A transmitter's mapping overrides entries of it.
var DefaultMapping = map[string]string{
	CAEPSessionRevoked:       string(events.TypeSessionsRevoked),
	CAEPTokenClaimsChange:    string(events.TypeRolesChanged),
	CAEPAssuranceLevelChange: string(events.TypeRolesChanged),
	CAEPCredentialChange:     string(events.TypeSessionsRevoked),
	RISCAccountDisabled:      string(events.TypeSubjectDisabled),
	RISCAccountEnabled:       string(events.TypeSubjectEnabled),
	RISCSessionsRevoked:      string(events.TypeSessionsRevoked),
}

// Subject rules for the email and opaque formats.
const (
	RuleSub    = "sub"    // the identifier is the token's sub
	RuleIgnore = "ignore" // the identifier cannot be resolved; the event is counted and dropped
)

// Outcome says what became of one event of a SET.
type Outcome string

// The outcomes, also the outcome label of warden_signals_total.
const (
	OutcomeMapped       Outcome = "mapped"       // published as a Warden event
	OutcomeVerification Outcome = "verification" // an SSF verification event: recorded only
	OutcomeUnknownType  Outcome = "unknown_type" // no mapping: counted and ignored
	OutcomeIgnored      Outcome = "ignored"      // mapped to "ignore" by configuration
	OutcomeUnresolved   Outcome = "unresolved"   // the subject names no token subject (see Resolver)
	OutcomeRefused      Outcome = "refused"      // the stream refused the mapped event (e.g. too old to affect any token)
	OutcomeInvalid      Outcome = "invalid"      // the event's payload breaks CAEP/RISC (e.g. event_timestamp)
)

// Mapper turns a SET's events into Warden events, for one transmitter.
type Mapper struct {
	types map[string]string
	// TokenIssuers are the token issuers whose iss_sub subjects name a
	// token's sub; an event is then scoped to that issuer.
	tokenIssuers []string
	email        string // RuleSub or RuleIgnore
	opaque       string // RuleSub or RuleIgnore
}

// NewMapper returns a Mapper with DefaultMapping overridden by mapping
// (type URI -> Warden event type or Ignore). It fails on an unknown Warden
// type or rule, naming it.
func NewMapper(mapping map[string]string, tokenIssuers []string, email, opaque string) (*Mapper, error) {
	m := &Mapper{types: make(map[string]string, len(DefaultMapping)+len(mapping)), tokenIssuers: tokenIssuers, email: email, opaque: opaque}
	for k, v := range DefaultMapping {
		m.types[k] = v
	}
	for k, v := range mapping {
		if v != Ignore && !events.Type(v).Known() {
			return nil, fmt.Errorf("mapping[%q]: %q is not a Warden event type (roles_changed, sessions_revoked, token_revoked, subject_disabled, subject_enabled) or ignore", k, v)
		}
		m.types[k] = v
	}
	for _, r := range []struct{ name, v string }{{"email", email}, {"opaque", opaque}} {
		if r.v != RuleSub && r.v != RuleIgnore {
			return nil, fmt.Errorf("subjects.%s: %q is not a rule; use sub or ignore", r.name, r.v)
		}
	}
	return m, nil
}

// Mapped is one SET event and what became of it.
type Mapped struct {
	Type    string        `json:"type"` // the event type URI
	Outcome Outcome       `json:"outcome"`
	Detail  string        `json:"detail,omitempty"` // why, for unresolved, invalid and stale
	Event   *events.Event `json:"event,omitempty"`  // the Warden event, when mapped
}

// Map maps every event of s. It never fails: an event that cannot be
// mapped gets its outcome and the others go on. The i-th event's id is
// idPrefix-i: the same SET always maps to the same ids.
func (m *Mapper) Map(s SET, idPrefix string) []Mapped {
	out := make([]Mapped, 0, len(s.Events))
	for i, se := range s.Events {
		out = append(out, m.mapOne(s, se, fmt.Sprintf("%s-%d", idPrefix, i)))
	}
	return out
}

func (m *Mapper) mapOne(s SET, se SETEvent, id string) Mapped {
	r := Mapped{Type: se.Type}
	if se.Type == SSFVerification {
		r.Outcome = OutcomeVerification
		return r
	}
	typ, ok := m.types[se.Type]
	switch {
	case !ok:
		r.Outcome = OutcomeUnknownType
		return r
	case typ == Ignore:
		r.Outcome = OutcomeIgnored
		return r
	}
	at, err := se.at(s.IAT)
	if err != nil {
		r.Outcome, r.Detail = OutcomeInvalid, err.Error()
		return r
	}
	// SSF 1.0 puts the subject in sub_id; earlier CAEP drafts in the event.
	subject := s.SubID
	if subject == nil {
		subject, _ = se.Payload["subject"].(map[string]any)
	}
	who, err := m.resolve(subject)
	if err != nil {
		r.Outcome, r.Detail = OutcomeUnresolved, err.Error()
		return r
	}
	e := events.Event{
		V: events.Version, ID: id, Type: events.Type(typ), Subject: who.sub, Issuer: who.iss, At: at,
		Actor: "ssf:" + s.Issuer, Reason: se.Type,
	}
	if who.jti != "" && e.Type == events.TypeSessionsRevoked {
		// A session revocation naming one token revokes that token.
		e.Type, e.JTI = events.TypeTokenRevoked, who.jti
	}
	if err := e.Validate(); err != nil {
		r.Outcome, r.Detail = OutcomeInvalid, err.Error()
		return r
	}
	r.Outcome, r.Event = OutcomeMapped, &e
	return r
}

// identity is a resolved subject: the token's sub, the issuer it is scoped
// to ("" for any) and, for a jwt_id member of a complex subject, one token.
type identity struct{ sub, iss, jti string }

// resolve applies the subject rule (docs/signals.md "Subject resolution"):
//   - iss_sub: sub, scoped to iss, when iss is one of the transmitter's
//     token_issuers;
//   - email: the address is the sub under the rule "sub";
//   - opaque: the id is the sub under the rule "sub";
//   - complex: its user member, resolved as above; a jwt_id member (RFC
//     9493 format, Warden's extension of complex) names one token;
//   - anything else (phone_number, account, did, uri, aliases, a bare
//     jwt_id, whose token the ledger cannot find without its subject):
//     unresolved.
func (m *Mapper) resolve(subject map[string]any) (identity, error) {
	if subject == nil {
		return identity{}, fmt.Errorf("the SET names no subject (sub_id)")
	}
	format, _ := subject["format"].(string)
	str := func(name string) (string, error) {
		v, ok := subject[name].(string)
		if !ok || v == "" {
			return "", fmt.Errorf("%s subject without %s", format, name)
		}
		return v, nil
	}
	switch format {
	case "iss_sub":
		iss, err := str("iss")
		if err != nil {
			return identity{}, err
		}
		sub, err := str("sub")
		if err != nil {
			return identity{}, err
		}
		if !slices.Contains(m.tokenIssuers, iss) {
			return identity{}, fmt.Errorf("iss_sub of issuer %q, not one of the transmitter's token_issuers", claims.Clip(iss))
		}
		return identity{sub: sub, iss: iss}, nil
	case "email", "opaque":
		member, rule := "email", m.email
		if format == "opaque" {
			member, rule = "id", m.opaque
		}
		if rule != RuleSub {
			return identity{}, fmt.Errorf("%s subjects are ignored (subjects.%s: ignore)", format, format)
		}
		v, err := str(member)
		return identity{sub: v}, err
	case "complex":
		user, ok := subject["user"].(map[string]any)
		if !ok || user["format"] == "complex" {
			return identity{}, fmt.Errorf("complex subject without a simple user member")
		}
		id, err := m.resolve(user)
		if err != nil {
			return identity{}, err
		}
		for _, v := range subject {
			if t, ok := v.(map[string]any); ok && t["format"] == "jwt_id" {
				if id.jti, ok = t["jti"].(string); !ok || id.jti == "" {
					return identity{}, fmt.Errorf("jwt_id member without jti")
				}
			}
		}
		return id, nil
	}
	return identity{}, fmt.Errorf("subject format %q cannot be resolved to a token's sub", claims.Clip(format))
}
