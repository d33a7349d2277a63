package events

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/rego"
)

// eventCases are raw event documents with whether schema version 1 accepts
// them and, when not, a fragment of the error. schema says whether
// event.schema.json can express the rule (it cannot see duplicate keys,
// invalid UTF-8 or the document's size).
var eventCases = []struct {
	name   string
	doc    string
	ok     bool
	errHas string
	schema bool
}{
	{"roles_changed", `{"v":1,"id":"e1","type":"roles_changed","subject":"alice","issuer":"https://idp.example.com/","at":"2026-11-23T10:00:00Z","perm_version":7,"actor":"admin@example.com","reason":"demoted"}`, true, "", true},
	{"sessions_revoked", `{"v":1,"id":"e1","type":"sessions_revoked","subject":"alice","at":"2026-11-23T10:00:00.123456789+01:00"}`, true, "", true},
	{"token_revoked", `{"v":1,"id":"e1","type":"token_revoked","subject":"alice","at":"2026-11-23T10:00:00Z","jti":"t-1","expires_at":"2026-11-23T11:00:00Z"}`, true, "", true},
	{"subject_disabled", `{"v":1,"id":"e1","type":"subject_disabled","subject":"alice","at":"2026-11-23T10:00:00Z"}`, true, "", true},
	{"subject_enabled", `{"v":1,"id":"e1","type":"subject_enabled","subject":"alice","at":"2026-11-23T10:00:00Z"}`, true, "", true},
	{"e-mail subject", `{"v":1,"id":"e1","type":"roles_changed","subject":"alice.smith@example.com","at":"2026-11-23T10:00:00Z"}`, true, "", true},
	{"URN subject with spaces and unicode", `{"v":1,"id":"e1","type":"roles_changed","subject":"urn:ex:user:Zoë Ñúñez 用户 > *","at":"2026-11-23T10:00:00Z"}`, true, "", true},

	{"garbage", `\x00\x01garbage`, false, "not a JSON object", true},
	{"array", `[1,2]`, false, "not a JSON object", true},
	{"empty object", `{}`, false, "v: required", true},
	{"unknown field", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","at":"2026-11-23T10:00:00Z","role":"x"}`, false, `unknown field "role"`, true},
	{"misspelt expires_at", `{"v":1,"id":"e1","type":"token_revoked","subject":"a","jti":"j","at":"2026-11-23T10:00:00Z","expire_at":"2026-11-23T10:00:00Z"}`, false, `unknown field "expire_at"`, true},
	{"case variant", `{"v":1,"id":"e1","type":"roles_changed","Subject":"a","at":"2026-11-23T10:00:00Z"}`, false, `unknown field "Subject"`, true},
	{"duplicate field", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","subject":"b","at":"2026-11-23T10:00:00Z"}`, false, `duplicate field "subject"`, false},
	{"null value", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","issuer":null,"at":"2026-11-23T10:00:00Z"}`, false, "issuer: null", true},
	{"missing v", `{"id":"e1","type":"roles_changed","subject":"a","at":"2026-11-23T10:00:00Z"}`, false, "v: required", true},
	{"v 2", `{"v":2,"id":"e1","type":"roles_changed","subject":"a","at":"2026-11-23T10:00:00Z"}`, false, "unsupported version 2", true},
	{"v string", `{"v":"1","id":"e1","type":"roles_changed","subject":"a","at":"2026-11-23T10:00:00Z"}`, false, "v: want an integer", true},
	{"missing id", `{"v":1,"type":"roles_changed","subject":"a","at":"2026-11-23T10:00:00Z"}`, false, "id: required", true},
	{"unknown type", `{"v":1,"id":"e1","type":"role_changed","subject":"a","at":"2026-11-23T10:00:00Z"}`, false, `unknown type "role_changed"`, true},
	{"missing type", `{"v":1,"id":"e1","subject":"a","at":"2026-11-23T10:00:00Z"}`, false, "type: required", true},
	{"missing subject", `{"v":1,"id":"e1","type":"roles_changed","at":"2026-11-23T10:00:00Z"}`, false, "subject: required", true},
	{"empty subject", `{"v":1,"id":"e1","type":"roles_changed","subject":"","at":"2026-11-23T10:00:00Z"}`, false, "subject: required", true},
	{"missing at", `{"v":1,"id":"e1","type":"roles_changed","subject":"a"}`, false, "at: required", true},
	{"unparsable at", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","at":"yesterday"}`, false, `at: unparsable time "yesterday"`, true},
	{"at without zone", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","at":"2026-11-23T10:00:00"}`, false, "at: unparsable time", true},
	{"at as number", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","at":1795000000}`, false, "at: want an RFC 3339 time string", true},
	{"token_revoked without jti", `{"v":1,"id":"e1","type":"token_revoked","subject":"a","at":"2026-11-23T10:00:00Z"}`, false, "jti: required for token_revoked", true},
	{"jti on sessions_revoked", `{"v":1,"id":"e1","type":"sessions_revoked","subject":"a","jti":"j","at":"2026-11-23T10:00:00Z"}`, false, "jti: only for token_revoked", true},
	{"expires_at on roles_changed", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","expires_at":"2026-11-23T10:00:00Z","at":"2026-11-23T10:00:00Z"}`, false, "expires_at: only for token_revoked", true},
	{"perm_version on token_revoked", `{"v":1,"id":"e1","type":"token_revoked","subject":"a","jti":"j","perm_version":3,"at":"2026-11-23T10:00:00Z"}`, false, "perm_version: only for", true},
	{"negative perm_version", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","perm_version":-1,"at":"2026-11-23T10:00:00Z"}`, false, "perm_version: -1 is out of range", true},
	{"fractional perm_version", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","perm_version":1.5,"at":"2026-11-23T10:00:00Z"}`, false, "perm_version: want an integer", true},
	{"subject too long", `{"v":1,"id":"e1","type":"roles_changed","subject":"` + strings.Repeat("a", MaxSubjectLen+1) + `","at":"2026-11-23T10:00:00Z"}`, false, "subject: 1025 bytes", true},
	{"reason too long", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","reason":"` + strings.Repeat("r", MaxReasonLen+1) + `","at":"2026-11-23T10:00:00Z"}`, false, "reason: 1025 bytes", true},
	{"oversize document", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","at":"2026-11-23T10:00:00Z","reason":"` + strings.Repeat(" ", MaxEventBytes) + `"}`, false, "over the limit of 8192", false},
	{"invalid UTF-8", "{\"v\":1,\"id\":\"e1\",\"type\":\"roles_changed\",\"subject\":\"a\xff\",\"at\":\"2026-11-23T10:00:00Z\"}", false, "not valid UTF-8", false},
	{"trailing data", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","at":"2026-11-23T10:00:00Z"} {}`, false, "after top-level value", false},
	{"truncated", `{"v":1,"id":"e1","type":"roles_changed"`, false, "malformed JSON", true},
	{"escaped field name", `{"v":1,"id":"e1","type":"roles_changed","sub\u006aect":"a","at":"2026-11-23T10:00:00Z"}`, false, "unknown field", false},
	{"nested values are skipped correctly", `{"v":1,"id":"e1","type":"roles_changed","subject":"a,}\"]","at":"2026-11-23T10:00:00Z","actor":"x"}`, true, "", true},
	{"object value", `{"v":1,"id":"e1","type":"roles_changed","subject":{"a":[1,{"b":null}]},"at":"2026-11-23T10:00:00Z"}`, false, "subject: want a string", true},
	{"empty at", `{"v":1,"id":"e1","type":"roles_changed","subject":"a","at":""}`, false, `at: unparsable time ""`, true},
	{"whitespace everywhere", " \n{ \"v\" : 1 ,\"id\":\"e1\", \"type\":\"roles_changed\",\"subject\" :\"a\",\"at\": \"2026-11-23T10:00:00Z\" } \n", true, "", true},
	{"several problems", `{"v":1,"type":"token_revoked","at":"2026-11-23T10:00:00Z"}`, false, "deduplicates publishing); subject: required (the token's sub); jti: required", true},
}

func TestParse(t *testing.T) {
	for _, tc := range eventCases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse([]byte(tc.doc))
			if tc.ok {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				// What Parse accepts survives a round trip unchanged.
				data, err := json.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				again, err := Parse(data)
				if err != nil {
					t.Fatalf("Parse(Marshal(e)): %v\n%s", err, data)
				}
				if diff := cmp.Diff(e, again); diff != "" {
					t.Errorf("round trip (-first +second):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted %s", tc.doc)
			}
			if !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("error %v does not wrap ErrInvalidEvent", err)
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error %q does not say %q", err, tc.errHas)
			}
		})
	}
}

// TestSchemaAgrees checks event.schema.json against Parse on every case the
// schema can express, with OPA's JSON Schema validator (json.match_schema),
// so that external publishers validating with the schema get the verdict a
// replica gives.
func TestSchemaAgrees(t *testing.T) {
	var schema any
	if err := json.Unmarshal(Schema, &schema); err != nil {
		t.Fatalf("event.schema.json: %v", err)
	}
	query, err := rego.New(rego.Query("[ok, _] := json.match_schema(input.doc, input.schema)")).
		PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range eventCases {
		if !tc.schema {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			var doc any
			if err := json.Unmarshal([]byte(tc.doc), &doc); err != nil {
				if tc.ok {
					t.Fatal(err)
				}
				return // not JSON: nothing for a schema to say
			}
			rs, err := query.Eval(context.Background(), rego.EvalInput(map[string]any{"doc": doc, "schema": schema}))
			if err != nil {
				t.Fatal(err)
			}
			if got := rs[0].Bindings["ok"]; got != tc.ok {
				t.Errorf("schema says %v, Parse says %v", got, tc.ok)
			}
		})
	}
}

// TestSchemaMatchesGo keeps the schema's field list and type enum in step
// with the Go definitions.
func TestSchemaMatchesGo(t *testing.T) {
	var schema struct {
		Properties map[string]struct {
			Enum []string `json:"enum"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(Schema, &schema); err != nil {
		t.Fatal(err)
	}
	var props []string
	for name := range schema.Properties {
		props = append(props, name)
	}
	var fields []string
	for name := range fieldIndex {
		fields = append(fields, name)
	}
	slices.Sort(props)
	slices.Sort(fields)
	if diff := cmp.Diff(fields, props); diff != "" {
		t.Errorf("schema properties vs Go fields (-go +schema):\n%s", diff)
	}
	var types []string
	for _, ty := range Types {
		types = append(types, string(ty))
	}
	if diff := cmp.Diff(types, schema.Properties["type"].Enum); diff != "" {
		t.Errorf("schema type enum vs Types (-go +schema):\n%s", diff)
	}
}

func TestTypeSubjects(t *testing.T) {
	want := map[Type]string{
		TypeRolesChanged:    SubjectRolesChanged,
		TypeSessionsRevoked: SubjectSessionsRevoked,
		TypeTokenRevoked:    SubjectTokenRevoked,
		TypeSubjectDisabled: SubjectSubjectDisabled,
		TypeSubjectEnabled:  SubjectSubjectEnabled,
	}
	for _, ty := range Types {
		if got := ty.Subject(); got != want[ty] || got != "warden.events."+string(ty) {
			t.Errorf("%s.Subject() = %q", ty, got)
		}
	}
}

func TestValidateAtRange(t *testing.T) {
	for _, at := range []time.Time{time.Unix(0, 0), time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		e := Event{V: 1, ID: "x", Type: TypeRolesChanged, Subject: "a", At: at}
		if err := e.Validate(); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("at %s: %v", at, err)
		}
	}
}

// FuzzParse checks that no input makes Parse panic, and that whatever it
// accepts survives a round trip unchanged.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 1m ./events/
func FuzzParse(f *testing.F) {
	for _, tc := range eventCases {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error %v does not wrap ErrInvalidEvent", err)
			}
			return
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(%q))) = %v", data, err)
		}
		if diff := cmp.Diff(e, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
