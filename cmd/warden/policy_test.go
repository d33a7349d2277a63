package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

// runPolicy runs "warden policy args..." through run, as main would.
func runPolicy(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), append([]string{"warden", "policy"}, args...), env(nil), nil, &out, &errOut)
	return out.String(), errOut.String(), err
}

// fixtureSet copies the policy set testdata/policies/<name> at the root of
// the repository (decision's tests use the same sets) into a new temporary
// directory, so that the paths in the output are the test's own.
func fixtureSet(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "testdata", "policies", name))); err != nil {
		t.Fatalf("policy fixture: %v", err)
	}
	return dir
}

// writeSet writes a policy set into a new temporary directory.
func writeSet(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var sendingSet = map[string]string{
	"authz.rego": "package warden.authz\n\nallow if {\n\tresp := http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1/\"})\n\tresp.status_code == 200\n}\n",
}

func TestPolicyTestCommand(t *testing.T) {
	failing := fixtureSet(t, "mixed")
	covered := fixtureSet(t, "coverage")
	typeError := writeSet(t, map[string]string{"authz.rego": "package warden.authz\n\nallow if {\n\tx := 1 + \"a\"\n\tx > 0\n}\n"})
	sending := writeSet(t, sendingSet)
	file := filepath.Join(failing, "authz.rego")

	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
		want    []string
		notWant []string
	}{
		{
			name: "shipped policies",
			args: []string{"test"},
			want: []string{
				"authz_test.rego:\ndata.warden.authz_test.test_manager_may_approve: PASS (",
				"admin_test.rego:\ndata.warden.admin_test.test_warden_admin_allowed: PASS (",
				fmt.Sprintf("\nPASS: %d/%d\n", shippedTests(t), shippedTests(t)),
			},
			notWant: []string{"FAIL", "COVERAGE"},
		},
		{
			name:    "failures, errors and skips",
			args:    []string{"test", failing},
			wantErr: failing + ": 3 of 5 tests failed",
			want: []string{
				failing + "/authz_test.rego:\n",
				"data.warden.authz_test.test_admin_allowed: PASS (",
				"data.warden.authz_test.test_guest_allowed: FAIL (",
				"  failed at " + failing + "/authz_test.rego:13:2:\n    authz.allow with input as req\n",
				`authz_test.rego:11     | | Note "checking a guest"`,
				"  output:\n    guest input {\"role\": \"guest\"}\n",
				"data.warden.authz_test.test_level: ERROR (",
				"  " + failing + "/authz.rego:9:1: eval_conflict_error: rule data.warden.authz.level produced conflicting values:",
				"data.warden.authz_test.todo_test_later: SKIPPED\n",
				"data.warden.authz_test.test_roles: FAIL (",
				"  failed at " + failing + "/authz_test.rego:26:2:\n",
				"  case intern: FAIL\n",
				"PASS: 1/5\nFAIL: 2/5\nSKIPPED: 1/5\nERROR: 1/5\n",
			},
		},
		{
			name:    "run filter, flags after the directory",
			args:    []string{"test", failing, "--run", "admin"},
			want:    []string{"data.warden.authz_test.test_admin_allowed: PASS (", "PASS: 1/1\n"},
			notWant: []string{"guest", "test_level"},
		},
		{
			name: "coverage",
			args: []string{"test", "--coverage", covered},
			want: []string{
				"PASS: 1/1\n",
				"COVERAGE\n",
				"  " + covered + "/authz.rego        33.3%  2/6 lines  not covered: 3, 9-11\n",
				"  " + covered + "/authz_test.rego  100.0%  2/2 lines\n",
				"total",
				"50.0%  4/8 lines\n",
			},
		},
		{
			name:    "a set that does not compile",
			args:    []string{"test", typeError},
			wantErr: typeError + ": 1 problem",
			want:    []string{typeError + "/authz.rego:4:7: rego_type_error: plus: invalid argument(s)\n\thave: (number, string, ???)"},
		},
		{
			name:    "restricted built-in",
			args:    []string{"test", sending},
			wantErr: "1 problem",
			want:    []string{sending + "/authz.rego:4:10: restricted_builtin: http.send is a restricted built-in"},
		},
		{
			name: "restricted built-in allowed",
			args: []string{"test", "--allow-network-builtins", sending},
			want: []string{"no tests found in " + sending},
		},
		{name: "invalid run filter", args: []string{"test", "--run", "(", failing}, wantErr: `test filter "("`},
		{name: "not a directory", args: []string{"test", file}, wantErr: "is not a directory"},
		{name: "no such directory", args: []string{"test", filepath.Join(failing, "nope")}, wantErr: "no such file"},
		{name: "two directories", args: []string{"test", failing, covered}, wantErr: "one policy directory at most"},
		{name: "unknown format", args: []string{"test", "--format", "xml"}, wantErr: `--format "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runPolicy(t, tt.args...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want it to contain %q\nstdout:\n%s", err, tt.wantErr, stdout)
			}
			for _, want := range tt.want {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, notWant := range tt.notWant {
				if strings.Contains(stdout, notWant) {
					t.Errorf("stdout has %q:\n%s", notWant, stdout)
				}
			}
		})
	}

	t.Run("durations", func(t *testing.T) {
		stdout, _, _ := runPolicy(t, "test")
		if !regexp.MustCompile(`test_owner_may_read: PASS \(\d+(\.\d+)?(µs|ms|s)\)\n`).MatchString(stdout) {
			t.Errorf("no duration on a PASS line:\n%s", stdout)
		}
	})
}

// TestPolicyTestJSON reads the output a CI pipeline reads.
func TestPolicyTestJSON(t *testing.T) {
	failing := fixtureSet(t, "mixed")
	stdout, _, err := runPolicy(t, "test", "--format", "json", failing)
	if err == nil || !strings.Contains(err.Error(), "3 of 5 tests failed") {
		t.Errorf("err = %v, want the failure count", err)
	}
	var doc struct {
		Passed bool `json:"passed"`
		Tests  []struct {
			Name       string `json:"name"`
			File       string `json:"file"`
			Row        int    `json:"row"`
			Outcome    string `json:"outcome"`
			DurationNS int64  `json:"duration_ns"`
			Failure    *struct {
				File string   `json:"file"`
				Row  int      `json:"row"`
				Expr []string `json:"expr"`
			} `json:"failure"`
			Error *struct {
				Code string `json:"code"`
				Row  int    `json:"row"`
			} `json:"error"`
		} `json:"tests"`
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if doc.Passed || doc.Counts["pass"] != 1 || doc.Counts["fail"] != 2 || doc.Counts["error"] != 1 || doc.Counts["skip"] != 1 || len(doc.Tests) != 5 {
		t.Fatalf("report = %+v", doc)
	}
	guest := doc.Tests[1]
	if guest.Name != "test_guest_allowed" || guest.Outcome != "fail" || guest.Row != 9 || guest.File != filepath.Join(failing, "authz_test.rego") ||
		guest.Failure == nil || guest.Failure.Row != 13 || len(guest.Failure.Expr) == 0 || guest.DurationNS <= 0 {
		t.Errorf("failed test = %+v", guest)
	}
	if e := doc.Tests[2].Error; e == nil || e.Code != "eval_conflict_error" || e.Row != 9 {
		t.Errorf("erring test = %+v", doc.Tests[2])
	}

	covered := fixtureSet(t, "coverage")
	stdout, _, err = runPolicy(t, "test", "--coverage", "--format=json", covered)
	if err != nil {
		t.Fatal(err)
	}
	var cov struct {
		Passed   bool `json:"passed"`
		Coverage struct {
			Percent float64 `json:"percent"`
			Files   []struct {
				File       string                     `json:"file"`
				Percent    float64                    `json:"percent"`
				NotCovered []struct{ Start, End int } `json:"not_covered"`
			} `json:"files"`
		} `json:"coverage"`
	}
	if err := json.Unmarshal([]byte(stdout), &cov); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if !cov.Passed || cov.Coverage.Percent != 50 || len(cov.Coverage.Files) != 2 || len(cov.Coverage.Files[0].NotCovered) != 2 {
		t.Errorf("coverage = %+v", cov)
	}

	// A set that does not compile is still JSON, with the problems.
	broken := writeSet(t, map[string]string{"authz.rego": "package warden.authz\n\nallow if {\n"})
	stdout, _, err = runPolicy(t, "test", "--format", "json", broken)
	var problems struct {
		Passed   bool `json:"passed"`
		Problems []struct {
			File string `json:"file"`
			Row  int    `json:"row"`
			Code string `json:"code"`
		} `json:"problems"`
	}
	if jerr := json.Unmarshal([]byte(stdout), &problems); jerr != nil || err == nil || problems.Passed ||
		len(problems.Problems) != 1 || problems.Problems[0].Code != "rego_parse_error" || problems.Problems[0].File != filepath.Join(broken, "authz.rego") {
		t.Errorf("broken set: err %v, output %+v (%v)\n%s", err, problems, jerr, stdout)
	}
}

func TestPolicyCheckCommand(t *testing.T) {
	lint := fixtureSet(t, "strict")
	failing := fixtureSet(t, "mixed")
	custom := writeSet(t, map[string]string{"p.rego": "package acme.decide\n\nallow := input.action == \"go\"\n"})
	sending := writeSet(t, sendingSet)

	tests := []struct {
		name    string
		args    []string
		wantErr string
		want    []string
	}{
		{name: "shipped policies", args: []string{"check"}, want: []string{"shipped policies: ok: revision ", fmt.Sprintf(", 7 files, %d tests passed\n", shippedTests(t))}},
		{
			name:    "strict mode",
			args:    []string{"check", lint},
			wantErr: lint + ": 3 problems",
			want: []string{
				lint + "/authz.rego:3:1: rego_compile_error: import data.warden.roles unused\n",
				lint + "/authz.rego:8:2: rego_compile_error: assigned var unused unused\n",
				lint + "/authz.rego:12:1: rego_compile_error: unused argument x.",
			},
		},
		{
			name:    "failing tests",
			args:    []string{"check", failing},
			wantErr: "3 problems",
			want: []string{
				failing + "/authz_test.rego:9:1: test_failed: data.warden.authz_test.test_guest_allowed failed\n\tat authz_test.rego:13:2:\n\tauthz.allow with input as req\n",
				failing + "/authz_test.rego:16:1: test_error: data.warden.authz_test.test_level: eval_conflict_error:",
				failing + "/authz_test.rego:24:1: test_failed: data.warden.authz_test.test_roles failed\n\tat authz_test.rego:26:2:\n",
			},
		},
		{
			name:    "no decision entrypoint",
			args:    []string{"check", custom},
			wantErr: "1 problem",
			want:    []string{"no rule defines data.warden.authz.allow, the decision entrypoint\n"},
		},
		{name: "custom entrypoint", args: []string{"check", "--entrypoint", "acme/decide", custom}, want: []string{custom + ": ok: revision ", "1 files, 0 tests passed"}},
		{name: "restricted built-in", args: []string{"check", sending}, wantErr: "1 problem", want: []string{sending + "/authz.rego:4:10: restricted_builtin: http.send"}},
		{name: "restricted built-in allowed", args: []string{"check", sending, "--allow-network-builtins"}, want: []string{": ok: "}},
		{name: "bad entrypoint", args: []string{"check", "--entrypoint", "a//b"}, wantErr: "not a package path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runPolicy(t, tt.args...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v\n%s", err, stdout)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want it to contain %q\n%s", err, tt.wantErr, stdout)
			}
			for _, want := range tt.want {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		stdout, _, err := runPolicy(t, "check", "--format", "json", lint)
		var doc struct {
			OK       bool `json:"ok"`
			Problems []struct {
				File     string `json:"file"`
				Row, Col int
				Code     string `json:"code"`
				Message  string `json:"message"`
			} `json:"problems"`
		}
		if jerr := json.Unmarshal([]byte(stdout), &doc); jerr != nil || err == nil || doc.OK || len(doc.Problems) != 3 ||
			doc.Problems[1].Row != 8 || doc.Problems[1].Col != 2 || doc.Problems[1].Message != "assigned var unused unused" {
			t.Errorf("err %v, doc %+v (%v)\n%s", err, doc, jerr, stdout)
		}
		stdout, _, err = runPolicy(t, "check", "--format", "json")
		var ok struct {
			OK       bool           `json:"ok"`
			Revision string         `json:"revision"`
			Tests    map[string]int `json:"tests"`
		}
		if jerr := json.Unmarshal([]byte(stdout), &ok); jerr != nil || err != nil || !ok.OK || ok.Revision == "" || ok.Tests["pass"] != shippedTests(t) {
			t.Errorf("shipped: err %v, doc %+v (%v)\n%s", err, ok, jerr, stdout)
		}
	})
}

func TestPolicyFmtCommand(t *testing.T) {
	const (
		messy = "package p\nallow if {   input.x == 1 }\n"
		tidy  = "package p\n\nallow if input.x == 1\n"
	)
	newDir := func(t *testing.T) string {
		return writeSet(t, map[string]string{
			"a.rego":         messy,
			"lib/b.rego":     tidy,
			"lib/c.rego":     messy,
			".git/x.rego":    messy, // hidden: left alone
			"data.json":      "{ }",
			"notes/readme.x": "not rego",
		})
	}
	read := func(t *testing.T, path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Run("diff", func(t *testing.T) {
		dir := newDir(t)
		stdout, _, err := runPolicy(t, "fmt", dir)
		if err == nil || !strings.Contains(err.Error(), "2 of 3 files are not formatted; run warden policy fmt -w") {
			t.Errorf("err = %v", err)
		}
		a := filepath.Join(dir, "a.rego")
		want := "--- " + a + "\n+++ " + a + " (formatted)\n@@ -1,2 +1,3 @@\n package p\n-allow if {   input.x == 1 }\n+\n+allow if input.x == 1\n"
		if !strings.HasPrefix(stdout, want) {
			t.Errorf("diff =\n%s\nwant it to start with\n%s", stdout, want)
		}
		if !strings.Contains(stdout, "--- "+filepath.Join(dir, "lib", "c.rego")+"\n") || strings.Contains(stdout, "b.rego") || strings.Contains(stdout, ".git") {
			t.Errorf("diff names the wrong files:\n%s", stdout)
		}
		if read(t, a) != messy {
			t.Error("fmt without -w changed a file")
		}
	})

	t.Run("list", func(t *testing.T) {
		dir := newDir(t)
		stdout, _, err := runPolicy(t, "fmt", "--list", dir)
		if err == nil {
			t.Error("fmt --list with unformatted files succeeded")
		}
		want := filepath.Join(dir, "a.rego") + "\n" + filepath.Join(dir, "lib", "c.rego") + "\n"
		if stdout != want {
			t.Errorf("stdout = %q, want %q", stdout, want)
		}
	})

	t.Run("write", func(t *testing.T) {
		dir := newDir(t)
		stdout, _, err := runPolicy(t, "fmt", "-w", dir)
		if err != nil {
			t.Fatalf("fmt -w: %v", err)
		}
		if want := filepath.Join(dir, "a.rego") + "\n" + filepath.Join(dir, "lib", "c.rego") + "\n"; stdout != want {
			t.Errorf("stdout = %q, want the rewritten files %q", stdout, want)
		}
		for _, name := range []string{"a.rego", "lib/b.rego", "lib/c.rego"} {
			if got := read(t, filepath.Join(dir, name)); got != tidy {
				t.Errorf("%s = %q, want %q", name, got, tidy)
			}
		}
		if got := read(t, filepath.Join(dir, ".git", "x.rego")); got != messy {
			t.Errorf("a hidden file was rewritten: %q", got)
		}
		if _, _, err := runPolicy(t, "fmt", "--list", dir); err != nil {
			t.Errorf("fmt --list after -w: %v", err)
		}
	})

	t.Run("write and fail", func(t *testing.T) {
		dir := newDir(t)
		if _, _, err := runPolicy(t, "fmt", "-w", "--fail", dir); err == nil || !strings.Contains(err.Error(), "rewrote 2 of 3 files") {
			t.Errorf("err = %v", err)
		}
		if _, _, err := runPolicy(t, "fmt", "-w", "--fail", dir); err != nil {
			t.Errorf("second run, nothing to rewrite: %v", err)
		}
	})

	t.Run("one file", func(t *testing.T) {
		dir := newDir(t)
		stdout, _, err := runPolicy(t, "fmt", "-l", filepath.Join(dir, "lib", "b.rego"))
		if err != nil || stdout != "" {
			t.Errorf("formatted file: err %v, stdout %q", err, stdout)
		}
	})

	t.Run("parse error", func(t *testing.T) {
		dir := writeSet(t, map[string]string{"bad.rego": "package p\n\nallow if {\n\tinput.x ==\n}\n", "ok.rego": tidy})
		stdout, stderr, err := runPolicy(t, "fmt", dir)
		if err == nil || !strings.Contains(err.Error(), "1 of 2 files do not parse") {
			t.Errorf("err = %v", err)
		}
		if want := filepath.Join(dir, "bad.rego") + ":5:1: rego_parse_error: "; !strings.Contains(stderr, want) || stdout != "" {
			t.Errorf("stderr = %q, want %q; stdout %q", stderr, want, stdout)
		}
	})

	// The shipped policies are formatted as opa fmt formats them (the test
	// runs in cmd/warden).
	t.Run("shipped policies", func(t *testing.T) {
		if stdout, _, err := runPolicy(t, "fmt", filepath.Join("..", "..", "policies")); err != nil {
			t.Errorf("shipped policies not formatted: %v\n%s", err, stdout)
		}
	})
}

func TestPolicyUsage(t *testing.T) {
	if _, _, err := runPolicy(t); err == nil {
		t.Error("warden policy without a command succeeded")
	}
	if _, stderr, err := runPolicy(t, "publish"); err == nil || !strings.Contains(err.Error(), `unknown command "publish"`) || !strings.Contains(stderr, "warden policy <command>") {
		t.Errorf("unknown command: %v\n%s", err, stderr)
	}
	for _, sub := range []string{"test", "check", "fmt", "push"} {
		_, stderr, err := runPolicy(t, sub, "--help")
		if err != nil || !strings.Contains(stderr, "usage: warden policy "+sub) {
			t.Errorf("%s --help: %v\n%s", sub, err, stderr)
		}
	}
	var help bytes.Buffer
	if err := run(context.Background(), []string{"warden", "help"}, env(nil), nil, &help, &help); err != nil || !strings.Contains(help.String(), "warden policy <command>") {
		t.Errorf("warden help does not list policy: %v\n%s", err, help.String())
	}
}

// TestFmtAgreesWithOPA checks that -w writes what OPA's formatter makes of a
// file, the formatting `opa fmt` checks in CI.
func TestFmtAgreesWithOPA(t *testing.T) {
	src := "package p\nimport rego.v1\nallow if {   input.x == 1 }\n\n\n\ndeny contains \"x\" if { true }\nz := 1"
	dir := writeSet(t, map[string]string{"p.rego": src})
	if _, _, err := runPolicy(t, "fmt", "-w", dir); err != nil {
		t.Fatal(err)
	}
	want, err := format.SourceWithOpts("p.rego", []byte(src), format.Opts{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "p.rego"))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("fmt -w wrote %q, OPA formats %q (%v)", got, want, err)
	}
}

// shippedTests is how many Rego tests the shipped set has, counted by the
// runner rather than written down, so that a new test is not a change here.
func shippedTests(t testing.TB) int {
	t.Helper()
	report, err := decision.Test(context.Background(), policies.FS(), decision.TestOptions{})
	if err != nil || !report.Passed() {
		t.Fatalf("the shipped set's tests: %v %+v", err, report)
	}
	return report.Counts.Pass
}
