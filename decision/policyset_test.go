package decision_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/policies"
)

// markerSet is a policy set that allows and gives its marker, from its data
// file, as its only reason: a decision shows which set made it.
func markerSet(marker string) fstest.MapFS {
	return fstest.MapFS{
		"authz.rego": {Data: []byte("package warden.authz\n\nallow := true\n\nreasons := {data.marker}\n")},
		"data.json":  {Data: []byte(fmt.Sprintf(`{"marker": %q}`, marker))},
	}
}

func TestReloadRejectsBrokenSets(t *testing.T) {
	good := markerSet("good")
	tests := []struct {
		name  string
		files map[string]string
		want  []decision.Problem
	}{
		{
			name:  "syntax error",
			files: map[string]string{"authz.rego": "package warden.authz\n\nallow if {\n\tinput.x ==\n}\n"},
			want:  []decision.Problem{{File: "authz.rego", Row: 5, Col: 1, Code: "rego_parse_error"}},
		},
		{
			name:  "type error",
			files: map[string]string{"authz.rego": "package warden.authz\n\nallow if {\n\tx := 1 + \"a\"\n\tx > 0\n}\n"},
			want:  []decision.Problem{{File: "authz.rego", Row: 4, Col: 7, Code: "rego_type_error"}},
		},
		{
			name: "errors in two modules",
			files: map[string]string{
				"authz.rego":     "package warden.authz\n\nallow := true\n",
				"lib/util.rego":  "package warden.util\n\nf(x) := y\n",
				"lib/other.rego": "package warden.other\n\ng := h(1)\n\nh(x) := y\n",
			},
			want: []decision.Problem{
				{File: "lib/other.rego", Row: 5, Col: 9, Code: "rego_unsafe_var_error"},
				{File: "lib/util.rego", Row: 3, Col: 9, Code: "rego_unsafe_var_error"},
			},
		},
		{
			name: "failing test",
			files: map[string]string{
				"authz.rego":      "package warden.authz\n\nallow := true\n",
				"authz_test.rego": "package warden.authz_test\n\nimport data.warden.authz\n\ntest_ok if authz.allow\n\ntest_denies if {\n\tnot authz.allow\n}\n",
			},
			want: []decision.Problem{{File: "authz_test.rego", Row: 7, Col: 1, Code: decision.CodeTestFailed}},
		},
		{
			name: "test error",
			files: map[string]string{
				"authz.rego":      "package warden.authz\n\nallow := true\n\nlevel := 1 if input.x\n\nlevel := 2 if input.x\n",
				"authz_test.rego": "package warden.authz_test\n\nimport data.warden.authz\n\ntest_level if {\n\tauthz.level == 1 with input.x as true\n}\n",
			},
			want: []decision.Problem{{File: "authz_test.rego", Row: 5, Col: 1, Code: decision.CodeTestError}},
		},
		{
			name:  "restricted built-in",
			files: map[string]string{"authz.rego": "package warden.authz\n\nallow if {\n\tresp := http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1/\"})\n\tresp.status_code == 200\n}\n"},
			want:  []decision.Problem{{File: "authz.rego", Row: 4, Col: 10, Code: decision.CodeRestrictedBuiltin}},
		},
		{
			name:  "data file not JSON",
			files: map[string]string{"authz.rego": "package warden.authz\n\nallow := true\n", "data.json": "{\n  \"warden\": {roles: }\n}\n"},
			want:  []decision.Problem{{File: "data.json", Row: 2, Col: 14, Code: decision.CodeDataError}},
		},
		{
			name:  "data file cut short",
			files: map[string]string{"authz.rego": "package warden.authz\n\nallow := true\n", "acme/data.json": "{\"warden\": {\n  \"roles\": {}\n"},
			want:  []decision.Problem{{File: "acme/data.json", Row: 2, Col: 14, Code: decision.CodeDataError}},
		},
		{
			name:  "data file not YAML",
			files: map[string]string{"authz.rego": "package warden.authz\n\nallow := true\n", "data.yaml": "warden:\n  roles: {}\n\tadmins: []\n"},
			want:  []decision.Problem{{File: "data.yaml", Row: 3, Col: 1, Code: decision.CodeDataError}},
		},
		{
			name:  "data file not an object",
			files: map[string]string{"authz.rego": "package warden.authz\n\nallow := true\n", "data.json": "[1, 2]"},
			want:  []decision.Problem{{File: "data.json", Code: decision.CodeDataError}},
		},
		{
			name: "rule and data on the same path",
			files: map[string]string{
				"authz.rego": "package warden.authz\n\nallow := true\n",
				"data.json":  `{"warden": {"authz": {"allow": false}}}`,
			},
			want: []decision.Problem{{File: "authz.rego", Row: 3, Col: 1, Code: "rego_compile_error"}},
		},
		{
			name:  "no allow rule at the entrypoint",
			files: map[string]string{"authz.rego": "package warden.other\n\nallow := true\n"},
			want:  []decision.Problem{{}},
		},
		{
			name:  "no modules",
			files: map[string]string{"data.json": "{}"},
			want:  []decision.Problem{{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e, err := decision.NewEngine(ctx, good, testOptions(t))
			if err != nil {
				t.Fatalf("NewEngine: %v", err)
			}
			before := e.Revision()

			broken := fstest.MapFS{}
			for name, src := range tt.files {
				broken[name] = &fstest.MapFile{Data: []byte(src)}
			}
			rev, err := e.Reload(ctx, broken)
			if err == nil {
				t.Fatalf("Reload succeeded with revision %s, want an error", rev)
			}
			t.Logf("Reload error: %v", err)
			var pe *decision.PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Reload error is %T, want *decision.PolicyError", err)
			}
			// Messages are OPA's wording; compare where each problem is.
			var got []decision.Problem
			for _, p := range pe.Problems {
				if p.Message == "" {
					t.Errorf("problem %+v has no message", p)
				}
				if p.Row > 0 && !strings.Contains(err.Error(), fmt.Sprintf("%s:%d:%d: ", p.File, p.Row, p.Col)) {
					t.Errorf("error message does not locate %s:%d:%d:\n%v", p.File, p.Row, p.Col, err)
				}
				got = append(got, decision.Problem{File: p.File, Row: p.Row, Col: p.Col, Code: p.Code})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}

			if e.Revision() != before {
				t.Errorf("Revision = %s after a failed Reload, want %s", e.Revision(), before)
			}
			d := e.Decide(ctx, decision.Input{Claims: token("alice", nil), Action: "orders:read"})
			if want := []string{"good"}; !d.Allow || !cmp.Equal(d.Reasons, want) || d.Revision != before {
				t.Errorf("Decide after a failed Reload = %+v, want the old set's allow", d)
			}
		})
	}
}

