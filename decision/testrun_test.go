package decision_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

// files makes a policy file system from file contents.
func files(m map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, src := range m {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return fsys
}

func TestTestOutcomes(t *testing.T) {
	report, err := decision.Test(context.Background(), fixture(t, "mixed"), decision.TestOptions{})
	if err != nil {
		t.Fatalf("Test: %v", err)
	}
	if report.Passed() {
		t.Error("Passed() = true with a failing test")
	}
	if want := (decision.TestCounts{Pass: 1, Fail: 2, Error: 1, Skip: 1}); report.Counts != want {
		t.Errorf("Counts = %+v, want %+v", report.Counts, want)
	}

	type summary struct {
		Name    string
		Row     int
		Outcome decision.Outcome
	}
	var got []summary
	byName := map[string]decision.TestResult{}
	for _, r := range report.Tests {
		if r.File != "authz_test.rego" || r.Package != "data.warden.authz_test" {
			t.Errorf("%s is in %s, package %s", r.Name, r.File, r.Package)
		}
		got = append(got, summary{r.Name, r.Row, r.Outcome})
		byName[r.Name] = r
	}
	want := []summary{
		{"test_admin_allowed", 5, decision.OutcomePass},
		{"test_guest_allowed", 9, decision.OutcomeFail},
		{"test_level", 16, decision.OutcomeError},
		{"todo_test_later", 20, decision.OutcomeSkip},
		{"test_roles", 24, decision.OutcomeFail},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tests in file order (-want +got):\n%s", diff)
	}

	guest := byName["test_guest_allowed"]
	f := guest.Failure
	if f == nil {
		t.Fatal("failed test has no Failure")
	}
	if f.File != "authz_test.rego" || f.Row != 13 || f.Col != 2 {
		t.Errorf("failed at %s:%d:%d, want authz_test.rego:13:2 (the last expression)", f.File, f.Row, f.Col)
	}
	expr := strings.Join(f.Expr, "\n")
	for _, want := range []string{"authz.allow with input as req", `{"role": "guest"}`} {
		if !strings.Contains(expr, want) {
			t.Errorf("Expr lacks %q:\n%s", want, expr)
		}
	}
	trace := strings.Join(f.Trace, "\n")
	for _, want := range []string{`Note "checking a guest"`, "Fail data.warden.authz.allow with input as req", "authz_test.rego:13"} {
		if !strings.Contains(trace, want) {
			t.Errorf("Trace lacks %q:\n%s", want, trace)
		}
	}
	if !strings.Contains(guest.Output, `guest input {"role": "guest"}`) {
		t.Errorf("Output = %q, want the print() line", guest.Output)
	}
	if guest.Duration <= 0 {
		t.Errorf("Duration = %v", guest.Duration)
	}

	if cases := byName["test_roles"].Failure.Cases; !cmp.Equal(cases, []string{"intern"}) {
		t.Errorf("failed cases = %q, want [intern]", cases)
	}

	e := byName["test_level"].Error
	if e == nil || e.Code != "eval_conflict_error" || e.File != "authz.rego" || e.Row != 9 {
		t.Errorf("Error = %+v, want eval_conflict_error at authz.rego:9", e)
	}
}

func TestTestRunFilter(t *testing.T) {
	for _, tt := range []struct {
		run  string
		want []string
	}{
		{"admin", []string{"test_admin_allowed"}},
		{`^data\.warden\.authz_test\.test_(admin|level)`, []string{"test_admin_allowed", "test_level"}},
		{"nothing matches this", nil},
	} {
		t.Run(tt.run, func(t *testing.T) {
			report, err := decision.Test(context.Background(), fixture(t, "mixed"), decision.TestOptions{Run: tt.run})
			if err != nil {
				t.Fatalf("Test: %v", err)
			}
			var got []string
			for _, r := range report.Tests {
				got = append(got, r.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tests run (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := decision.Test(context.Background(), fixture(t, "mixed"), decision.TestOptions{Run: "("}); err == nil || !strings.Contains(err.Error(), `"("`) {
		t.Errorf("Test with an invalid filter: %v, want an error naming it", err)
	}
}

// TestCoverage runs a tiny policy (testdata/policies/coverage) whose covered
// lines are known: the test takes the first allow rule (lines 5-6); the rule
// indexer never tries the second (9-11), and the default (3) is not
// evaluated because allow is defined. `opa test --coverage` v1.22.2 reports
// the same figures for these two files.
func TestCoverage(t *testing.T) {
	fsys := fixture(t, "coverage")
	report, err := decision.Test(context.Background(), fsys, decision.TestOptions{Coverage: true})
	if err != nil {
		t.Fatalf("Test: %v", err)
	}
	if !report.Passed() || report.Counts.Pass != 1 {
		t.Fatalf("report = %+v, want one passing test", report.Counts)
	}
	want := &decision.Coverage{
		Files: []decision.FileCoverage{
			{
				File: "authz.rego", CoveredLines: 2, NotCoveredLines: 4, Percent: 100.0 * 2 / 6,
				Covered:    []decision.LineRange{{Start: 5, End: 6}},
				NotCovered: []decision.LineRange{{Start: 3, End: 3}, {Start: 9, End: 11}},
			},
			{
				File: "authz_test.rego", CoveredLines: 2, NotCoveredLines: 0, Percent: 100,
				Covered: []decision.LineRange{{Start: 5, End: 6}},
			},
		},
		CoveredLines: 4, NotCoveredLines: 4, Percent: 50,
	}
	if diff := cmp.Diff(want, report.Coverage, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("coverage (-want +got):\n%s", diff)
	}

	report, err = decision.Test(context.Background(), fsys, decision.TestOptions{})
	if err != nil || report.Coverage != nil {
		t.Errorf("without Coverage: %v, coverage %+v; want none", err, report.Coverage)
	}
}

func TestTestShippedPolicies(t *testing.T) {
	report, err := decision.Test(context.Background(), policies.FS(), decision.TestOptions{Coverage: true})
	if err != nil {
		t.Fatalf("Test: %v", err)
	}
	if !report.Passed() || report.Counts.Pass < 20 || report.Counts.Pass != report.Counts.Total() {
		t.Errorf("shipped tests: %+v, want all of at least 20 passing", report.Counts)
	}
	for _, f := range report.Coverage.Files {
		if f.Percent < 100 && !strings.HasSuffix(f.File, "_test.rego") {
			t.Logf("%s: %.1f%% covered, not covered: %v", f.File, f.Percent, f.NotCovered)
		}
	}
}

func TestTestRefusesWhatDoesNotCompile(t *testing.T) {
	_, err := decision.Test(context.Background(), files(map[string]string{
		"p_test.rego": "package p_test\n\ntest_x if {\n\tx := 1 + \"a\"\n\tx > 0\n}\n",
	}), decision.TestOptions{})
	var pe *decision.PolicyError
	if !errors.As(err, &pe) || len(pe.Problems) != 1 || pe.Problems[0].Row != 4 || pe.Problems[0].Code != "rego_type_error" {
		t.Fatalf("Test = %v, want a *PolicyError with a type error at row 4", err)
	}
}

// TestReportJSON pins the JSON names CI pipelines and the admin API read.
func TestReportJSON(t *testing.T) {
	report, err := decision.Test(context.Background(), fixture(t, "mixed"), decision.TestOptions{Run: "guest", Coverage: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(report)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests []struct {
			Package, Name, File, Outcome string
			Row, Col                     int
			DurationNS                   int64 `json:"duration_ns"`
			Failure                      struct {
				File  string
				Row   int
				Expr  []string
				Trace []string
			}
		}
		Counts   map[string]int
		Coverage struct {
			Percent float64
			Files   []struct {
				File       string
				NotCovered []struct{ Start, End int } `json:"not_covered"`
			}
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tests) != 1 {
		t.Fatalf("%s", raw)
	}
	tr := doc.Tests[0]
	if tr.Outcome != "fail" || tr.Row != 9 || tr.DurationNS <= 0 || tr.Failure.Row != 13 || len(tr.Failure.Expr) == 0 || len(tr.Failure.Trace) == 0 {
		t.Errorf("test JSON lacks fields:\n%s", raw)
	}
	if doc.Counts["fail"] != 1 || doc.Coverage.Percent <= 0 || len(doc.Coverage.Files) == 0 {
		t.Errorf("counts or coverage JSON lacks fields:\n%s", raw)
	}
}

// TestEngineTestChecksLikeActivation: an engine's Test refuses what
// activation would refuse before any test runs — a set without the
// entrypoint's allow rule, a call of a restricted built-in — and runs the
// tests of a set it would accept with the requested options.
func TestEngineTestChecksLikeActivation(t *testing.T) {
	ctx := context.Background()
	e, err := decision.NewEngine(ctx, policies.FS(), decision.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		set  map[string]string
		want string
	}{
		{"no allow rule", map[string]string{
			"p.rego":      "package warden.authz\n\ngranted := true\n",
			"p_test.rego": "package warden.authz_test\n\ntest_granted if data.warden.authz.granted\n",
		}, "no rule defines data.warden.authz.allow"},
		{"restricted built-in", map[string]string{
			"p.rego": "package warden.authz\n\nallow if http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1\"}).status_code == 200\n",
		}, "http.send"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The package-level Test runs the first set's test happily; the
			// engine refuses both sets as activation would.
			_, err := e.Test(ctx, files(tt.set), decision.TestOptions{})
			var pe *decision.PolicyError
			if !errors.As(err, &pe) || !strings.Contains(pe.Error(), tt.want) {
				t.Errorf("Engine.Test = %v, want a *PolicyError mentioning %q", err, tt.want)
			}
		})
	}

	report, err := e.Test(ctx, policies.FS(), decision.TestOptions{Run: "owner", Coverage: true})
	if err != nil {
		t.Fatal(err)
	}
	if report.Counts.Pass == 0 || report.Counts.Fail != 0 || report.Coverage == nil {
		t.Errorf("Engine.Test of the shipped set with coverage = %+v", report.Counts)
	}
	for _, r := range report.Tests {
		if !strings.Contains(r.Name, "owner") {
			t.Errorf("the run filter let %s through", r.Name)
		}
	}
	if _, err := e.Test(ctx, policies.FS(), decision.TestOptions{Run: "("}); !errors.Is(err, decision.ErrTestFilter) {
		t.Errorf("Engine.Test with an invalid filter = %v, want ErrTestFilter", err)
	}
}
