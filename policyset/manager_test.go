package policyset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/wardenauthz/warden/claims"
	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/policies"
)

// quietLogger is testLogger, or a discarding logger: the engine's default is
// slog.Default, which would print every reload.
func quietLogger(t testing.TB) *slog.Logger {
	if l := testLogger(t); l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

func newTestEngine(t testing.TB, fsys fs.FS) *decision.Engine {
	t.Helper()
	return newTestEngineWith(t, fsys, decision.Options{})
}

func newTestEngineWith(t testing.TB, fsys fs.FS, opts decision.Options) *decision.Engine {
	t.Helper()
	opts.Logger = quietLogger(t)
	e, err := decision.NewEngine(tctx(t), fsys, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// shippedFiles are the policies Warden ships, as a set's files.
func shippedFiles(t testing.TB) map[string][]byte {
	t.Helper()
	set, err := FromFS(policies.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	return set.Files
}

// variant is the shipped set with a data.json that carries n (so that every
// n is a revision of its own) and, with auditor, grants role auditor
// orders:read, which the shipped data does not: a decision for an auditor
// tells which variant made it.
func variant(shipped map[string][]byte, n int, auditor bool) map[string][]byte {
	files := maps.Clone(shipped)
	roles := `"manager": ["orders:read", "orders:approve"], "staff": ["orders:read"]`
	if auditor {
		roles += `, "auditor": ["orders:read"]`
	}
	files["data.json"] = fmt.Appendf(nil, `{"warden": {"roles": {%s}, "push": %d}}`, roles, n)
	return files
}

// with is files with name set to text (or removed, for "").
func with(files map[string][]byte, name, text string) map[string][]byte {
	files = maps.Clone(files)
	if text == "" {
		delete(files, name)
	} else {
		files[name] = []byte(text)
	}
	return files
}

func mapFS(files map[string][]byte) fs.FS {
	m := fstest.MapFS{}
	for name, data := range files {
		m[name] = &fstest.MapFile{Data: data}
	}
	return m
}

// Broken sets, each refused for one reason, at a known place.
const (
	syntaxError = "package warden.authz\n\ndefault allow := false\n\nallow if input.action == == \"x\"\n"
	typeError   = "package warden.extra\n\nx if upper(1) == \"A\"\n"
	failingTest = "package warden.extra_test\n\nimport data.warden.authz\n\n" +
		"test_anyone_may_approve if {\n" +
		"\tauthz.allow with input as {\"action\": \"orders:approve\", \"subject\": \"eve\", \"token\": {\"claims\": {}}, \"resource\": {}}\n" +
		"}\n"
)

// policyReplica is one replica's policy side: its own connection, store,
// engine and manager.
type policyReplica struct {
	store  *Store
	engine *decision.Engine
	m      *Manager
}

func newPolicyReplica(t testing.TB, srv *events.Embedded, opts StoreOptions, initial, seed fs.FS) *policyReplica {
	t.Helper()
	return newPolicyReplicaWith(t, srv, opts, newTestEngine(t, initial), seed)
}

func newPolicyReplicaWith(t testing.TB, srv *events.Embedded, opts StoreOptions, engine *decision.Engine, seed fs.FS) *policyReplica {
	t.Helper()
	store := newPolicyStore(t, dial(t, srv), opts)
	m, err := NewManager(tctx(t), store, engine, ManagerOptions{Seed: seed, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return &policyReplica{store: store, engine: engine, m: m}
}

// threeReplicas starts three replicas on srv, seeded with the shipped
// policies, and waits until all run them; it returns the replicas, the
// shipped files and their revision.
func threeReplicas(t testing.TB, srv *events.Embedded) ([]*policyReplica, map[string][]byte, string) {
	t.Helper()
	rs := make([]*policyReplica, 3)
	for i := range rs {
		rs[i] = newPolicyReplica(t, srv, StoreOptions{}, policies.FS(), policies.FS())
	}
	shipped := shippedFiles(t)
	rev := decision.Revision(shipped)
	waitConverged(t, rev, rs...)
	return rs, shipped, rev
}

// waitConverged waits until every replica runs revision rev, taken from its
// source, and is ready.
func waitConverged(t testing.TB, rev string, rs ...*policyReplica) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		for i, r := range rs {
			st := r.m.Status()
			if st.ActiveRevision != rev || !st.Converged || !st.Ready || st.LastError != nil {
				return fmt.Errorf("replica %d: want %s converged and ready; status %+v", i, rev, st)
			}
		}
		return nil
	})
}

// auditorReads asks engine whether an auditor may read bob's order: only the
// variants with auditor grant it.
func auditorReads(ctx context.Context, e *decision.Engine) decision.Decision {
	return e.Decide(ctx, decision.Input{
		Claims:   &claims.Claims{Subject: "dave", Raw: map[string]any{"sub": "dave", "roles": []any{"auditor"}}},
		Action:   "orders:read",
		Resource: map[string]any{"type": "order", "id": "42", "owner": "bob"},
	})
}

// TestPolicyManagerConverge: the first of three replicas seeds the bucket,
// all converge on the stored set, and all activate a proposed one.
func TestPolicyManagerConverge(t *testing.T) {
	srv := startServer(t, t.TempDir())
	rs, shipped, _ := threeReplicas(t, srv)
	ctx := tctx(t)
	if h, err := rs[0].store.History(ctx); err != nil || len(h) != 1 {
		t.Fatalf("history after seeding: %d sets, %v; want 1", len(h), err)
	}

	cur, err := rs[2].m.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files := variant(shipped, 1, true)
	stored, err := rs[1].m.Propose(ctx, files, cur.KVRevision, "alice@example.com", "auditors may read orders")
	if err != nil {
		t.Fatal(err)
	}
	if want := decision.Revision(files); stored.Revision != want || stored.KVRevision <= cur.KVRevision {
		t.Fatalf("stored %s at %d, want %s after %d", stored.Revision, stored.KVRevision, want, cur.KVRevision)
	}
	waitConverged(t, stored.Revision, rs...)
	for i, r := range rs {
		st := r.m.Status()
		if st.Source != SourceNATS || st.StoredKVRevision != stored.KVRevision || st.Refusals != 0 || st.Reloads == 0 {
			t.Errorf("replica %d: status %+v", i, st)
		}
		if d := auditorReads(ctx, r.engine); !d.Allow || d.Revision != stored.Revision {
			t.Errorf("replica %d: auditor read: %+v, want allowed by %s", i, d, stored.Revision)
		}
	}
}

// TestPolicyManagerProposeRefused: a proposal with a syntax error, a type
// error or a failing test is refused with positions; nothing is stored and
// every replica keeps its revision.
func TestPolicyManagerProposeRefused(t *testing.T) {
	srv := startServer(t, t.TempDir())
	rs, shipped, rev := threeReplicas(t, srv)
	ctx := tctx(t)
	cur, err := rs[0].m.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  decision.Problem // File, Row, Col (0: any) and Code
		fail  int              // failing tests
	}{
		{"syntax error", with(shipped, "authz.rego", syntaxError), decision.Problem{File: "authz.rego", Row: 5, Col: 26, Code: "rego_parse_error"}, 0},
		{"type error", with(shipped, "extra.rego", typeError), decision.Problem{File: "extra.rego", Row: 3, Code: "rego_type_error"}, 0},
		{"failing test", with(shipped, "extra_test.rego", failingTest), decision.Problem{File: "extra_test.rego", Row: 5, Col: 1, Code: decision.CodeTestFailed}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rs[1].m.Propose(ctx, tc.files, cur.KVRevision, "mallory", tc.name)
			var pe *decision.PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Propose: %v, want a *decision.PolicyError", err)
			}
			i := slices.IndexFunc(pe.Problems, func(p decision.Problem) bool {
				return p.File == tc.want.File && p.Row == tc.want.Row && p.Code == tc.want.Code &&
					p.Col > 0 && (tc.want.Col == 0 || p.Col == tc.want.Col)
			})
			if i < 0 {
				t.Errorf("problems %+v, want one like %+v", pe.Problems, tc.want)
			}
			if got := 0; pe.Tests != nil {
				got = pe.Tests.Counts.Fail
				if got != tc.fail {
					t.Errorf("%d failing tests, want %d", got, tc.fail)
				}
			} else if tc.fail > 0 {
				t.Errorf("no test report, want %d failing tests", tc.fail)
			}
			now, err := rs[2].store.Current(ctx)
			if err != nil || now.KVRevision != cur.KVRevision {
				t.Errorf("stored set at %d (%v), want unchanged at %d", now.KVRevision, err, cur.KVRevision)
			}
			for i, r := range rs {
				if st := r.m.Status(); st.ActiveRevision != rev || st.Refusals != 0 || !st.Ready {
					t.Errorf("replica %d: %+v, want %s active and nothing refused", i, st, rev)
				}
			}
		})
	}

	t.Run("invalid file name", func(t *testing.T) {
		_, err := rs[0].m.Propose(ctx, with(shipped, "../escape.rego", "package x\n"), cur.KVRevision, "", "")
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Propose: %v, want ErrInvalid", err)
		}
	})
}