func TestReloadSwaps(t *testing.T) {
	ctx := context.Background()
	e, err := decision.NewEngine(ctx, markerSet("a"), testOptions(t))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	revA := e.Revision()

	revB, err := e.Reload(ctx, markerSet("b"))
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if revB == revA || e.Revision() != revB {
		t.Errorf("Reload returned %s, Revision %s; want a new revision (old %s) returned and active", revB, e.Revision(), revA)
	}
	d := e.Decide(ctx, decision.Input{Claims: token("alice", nil), Action: "orders:read"})
	if !cmp.Equal(d.Reasons, []string{"b"}) || d.Revision != revB {
		t.Errorf("Decide = %+v, want reasons [b] from revision %s", d, revB)
	}

	// The revision is a content hash: the same files give the same revision.
	if rev, err := e.Reload(ctx, markerSet("a")); err != nil || rev != revA {
		t.Errorf("Reload(set a again) = %s, %v; want %s", rev, err, revA)
	}
}

func TestRevision(t *testing.T) {
	ctx := context.Background()
	rev := func(fsys fs.FS) string {
		t.Helper()
		e, err := decision.NewEngine(ctx, fsys, testOptions(t))
		if err != nil {
			t.Fatalf("NewEngine: %v", err)
		}
		return e.Revision()
	}
	base := markerSet("a")
	with := func(name, src string) fstest.MapFS {
		m := fstest.MapFS{}
		for k, v := range base {
			m[k] = v
		}
		m[name] = &fstest.MapFile{Data: []byte(src)}
		return m
	}

	r := rev(base)
	if len(r) != 12 || strings.Trim(r, "0123456789abcdef") != "" {
		t.Errorf("Revision = %q, want 12 hex digits", r)
	}
	if got := rev(base); got != r {
		t.Errorf("Revision of the same files = %s, then %s", r, got)
	}
	for name, src := range map[string]string{
		"README.md":    "# notes",
		".authz.swp":   "junk",
		".git/HEAD":    "ref: refs/heads/main",
		"embed.go":     "package policies",
		"docs/x.txt":   "text",
		".hidden.rego": "not rego at all",
	} {
		if got := rev(with(name, src)); got != r {
			t.Errorf("adding %s changed the revision from %s to %s; it is not part of the set", name, r, got)
		}
	}
	for name, src := range map[string]string{
		"extra.rego":        "package warden.extra\n\nx := 1\n",
		"authz_test.rego":   "package warden.authz_test\n\ntest_x if true\n",
		"more/data.yaml":    "k: v\n",
		"data.json":         `{"marker": "b"}`,
		"authz.rego":        "package warden.authz\n\nallow := true\n\nreasons := {data.marker, \"x\"}\n",
		"nested/other.json": `{"k": 1}`,
	} {
		if got := rev(with(name, src)); got == r {
			t.Errorf("changing %s left the revision at %s", name, r)
		}
	}
}

