// Package decision is Warden's engine: it turns verified claims and a request
// into a policy input, evaluates the active Rego policy set over it and
// returns a Decision.
//
// It sits between claims (which verifies the token) and web (which decodes
// and encodes HTTP). Before Rego runs, the engine asks its Revocations
// whether the token is still honoured; the events package implements that
// interface from the permission-change stream.
package decision

import (
	"time"

	"github.com/wardenauthz/warden/claims"
)

// Reason is the one code that explains a decision. The token_* codes are the
// claims.Code values of a failed verification.
type Reason string

// The reason codes of DESIGN §5.
const (
	ReasonAllowed              Reason = "allowed"
	ReasonPolicyDenied         Reason = "policy_denied"
	ReasonPolicyError          Reason = "policy_error"
	ReasonPolicyTimeout        Reason = "policy_timeout"
	ReasonTokenRevoked         Reason = "token_revoked"
	ReasonTokenStale           Reason = "token_stale"
	ReasonSubjectDisabled      Reason = "subject_disabled"
	ReasonRevocationStateStale Reason = "revocation_state_stale"
)

// Request is the HTTP request a proxy asks about (forward-auth only). Path
// is decoded and normalised; Query is the parsed query string (every value
// of each parameter, in order). Header names are lower-cased, the values of
// a repeated header joined with ", "; authorization and cookie headers are
// removed.
type Request struct {
	Method  string
	Path    string
	Query   map[string][]string
	Host    string
	Headers map[string]string
}

// Input is what a decision is asked about.
type Input struct {
	// Claims are the verified token's. They are nil only for a subject an
	// authenticated AuthZEN caller asserts, named by Subject.
	Claims   *claims.Claims
	Subject  string // the asserted subject; only when Claims is nil
	Action   string
	Resource map[string]any
	Context  map[string]any
	Request  *Request // nil except for forward-auth
	AuthZEN  *AuthZEN // nil except for the AuthZEN routes
}

// subject is the token's sub, or the asserted subject.
func (in *Input) subject() string {
	if in.Claims != nil {
		return in.Claims.Subject
	}
	return in.Subject
}

// AuthZEN is an AuthZEN access evaluation's entities as its caller sent
// them, input.authzen: {"subject": {"type", "id", "properties"}, "action":
// {"name", "properties"}, "resource": {"type", "id", "properties"}}, each
// properties {} when absent. A token that travelled in
// subject.properties.token is not among them.
type AuthZEN struct {
	Subject  Entity
	Action   Action
	Resource Entity
}

// Entity is an AuthZEN subject or resource.
type Entity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties"`
}

// Action is an AuthZEN action.
type Action struct {
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties"`
}

// Decision is the engine's answer. The zero value denies.
//
// Its JSON form is the decision of an Explanation; the field names are those
// of POST /v1/decision's answer.
type Decision struct {
	Allow  bool   `json:"allow"`
	Reason Reason `json:"reason"`
	// Reasons and Headers may be shared with the engine's decision cache:
	// read them, never modify them.
	Reasons  []string          `json:"reasons"`           // from the policy's reasons, sorted; nil when it gives none
	Headers  map[string]string `json:"headers,omitempty"` // from the policy's headers object, on allow only
	Refresh  bool              `json:"refresh"`           // the client should refresh its token and retry
	Revision string            `json:"policy_revision"`   // the policy set revision that decided
}

// Revocations is what the engine needs of the revocation ledger: the reason a
// verified token may no longer be honoured at now, or "" when nothing revokes
// it. Check runs on every decision and must be safe for concurrent use.
type Revocations interface {
	Check(c *claims.Claims, now time.Time) Reason
}
