package decision_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

// TestInput checks the policy input against DESIGN §3 as the policy sees
// it: every claim with its JSON type, the header, subject, action, resource
// and context ({} when absent), and request only for forward-auth. The
// policy, testdata/policies/echo, allows everything and returns the input it
// saw, as JSON, as its only reason.
func TestInput(t *testing.T) {
	e, err := decision.NewEngine(context.Background(), fixture(t, "echo"), testOptions(t))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	rich := &claims.Claims{
		Subject: "alice",
		Header:  claims.Header{Alg: "RS256"}, // no kid, no typ
		Raw: map[string]any{
			"sub":     "alice",
			"iat":     json.Number("1795428000"),
			"pv":      json.Number("7"),
			"score":   json.Number("0.5"),
			"big":     json.Number("123456789012345678901234567890"),
			"admin":   false,
			"nothing": nil,
			"roles":   []any{"staff", json.Number("1"), nil, true},
			"org":     map[string]any{"id": "o1", "tags": []any{}},
		},
	}
	tests := []struct {
		name string
		in   decision.Input
		want string // JSON of the input the policy sees
	}{
		{
			name: "decision API",
			in: decision.Input{
				Claims:   token("alice", []any{"manager"}),
				Action:   "orders:approve",
				Resource: map[string]any{"type": "order", "id": "42", "owner": "bob"},
				Context:  map[string]any{"ip": "10.0.0.1", "n": json.Number("3")},
			},
			want: `{
				"token": {
					"claims": {"sub": "alice", "iss": "warden-dev", "aud": "warden", "iat": 1795428000,
						"exp": 1795428900, "jti": "tok-alice", "roles": ["manager"]},
					"header": {"alg": "ES256", "kid": "dev-1", "typ": "JWT"}
				},
				"subject": "alice",
				"action": "orders:approve",
				"resource": {"type": "order", "id": "42", "owner": "bob"},
				"context": {"ip": "10.0.0.1", "n": 3}
			}`,
		},
		{
			name: "JSON types preserved, nil resource and context are empty objects",
			in:   decision.Input{Claims: rich, Action: "orders:read"},
			want: `{
				"token": {
					"claims": {"sub": "alice", "iat": 1795428000, "pv": 7, "score": 0.5,
						"big": 123456789012345678901234567890, "admin": false, "nothing": null,
						"roles": ["staff", 1, null, true], "org": {"id": "o1", "tags": []}},
					"header": {"alg": "RS256"}
				},
				"subject": "alice",
				"action": "orders:read",
				"resource": {},
				"context": {}
			}`,
		},
		{
			name: "Go types of an Input built by hand",
			in: decision.Input{
				Claims: token("alice", nil),
				Action: "orders:read",
				Resource: map[string]any{
					"f": 2.5, "i": 42, "i64": int64(-7), "ss": []string{"a", "b"},
					"ms": map[string]string{"k": "v"}, "u8": uint8(3),
				},
			},
			want: `{
				"token": {
					"claims": {"sub": "alice", "iss": "warden-dev", "aud": "warden", "iat": 1795428000,
						"exp": 1795428900, "jti": "tok-alice"},
					"header": {"alg": "ES256", "kid": "dev-1", "typ": "JWT"}
				},
				"subject": "alice",
				"action": "orders:read",
				"resource": {"f": 2.5, "i": 42, "i64": -7, "ss": ["a", "b"], "ms": {"k": "v"}, "u8": 3},
				"context": {}
			}`,
		},
		{
			name: "forward-auth request",
			in: decision.Input{
				Claims: token("alice", nil),
				Request: &decision.Request{
					Method: "GET", Path: "/orders/42", Query: map[string][]string{"full": {"1"}, "tag": {"a", "b"}}, Host: "api.example.com",
					Headers: map[string]string{"accept": "application/json"},
				},
			},
			want: `{
				"token": {
					"claims": {"sub": "alice", "iss": "warden-dev", "aud": "warden", "iat": 1795428000,
						"exp": 1795428900, "jti": "tok-alice"},
					"header": {"alg": "ES256", "kid": "dev-1", "typ": "JWT"}
				},
				"subject": "alice",
				"action": "",
				"resource": {},
				"context": {},
				"request": {"method": "GET", "path": "/orders/42", "query": {"full": ["1"], "tag": ["a", "b"]},
					"host": "api.example.com", "headers": {"accept": "application/json"}}
			}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Decide(context.Background(), tt.in)
			if !d.Allow || len(d.Reasons) != 1 {
				t.Fatalf("Decide = %+v, want allow with the input as the one reason", d)
			}
			if diff := cmp.Diff(decodeJSON(t, tt.want), decodeJSON(t, d.Reasons[0])); diff != "" {
				t.Errorf("policy input (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInputRejected checks that values with no JSON form deny with
// policy_error rather than reach the policy in some other shape.
func TestInputRejected(t *testing.T) {
	e, err := decision.NewEngine(context.Background(), fixture(t, "echo"), testOptions(t))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	for name, v := range map[string]any{
		"NaN":                math.NaN(),
		"infinity":           math.Inf(1),
		"malformed number":   json.Number("12abc"),
		"number as a word":   json.Number("Infinity"),
		"huge exponent":      json.Number("1e999999999999"),
		"nested bad":         []any{map[string]any{"x": math.NaN()}},
		"unmarshalable type": make(chan int),
	} {
		t.Run(name, func(t *testing.T) {
			d := e.Decide(context.Background(), decision.Input{
				Claims: token("alice", nil), Action: "orders:read", Resource: map[string]any{"v": v},
			})
			want := decision.Decision{Reason: decision.ReasonPolicyError, Revision: e.Revision()}
			if diff := cmp.Diff(want, d); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}