// TestTestModulesDoNotDecide checks that the shipped *_test.rego modules,
// compiled with the set, leave decisions alone.
func TestTestModulesDoNotDecide(t *testing.T) {
	ctx := context.Background()
	shipped, err := fs.Sub(policies.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	withoutTests := fstest.MapFS{}
	err = fs.WalkDir(shipped, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.rego") {
			return err
		}
		b, err := fs.ReadFile(shipped, path)
		withoutTests[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	a := shippedEngine(t, decision.Options{})
	b, err := decision.NewEngine(ctx, withoutTests, testOptions(t))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	for _, in := range []decision.Input{
		{Claims: token("alice", []any{"manager"}), Action: "orders:approve", Resource: order},
		{Claims: token("carol", []any{"staff"}), Action: "orders:approve", Resource: order},
		{Claims: token("bob", nil), Action: "orders:read", Resource: order},
	} {
		da, db := a.Decide(ctx, in), b.Decide(ctx, in)
		da.Revision, db.Revision = "", ""
		if diff := cmp.Diff(db, da); diff != "" {
			t.Errorf("decision with test modules differs (-without +with):\n%s", diff)
		}
	}
}

// TestReloadDuringDecide runs decisions while the set flips between two
// revisions. Run with -race. Every decision must come wholly from one set:
// its reason (the set's marker) must match its revision.
func TestReloadDuringDecide(t *testing.T) {
	ctx := context.Background()
	setA, setB := markerSet("a"), markerSet("b")
	e, err := decision.NewEngine(ctx, setA, testOptions(t))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	revA := e.Revision()
	revB, err := e.Reload(ctx, setB)
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	marker := map[string]string{revA: "a", revB: "b"}

	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		decided atomic.Int64
		seen    sync.Map
	)
	for range 4 {
		wg.Go(func() {
			in := decision.Input{Claims: token("alice", nil), Action: "orders:read"}
			for !stop.Load() {
				d := e.Decide(ctx, in)
				decided.Add(1)
				seen.Store(d.Revision, true)
				want, ok := marker[d.Revision]
				if !d.Allow || !ok || !cmp.Equal(d.Reasons, []string{want}) {
					t.Errorf("Decide = %+v: reasons do not match revision (a=%s b=%s)", d, revA, revB)
					return
				}
			}
		})
	}
	for i := range 40 {
		set := setA
		if i%2 == 1 {
			set = setB
		}
		if _, err := e.Reload(ctx, set); err != nil {
			t.Errorf("Reload: %v", err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d decisions during 40 reloads", decided.Load())
	if e.Revision() != revB {
		t.Errorf("Revision = %s after the last Reload, want %s", e.Revision(), revB)
	}
}