// TestPolicyManagerRefusesStoredSet: a set written straight to the bucket,
// bypassing the checks, is refused by every replica and recorded; the old
// revision keeps answering, and a later good put clears the refusal.
func TestPolicyManagerRefusesStoredSet(t *testing.T) {
	srv := startServer(t, t.TempDir())
	rs, shipped, rev := threeReplicas(t, srv)
	ctx := tctx(t)
	cur, err := rs[0].store.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}

	bad, err := rs[0].store.Put(ctx, Set{Files: with(shipped, "extra_test.rego", failingTest), Author: "by hand"}, cur.KVRevision)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		for i, r := range rs {
			if st := r.m.Status(); st.StoredKVRevision != bad.KVRevision || st.LastError == nil {
				return fmt.Errorf("replica %d has not refused %s yet: %+v", i, bad.Revision, st)
			}
		}
		return nil
	})
	for i, r := range rs {
		st := r.m.Status()
		le := st.LastError
		if st.ActiveRevision != rev || st.StoredRevision != bad.Revision || st.Converged || !st.Ready || st.Refusals != 1 {
			t.Errorf("replica %d: status %+v; want %s active, %s refused, ready", i, st, rev, bad.Revision)
		}
		if err := r.m.Ready(); err != nil {
			t.Errorf("replica %d: Ready: %v", i, err)
		}
		if le.Revision != bad.Revision || le.KVRevision != bad.KVRevision || le.At.IsZero() {
			t.Errorf("replica %d: refusal of %s at %d, at %v; want %s at %d", i, le.Revision, le.KVRevision, le.At, bad.Revision, bad.KVRevision)
		}
		if len(le.Problems) != 1 || le.Problems[0].File != "extra_test.rego" || le.Problems[0].Row != 5 || le.Problems[0].Code != decision.CodeTestFailed {
			t.Errorf("replica %d: problems %+v", i, le.Problems)
		}
		if len(le.FailingTests) != 1 || le.FailingTests[0].Name != "test_anyone_may_approve" || le.FailingTests[0].Outcome != decision.OutcomeFail {
			t.Errorf("replica %d: failing tests %+v", i, le.FailingTests)
		}
		var pe *decision.PolicyError
		if !errors.As(le.Err, &pe) || !strings.Contains(le.Message, "extra_test.rego:5:") {
			t.Errorf("replica %d: error %v (%q)", i, le.Err, le.Message)
		}
		if d := auditorReads(ctx, r.engine); d.Revision != rev || d.Allow || d.Reason != decision.ReasonPolicyDenied {
			t.Errorf("replica %d: decision %+v, want policy_denied by %s", i, d, rev)
		}
	}
	js, err := json.Marshal(rs[0].m.Status())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"source":"nats"`, `"converged":false`, `"last_error":{"at":`, `"problems":[{"file":"extra_test.rego","row":5,`, `"failing_tests":[{`, `"refusals":1`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("status JSON %s\nlacks %s", js, want)
		}
	}

	// The same bad files again are not checked again, and still refused.
	again, err := rs[0].store.Put(ctx, Set{Files: with(shipped, "extra_test.rego", failingTest)}, bad.KVRevision)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		for i, r := range rs {
			if st := r.m.Status(); st.StoredKVRevision != again.KVRevision || st.LastError == nil || st.Refusals != 1 {
				return fmt.Errorf("replica %d: %+v", i, st)
			}
		}
		return nil
	})

	good, err := rs[1].m.Propose(ctx, variant(shipped, 2, true), again.KVRevision, "alice", "fixed")
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, good.Revision, rs...)
	js, _ = json.Marshal(rs[2].m.Status())
	if !strings.Contains(string(js), `"last_error":null`) {
		t.Errorf("status JSON %s, want last_error null", js)
	}
}

// TestPolicyManagerSeedRace: two replicas starting at once on an empty
// bucket, each with its own initial set, store one set and both run it.
func TestPolicyManagerSeedRace(t *testing.T) {
	srv := startServer(t, t.TempDir())
	shipped := shippedFiles(t)
	seeds := []fs.FS{policies.FS(), mapFS(variant(shipped, 7, true))}
	rs := make([]*policyReplica, len(seeds))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, seed := range seeds {
		wg.Go(func() {
			store := newPolicyStore(t, dial(t, srv), StoreOptions{})
			engine := newTestEngine(t, seed)
			<-start
			m, err := NewManager(tctx(t), store, engine, ManagerOptions{Seed: seed, Logger: testLogger(t)})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(m.Close)
			rs[i] = &policyReplica{store: store, engine: engine, m: m}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	h, err := rs[0].store.History(tctx(t))
	if err != nil || len(h) != 1 {
		t.Fatalf("history: %d sets (%v), want exactly one seeded", len(h), err)
	}
	if r := h[0].Revision; r != decision.Revision(shipped) && r != decision.Revision(variant(shipped, 7, true)) {
		t.Fatalf("seeded %s, which is neither initial set", r)
	}
	waitConverged(t, h[0].Revision, rs...)
}

// TestPolicyManagerConflict: a proposal against a set that was replaced
// meanwhile gets ErrConflict and stores nothing.
func TestPolicyManagerConflict(t *testing.T) {
	srv := startServer(t, t.TempDir())
	r := newPolicyReplica(t, srv, StoreOptions{}, policies.FS(), policies.FS())
	ctx := tctx(t)
	shipped := shippedFiles(t)
	base, err := r.m.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.m.Propose(ctx, variant(shipped, 1, false), base.KVRevision, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, expected := range []uint64{base.KVRevision, 0} {
		if _, err := r.m.Propose(ctx, variant(shipped, 2, false), expected, "bob", ""); !errors.Is(err, ErrConflict) {
			t.Errorf("Propose expecting %d: %v, want ErrConflict", expected, err)
		}
	}
	if cur, err := r.m.Current(ctx); err != nil || cur.KVRevision != first.KVRevision {
		t.Errorf("stored %d (%v), want %d", cur.KVRevision, err, first.KVRevision)
	}
	waitConverged(t, first.Revision, r)
}

// TestPolicyManagerFallsBack: a replica that starts while the stored set is
// refused runs the newest earlier stored set that passes — what the rest of
// the fleet kept — not its own initial set; with none, it is not ready.
func TestPolicyManagerFallsBack(t *testing.T) {
	srv := startServer(t, t.TempDir())
	admin := newPolicyStore(t, dial(t, srv), StoreOptions{})
	ctx := tctx(t)
	shipped := shippedFiles(t)
	goodFiles := variant(shipped, 1, true)
	good, _, err := Seed(ctx, admin, Set{Files: goodFiles})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := admin.Put(ctx, Set{Files: with(goodFiles, "extra_test.rego", failingTest)}, good.KVRevision)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("to an earlier set", func(t *testing.T) {
		r := newPolicyReplica(t, srv, StoreOptions{}, policies.FS(), policies.FS())
		eventually(t, 20*time.Second, func() error {
			if st := r.m.Status(); st.ActiveRevision != good.Revision || st.LastError == nil || !st.Ready {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
		if st := r.m.Status(); st.Converged || st.StoredRevision != bad.Revision || st.LastError.Revision != bad.Revision {
			t.Errorf("status %+v, want %s refused", st, bad.Revision)
		}
	})

	t.Run("to nothing", func(t *testing.T) {
		other := newPolicyStore(t, dial(t, srv), StoreOptions{Bucket: "OTHER_POLICIES"})
		if _, _, err := Seed(ctx, other, Set{Files: with(shipped, "extra_test.rego", failingTest)}); err != nil {
			t.Fatal(err)
		}
		r := newPolicyReplica(t, srv, StoreOptions{Bucket: "OTHER_POLICIES"}, policies.FS(), policies.FS())
		eventually(t, 20*time.Second, func() error {
			if st := r.m.Status(); st.LastError == nil {
				return fmt.Errorf("not refused yet: %+v", st)
			}
			return nil
		})
		err := r.m.Ready()
		if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "no earlier one passes") {
			t.Errorf("Ready: %v, want not ready", err)
		}
		if st := r.m.Status(); st.ActiveRevision != decision.Revision(shipped) || st.Ready {
			t.Errorf("status %+v", st)
		}
	})

	t.Run("from a value that is not a set", func(t *testing.T) {
		if _, err := admin.kv.Put(ctx, setKey, []byte("not json")); err != nil {
			t.Fatal(err)
		}
		r := newPolicyReplica(t, srv, StoreOptions{}, policies.FS(), policies.FS())
		eventually(t, 20*time.Second, func() error {
			if st := r.m.Status(); st.ActiveRevision != good.Revision || !st.Ready || st.InvalidValues != 1 {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
		if le := r.m.Status().LastError; le == nil || !errors.Is(le.Err, ErrInvalid) {
			t.Errorf("last error %+v, want ErrInvalid", le)
		}
	})
}

// TestPolicyManagerDecisionsDuringChanges: replicas decide without pause
// while six sets are pushed back to back from different replicas; no
// decision fails, and each matches the revision it names (no decision mixes
// two sets).
func TestPolicyManagerDecisionsDuringChanges(t *testing.T) {
	srv := startServer(t, t.TempDir())
	rs := make([]*policyReplica, 3)
	for i := range rs {
		// The default 50ms evaluation timeout is wall-clock time. With more
		// goroutines deciding flat out than there are cores (and three
		// replicas compiling besides), a goroutine can wait longer than that
		// for a CPU and deny with policy_timeout — measured on two cores
		// even with no set changing. That is the timeout doing its job under
		// overload, not a swap going wrong, which is what this test is
		// about; a longer timeout keeps the two apart.
		engine := newTestEngineWith(t, policies.FS(), decision.Options{EvalTimeout: 5 * time.Second})
		rs[i] = newPolicyReplicaWith(t, srv, StoreOptions{}, engine, policies.FS())
	}
	ctx := tctx(t)
	shipped := shippedFiles(t)
	waitConverged(t, decision.Revision(shipped), rs...)

	var (
		mu     sync.Mutex
		allows = map[string]bool{decision.Revision(shipped): false} // revision -> may an auditor read
	)
	stop := make(chan struct{})
	var decisions atomic.Int64
	var wg sync.WaitGroup
	for i := range len(rs) {
		e := rs[i%len(rs)].engine
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := auditorReads(ctx, e)
				decisions.Add(1)
				mu.Lock()
				want, known := allows[d.Revision]
				mu.Unlock()
				if !known || d.Allow != want || (d.Reason != decision.ReasonAllowed && d.Reason != decision.ReasonPolicyDenied) {
					t.Errorf("decision %+v; revision known %v, want allow %v", d, known, want)
					return
				}
			}
		})
	}

	cur, err := rs[0].m.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kv, last := cur.KVRevision, ""
	for n := 1; n <= 6; n++ {
		files := variant(shipped, n, n%2 == 1)
		mu.Lock()
		allows[decision.Revision(files)] = n%2 == 1
		mu.Unlock()
		stored, err := rs[n%len(rs)].m.Propose(ctx, files, kv, "alice", fmt.Sprint("push ", n))
		if err != nil {
			t.Fatal(err)
		}
		kv, last = stored.KVRevision, stored.Revision
	}
	waitConverged(t, last, rs...)
	close(stop)
	wg.Wait()
	if decisions.Load() == 0 {
		t.Fatal("no decisions were made")
	}
	t.Logf("%d decisions during 6 pushes", decisions.Load())
}

// BenchmarkPolicyPushToActive measures issue 4's "push to active on three
// replicas": one replica proposes the shipped set with a changed data file
// (checked, then stored), and the clock stops when all three engines answer
// with the new revision. Run it with
//
//	go test -run '^$' -bench PolicyPushToActive -benchtime 50x ./events/
func BenchmarkPolicyPushToActive(b *testing.B) {
	srv := startServer(b, b.TempDir())
	rs, shipped, _ := threeReplicas(b, srv)
	ctx := context.Background()
	cur, err := rs[0].m.Current(ctx)
	if err != nil {
		b.Fatal(err)
	}
	kv := cur.KVRevision

	b.ReportAllocs()
	var total, propose []time.Duration
	for n := 1; b.Loop(); n++ {
		files := variant(shipped, n, false)
		rev := decision.Revision(files)
		start := time.Now()
		stored, err := rs[0].m.Propose(ctx, files, kv, "bench", "")
		if err != nil {
			b.Fatal(err)
		}
		propose = append(propose, time.Since(start))
		kv = stored.KVRevision
		deadline := start.Add(10 * time.Second)
		for _, r := range rs {
			for r.engine.Revision() != rev {
				if time.Now().After(deadline) {
					b.Fatalf("revision %s not active everywhere after 10s: %+v", rev, r.m.Status())
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		total = append(total, time.Since(start))
	}
	b.ReportMetric(percentile(total, 50), "p50-ms")
	b.ReportMetric(percentile(total, 99), "p99-ms")
	b.ReportMetric(percentile(propose, 50), "propose-p50-ms")
}

// percentile is the p-th percentile of ds in milliseconds (nearest rank).
func percentile(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return float64(s[max(i, 1)-1]) / float64(time.Millisecond)
}
