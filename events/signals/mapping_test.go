package signals

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/events"
)

func TestMap(t *testing.T) {
	iat := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	changed := time.Date(2026, 12, 1, 9, 59, 30, 0, time.UTC)
	m, err := NewMapper(map[string]string{RISCAccountEnabled: Ignore}, []string{"https://idp.example.com/"}, RuleSub, RuleIgnore)
	if err != nil {
		t.Fatal(err)
	}
	alice := map[string]any{"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "alice"}
	stamp := map[string]any{"event_timestamp": json.Number("1796119170")} // changed
	tests := []struct {
		name      string
		typ       string
		payload   map[string]any
		subject   map[string]any
		outcome   Outcome
		wantType  events.Type
		wantSub   string
		wantIss   string
		wantJTI   string
		wantAt    time.Time
		inPayload bool // the subject is in the event (CAEP drafts), not sub_id
	}{
		{name: "session-revoked", typ: CAEPSessionRevoked, payload: stamp, subject: alice, outcome: OutcomeMapped, wantType: events.TypeSessionsRevoked, wantSub: "alice", wantIss: "https://idp.example.com/", wantAt: changed},
		{name: "token-claims-change", typ: CAEPTokenClaimsChange, subject: alice, outcome: OutcomeMapped, wantType: events.TypeRolesChanged, wantSub: "alice", wantIss: "https://idp.example.com/", wantAt: iat},
		{name: "assurance-level-change", typ: CAEPAssuranceLevelChange, subject: alice, outcome: OutcomeMapped, wantType: events.TypeRolesChanged, wantSub: "alice", wantIss: "https://idp.example.com/", wantAt: iat},
		{name: "credential-change", typ: CAEPCredentialChange, subject: alice, outcome: OutcomeMapped, wantType: events.TypeSessionsRevoked, wantSub: "alice", wantIss: "https://idp.example.com/", wantAt: iat},
		{name: "account-disabled", typ: RISCAccountDisabled, subject: alice, outcome: OutcomeMapped, wantType: events.TypeSubjectDisabled, wantSub: "alice", wantIss: "https://idp.example.com/", wantAt: iat},
		{name: "risc sessions-revoked", typ: RISCSessionsRevoked, subject: alice, outcome: OutcomeMapped, wantType: events.TypeSessionsRevoked, wantSub: "alice", wantIss: "https://idp.example.com/", wantAt: iat},
		{name: "subject in the event", typ: CAEPSessionRevoked, payload: map[string]any{"subject": alice}, inPayload: true, outcome: OutcomeMapped, wantType: events.TypeSessionsRevoked, wantSub: "alice", wantIss: "https://idp.example.com/", wantAt: iat},
		{name: "email under rule sub", typ: CAEPSessionRevoked, subject: map[string]any{"format": "email", "email": "a@example.com"}, outcome: OutcomeMapped, wantType: events.TypeSessionsRevoked, wantSub: "a@example.com", wantAt: iat},
		{name: "jwt_id in a complex subject", typ: CAEPSessionRevoked, subject: map[string]any{"format": "complex", "user": alice, "session": map[string]any{"format": "jwt_id", "iss": "https://idp.example.com/", "jti": "t-1"}}, outcome: OutcomeMapped, wantType: events.TypeTokenRevoked, wantSub: "alice", wantIss: "https://idp.example.com/", wantJTI: "t-1", wantAt: iat},
		{name: "configured ignore", typ: RISCAccountEnabled, subject: alice, outcome: OutcomeIgnored},
		{name: "verification", typ: SSFVerification, payload: map[string]any{"state": "s"}, outcome: OutcomeVerification},
		{name: "unknown type", typ: "https://example.com/x", subject: alice, outcome: OutcomeUnknownType},
		{name: "opaque under rule ignore", typ: CAEPSessionRevoked, subject: map[string]any{"format": "opaque", "id": "u1"}, outcome: OutcomeUnresolved},
		{name: "iss_sub of an untrusted issuer", typ: CAEPSessionRevoked, subject: map[string]any{"format": "iss_sub", "iss": "https://other/", "sub": "alice"}, outcome: OutcomeUnresolved},
		{name: "iss_sub without sub", typ: CAEPSessionRevoked, subject: map[string]any{"format": "iss_sub", "iss": "https://idp.example.com/"}, outcome: OutcomeUnresolved},
		{name: "bare jwt_id", typ: CAEPSessionRevoked, subject: map[string]any{"format": "jwt_id", "iss": "https://idp.example.com/", "jti": "t-1"}, outcome: OutcomeUnresolved},
		{name: "phone number", typ: CAEPSessionRevoked, subject: map[string]any{"format": "phone_number", "phone_number": "+1"}, outcome: OutcomeUnresolved},
		{name: "no subject", typ: CAEPSessionRevoked, outcome: OutcomeUnresolved},
		{name: "event_timestamp a string", typ: CAEPSessionRevoked, payload: map[string]any{"event_timestamp": "yesterday"}, subject: alice, outcome: OutcomeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := map[string]any{}
			for k, v := range tt.payload {
				payload[k] = v
			}
			s := SET{JTI: "j", Issuer: "https://idp.example.com/", IAT: iat, Events: []SETEvent{{Type: tt.typ, Payload: payload}}}
			if !tt.inPayload {
				s.SubID = tt.subject
			}
			got := m.Map(s, "k")
			if len(got) != 1 || got[0].Outcome != tt.outcome {
				t.Fatalf("Map = %+v, want outcome %s", got, tt.outcome)
			}
			if tt.outcome != OutcomeMapped {
				if got[0].Event != nil {
					t.Errorf("event %+v for outcome %s", got[0].Event, tt.outcome)
				}
				return
			}
			want := events.Event{V: 1, ID: "k-0", Type: tt.wantType, Subject: tt.wantSub, Issuer: tt.wantIss, JTI: tt.wantJTI, At: tt.wantAt,
				Actor: "ssf:https://idp.example.com/", Reason: tt.typ}
			if diff := cmp.Diff(want, *got[0].Event); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewMapperRefuses(t *testing.T) {
	for name, build := range map[string]func() error{
		"unknown warden type": func() error {
			_, err := NewMapper(map[string]string{CAEPSessionRevoked: "logout"}, nil, RuleSub, RuleSub)
			return err
		},
		"unknown email rule": func() error { _, err := NewMapper(nil, nil, "lowercase", RuleSub); return err },
	} {
		if build() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseSET(t *testing.T) {
	raw := func(m map[string]any) *claims.Claims {
		c := &claims.Claims{ID: "j", Issuer: "i", Raw: m}
		if jti, ok := m["jti"].(string); ok {
			c.ID = jti
		}
		return c
	}
	ev := map[string]any{CAEPSessionRevoked: map[string]any{}, RISCAccountDisabled: map[string]any{}}
	s, err := ParseSET(raw(map[string]any{"events": ev, "txn": "t", "sub_id": map[string]any{"format": "opaque", "id": "u"}}))
	if err != nil {
		t.Fatal(err)
	}
	if s.TXN != "t" || len(s.Events) != 2 || s.Events[0].Type != CAEPSessionRevoked || s.SubID["id"] != "u" {
		t.Errorf("ParseSET = %+v", s)
	}
	for name, m := range map[string]map[string]any{
		"no events":        {},
		"empty events":     {"events": map[string]any{}},
		"events an array":  {"events": []any{}},
		"event not object": {"events": map[string]any{CAEPSessionRevoked: "x"}},
		"txn a number":     {"events": ev, "txn": json.Number("1")},
		"sub_id a string":  {"events": ev, "sub_id": "alice"},
	} {
		if _, err := ParseSET(raw(m)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := raw(map[string]any{"events": ev})
	c.ID = ""
	if _, err := ParseSET(c); err == nil {
		t.Error("no jti: accepted")
	}
}
