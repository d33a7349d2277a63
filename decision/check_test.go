package decision_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

func TestCheckShippedPolicies(t *testing.T) {
	cand, err := decision.Check(context.Background(), policies.FS(), decision.CheckOptions{Strict: true})
	if err != nil {
		t.Fatalf("Check(shipped, strict): %v", err)
	}
	want := []string{"admin.rego", "admin_test.rego", "authz.rego", "authz_test.rego", "data.json", "http.rego", "http_test.rego"}
	if !cmp.Equal(cand.Files, want) {
		t.Errorf("Files = %q, want %q", cand.Files, want)
	}
	if e := shippedEngine(t, decision.Options{}); cand.Revision != e.Revision() {
		t.Errorf("Check revision %s, engine revision %s; want the same", cand.Revision, e.Revision())
	}
	if c := cand.Tests.Counts; c.Pass < 20 || c.Pass != c.Total() {
		t.Errorf("tests %+v, want all passing", c)
	}
}

// TestCheckStrict checks that strict mode, the lint of `warden policy
// check`, finds what OPA's strict mode finds (in testdata/policies/strict), with positions, and that
// without it (as an Engine loads) the same set is accepted.
func TestCheckStrict(t *testing.T) {
	fsys := fixture(t, "strict")
	_, err := decision.Check(context.Background(), fsys, decision.CheckOptions{Strict: true})
	var pe *decision.PolicyError
	if !errors.As(err, &pe) {
		t.Fatalf("Check(strict) = %v, want a *PolicyError", err)
	}
	var got []string
	for _, p := range pe.Problems {
		got = append(got, fmt.Sprintf("%s:%d:%d %s", p.File, p.Row, p.Col, p.Code))
	}
	want := []string{
		"authz.rego:3:1 rego_compile_error",  // import data.warden.roles unused
		"authz.rego:8:2 rego_compile_error",  // assigned var unused unused
		"authz.rego:12:1 rego_compile_error", // unused argument x (OPA locates the rule)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("strict problems (-want +got):\n%s\n%v", diff, err)
	}

	if _, err := decision.Check(context.Background(), fsys, decision.CheckOptions{}); err != nil {
		t.Errorf("Check(not strict) = %v, want the set accepted", err)
	}
}

func TestCheckReportsFailingTests(t *testing.T) {
	_, err := decision.Check(context.Background(), fixture(t, "mixed"), decision.CheckOptions{})
	var pe *decision.PolicyError
	if !errors.As(err, &pe) || pe.Tests == nil {
		t.Fatalf("Check = %v, want a *PolicyError with the test report", err)
	}
	if c := pe.Tests.Counts; c.Fail != 2 || c.Error != 1 {
		t.Errorf("report counts %+v, want 2 failed and 1 error", c)
	}
	var got []string
	for _, p := range pe.Problems {
		got = append(got, fmt.Sprintf("%s:%d %s", p.File, p.Row, p.Code))
	}
	want := []string{
		"authz_test.rego:9 " + decision.CodeTestFailed,
		"authz_test.rego:16 " + decision.CodeTestError,
		"authz_test.rego:24 " + decision.CodeTestFailed,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if want := "at authz_test.rego:13:2:"; len(pe.Problems[0].Details) == 0 || pe.Problems[0].Details[0] != want {
		t.Errorf("failed test details = %q, want them to start with %q", pe.Problems[0].Details, want)
	}
}

// TestCheckThenActivate is the path of an API that checks a set before it
// stores it, and activates it later.
func TestCheckThenActivate(t *testing.T) {
	ctx := context.Background()
	e, err := decision.NewEngine(ctx, markerSet("a"), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	revA := e.Revision()
	cand, err := e.Check(ctx, markerSet("b"))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if e.Revision() != revA {
		t.Fatal("Check activated the set")
	}
	prev, err := e.Activate(cand)
	if err != nil || prev != revA || e.Revision() != cand.Revision {
		t.Fatalf("Activate = %s, %v; revision %s; want previous %s and %s active", prev, err, e.Revision(), revA, cand.Revision)
	}
	d := e.Decide(ctx, decision.Input{Claims: token("alice", nil), Action: "orders:read"})
	if !cmp.Equal(d.Reasons, []string{"b"}) || d.Revision != cand.Revision {
		t.Errorf("Decide = %+v, want set b", d)
	}

	// Only this engine's own candidates: another engine's may have been
	// checked with another entrypoint or capabilities.
	other, err := decision.NewEngine(ctx, markerSet("a"), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Check(ctx, markerSet("c"))
	if err != nil {
		t.Fatal(err)
	}
	standalone, err := decision.Check(ctx, markerSet("c"), decision.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*decision.Candidate{"another engine's": foreign, "package-level Check's": standalone, "nil": nil} {
		if _, err := e.Activate(c); err == nil {
			t.Errorf("Activate(%s candidate) succeeded", name)
		}
	}
	if e.Revision() != cand.Revision {
		t.Errorf("a refused Activate changed the revision to %s", e.Revision())
	}
}
