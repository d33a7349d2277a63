package decision_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
)

// TestQuery: any document of the active set, by OPA's Data API paths.
func TestQuery(t *testing.T) {
	e := shippedEngine(t, decision.Options{})
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		q       decision.Query
		defined bool
		want    any
	}{
		{"a data document", decision.Query{Path: "warden/roles/staff"}, true, []any{"orders:read"}},
		{"an array index", decision.Query{Path: "warden/roles/manager/1"}, true, "orders:approve"},
		{"escaped segments", decision.Query{Path: "warden/%72oles/staff/0"}, true, "orders:read"},
		{"undefined", decision.Query{Path: "warden/nothing"}, false, nil},
		{"a rule over an input", decision.Query{Path: "warden/authz/allow", HasInput: true, Input: map[string]any{
			"token": map[string]any{"claims": map[string]any{"roles": []any{"manager"}}}, "action": "orders:approve",
		}}, true, true},
		{"a rule without input", decision.Query{Path: "warden/authz/allow"}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := e.Query(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if r.Defined != tt.defined || r.Revision != e.Revision() || r.Refused != "" {
				t.Fatalf("%+v, want defined %v at %s", r, tt.defined, e.Revision())
			}
			if diff := cmp.Diff(tt.want, r.Value); tt.defined && diff != "" {
				t.Errorf("value (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := e.Query(ctx, decision.Query{Path: `warden/a"b`}); !errors.Is(err, decision.ErrBadPath) {
		t.Errorf("a quote in the path: %v, want ErrBadPath", err)
	}
	if _, err := e.Query(ctx, decision.Query{HasInput: true, Input: json.Number("x")}); !errors.Is(err, decision.ErrBadInput) {
		t.Errorf("an input that is not JSON: %v, want ErrBadInput", err)
	}
}

// TestQueryRevokedToken: a token the ledger no longer honours leaves the
// result undefined, with the reason, and the policy unasked.
func TestQueryRevokedToken(t *testing.T) {
	e := shippedEngine(t, decision.Options{Revocations: &ledger{reason: decision.ReasonTokenStale}})
	r, err := e.Query(context.Background(), decision.Query{Path: "warden/roles", Tokens: []*claims.Claims{token("alice", []any{"manager"})}})
	if err != nil || r.Defined || r.Refused != decision.ReasonTokenStale {
		t.Errorf("%+v, %v; want undefined, refused token_stale", r, err)
	}
}
