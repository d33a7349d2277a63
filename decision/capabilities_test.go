package decision_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/decision"
)

func TestRestrictedBuiltins(t *testing.T) {
	want := []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}
	if got := decision.RestrictedBuiltins(); !cmp.Equal(got, want) {
		t.Errorf("RestrictedBuiltins() = %q, want %q", got, want)
	}

	// Each call sits at row 4, column 10 of authz.rego.
	for _, tt := range []struct {
		builtin string
		call    string
	}{
		{"http.send", `http.send({"method": "GET", "url": "http://127.0.0.1:1/"})`},
		{"net.lookup_ip_addr", `net.lookup_ip_addr("localhost")`},
		{"opa.runtime", `opa.runtime()`},
	} {
		t.Run(tt.builtin, func(t *testing.T) {
			fsys := files(map[string]string{
				"authz.rego": "package warden.authz\n\nallow if {\n\tresult := " + tt.call + "\n\tresult != null\n}\n",
			})
			opts := testOptions(t)
			_, err := decision.NewEngine(context.Background(), fsys, opts)
			var pe *decision.PolicyError
			if !errors.As(err, &pe) || len(pe.Problems) != 1 {
				t.Fatalf("NewEngine = %v, want a *PolicyError with one problem", err)
			}
			p := pe.Problems[0]
			if p.Code != decision.CodeRestrictedBuiltin || p.File != "authz.rego" || p.Row != 4 || p.Col != 12 {
				t.Errorf("problem = %+v, want %s at authz.rego:4:12", p, decision.CodeRestrictedBuiltin)
			}
			if !strings.Contains(err.Error(), "authz.rego:4:12: restricted_builtin: "+tt.builtin+" is a restricted built-in") {
				t.Errorf("error does not name the built-in and its position:\n%v", err)
			}

			// The same set compiles when network built-ins are allowed.
			// Nothing is evaluated, so nothing is sent.
			opts.AllowNetworkBuiltins = true
			if _, err := decision.NewEngine(context.Background(), fsys, opts); err != nil {
				t.Errorf("NewEngine with AllowNetworkBuiltins: %v", err)
			}
			if _, err := decision.Check(context.Background(), fsys, decision.CheckOptions{AllowNetworkBuiltins: true}); err != nil {
				t.Errorf("Check with AllowNetworkBuiltins: %v", err)
			}
		})
	}
}

// TestRestrictedBuiltinInTests checks that test modules are held to the same
// capabilities: a test may not reach the network either, nor mock a built-in
// the set may not call.
func TestRestrictedBuiltinInTests(t *testing.T) {
	for name, test := range map[string]string{
		"call": "test_send if {\n\thttp.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1/\"})\n}\n",
		"mock": "test_send if {\n\tdata.warden.authz.allow with http.send as {}\n}\n",
	} {
		t.Run(name, func(t *testing.T) {
			fsys := files(map[string]string{
				"authz.rego":      "package warden.authz\n\nallow := true\n",
				"authz_test.rego": "package warden.authz_test\n\n" + test,
			})
			_, err := decision.Test(context.Background(), fsys, decision.TestOptions{})
			var pe *decision.PolicyError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 || pe.Problems[0].File != "authz_test.rego" || pe.Problems[0].Row != 4 {
				t.Fatalf("Test = %v, want a *PolicyError at authz_test.rego:4", err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), "http.send") {
				t.Errorf("the error does not name http.send: %v", err)
			}
			if _, err := decision.Test(context.Background(), fsys, decision.TestOptions{AllowNetworkBuiltins: true}); errors.As(err, &pe) {
				t.Errorf("Test with AllowNetworkBuiltins: %v", err)
			}
		})
	}
}

// TestSchemaRefsStayLocal checks the one network access a permitted
// built-in could make: json.match_schema fetching a schema's remote $ref.
func TestSchemaRefsStayLocal(t *testing.T) {
	var fetched atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"type": "object"}`)
	}))
	defer srv.Close()

	fsys := files(map[string]string{
		"authz.rego": fmt.Sprintf("package warden.authz\n\nallow if {\n\t[ok, _] := json.match_schema(input.resource, {\"$ref\": %q})\n\tok\n}\n", srv.URL+"/schema.json"),
	})
	in := decision.Input{Claims: token("alice", nil), Action: "orders:read", Resource: order}
	for _, allow := range []bool{false, true} {
		opts := testOptions(t)
		opts.AllowNetworkBuiltins = allow
		e, err := decision.NewEngine(context.Background(), fsys, opts)
		if err != nil {
			t.Fatalf("NewEngine: %v", err)
		}
		before := fetched.Load()
		d := e.Decide(context.Background(), in)
		if got := fetched.Load() - before; (got > 0) != allow {
			t.Errorf("AllowNetworkBuiltins %v: the schema was fetched %d times (decision %+v)", allow, got, d)
		}
	}
}
