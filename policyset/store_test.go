package policyset

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardenauthz/warden/decision"
	"github.com/wardenauthz/warden/events"
)

// tctx is a context that ends with the test, or after 20s.
func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newPolicyStore(t testing.TB, nc *nats.Conn, opts StoreOptions) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := NewStore(tctx(t), nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// policySet is a small valid set; n makes its content, and so its revision,
// differ.
func policySet(n int) Set {
	return Set{
		Files: map[string][]byte{
			"authz.rego":      fmt.Appendf(nil, "package warden.authz\n\ndefault allow := false\n\nallow if input.n == %d\n", n),
			"authz_test.rego": []byte("package warden.authz_test\n\nimport data.warden.authz\n\ntest_deny if not authz.allow\n"),
			"roles/data.json": fmt.Appendf(nil, `{"n":%d,"note":"<a & b>"}`, n),
		},
		Author:  "alice@example.com",
		Message: fmt.Sprint("set ", n),
	}
}

// recorder remembers what a watch delivered: sets, and the errors for
// values that were not sets.
type recorder struct {
	mu    sync.Mutex
	sets  []Set
	bad   []error
	badKV []uint64
}

func (r *recorder) fn(s Set, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.bad = append(r.bad, err)
		r.badKV = append(r.badKV, s.KVRevision)
		return
	}
	r.sets = append(r.sets, s)
}

// invalid returns the errors delivered and their values' KV revisions.
func (r *recorder) invalid() ([]error, []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bad), slices.Clone(r.badKV)
}

func (r *recorder) kvRevisions() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var revs []uint64
	for _, s := range r.sets {
		revs = append(revs, s.KVRevision)
	}
	return revs
}

func (r *recorder) last() (Set, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return Set{}, false
	}
	return r.sets[len(r.sets)-1], true
}

func watch(t testing.TB, s *Store, r *recorder) *Watcher {
	t.Helper()
	w, err := s.Watch(context.Background(), r.fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// watchers starts n watches of srv's bucket, each on a store and
// connection of its own as replicas have, and waits until each has
// delivered the set at KV revision rev.
func watchers(t testing.TB, srv *events.Embedded, n int, rev uint64) ([]*recorder, []*Watcher) {
	t.Helper()
	recs := make([]*recorder, n)
	ws := make([]*Watcher, n)
	for i := range ws {
		recs[i] = &recorder{}
		ws[i] = watch(t, newPolicyStore(t, dial(t, srv), StoreOptions{}), recs[i])
	}
	waitDelivered(t, rev, ws...)
	return recs, ws
}

// waitDelivered waits until every watch has delivered the set at KV
// revision rev (or a later one).
func waitDelivered(t testing.TB, rev uint64, ws ...*Watcher) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		for i, w := range ws {
			if got := w.Delivered(); got < rev {
				return fmt.Errorf("watch %d delivered revision %d, want %d", i, got, rev)
			}
		}
		return nil
	})
}

// increasing checks that a watch delivered in order, without repeats.
func increasing(t testing.TB, name string, revs []uint64) {
	t.Helper()
	for i := 1; i < len(revs); i++ {
		if revs[i] <= revs[i-1] {
			t.Errorf("%s delivered KV revisions %v: not in order, or repeated", name, revs)
			return
		}
	}
}

// TestPolicyRevisionKnownValues pins the revision algorithm to fixed
// input/output pairs. The decision engine must compute the same revisions
// for the same files (cross-checked once with decision.NewEngine on these
// files and on the shipped policies); a change here breaks every replica's
// agreement with the engine and with stored sets.
func TestPolicyRevisionKnownValues(t *testing.T) {
	cases := []struct {
		files map[string][]byte
		want  string
	}{
		{map[string][]byte{
			"authz.rego":      []byte("package warden.authz\n\ndefault allow := false\n\nallow if input.action == \"orders:read\"\n"),
			"roles/data.json": []byte(`{"manager":["orders:read","orders:approve"]}`),
		}, "992ba944e55e"},
		{map[string][]byte{"a.rego": []byte("package a\n")}, "e23504f8fab7"},
		// Length prefixes: moving a byte from the name to the content
		// changes the revision.
		{map[string][]byte{"ab.rego": []byte("c")}, "cfaacf42aa6a"},
		{map[string][]byte{"a.rego": nil}, "19f331d81945"},
	}
	for _, c := range cases {
		if got := decision.Revision(c.files); got != c.want {
			t.Errorf("decision.Revision(%v) = %s, want %s", slices.Sorted(maps.Keys(c.files)), got, c.want)
		}
	}
}

func TestPolicySetValidation(t *testing.T) {
	valid := "package x\n"
	cases := []struct {
		name  string
		files map[string]string
		want  string // in the error
	}{
		{"empty", map[string]string{}, "no files"},
		{"no rego", map[string]string{"data.json": "{}"}, "no Rego module"},
		{"empty name", map[string]string{"": valid}, "empty name"},
		{"absolute", map[string]string{"/etc/authz.rego": valid}, "absolute"},
		{"dot dot", map[string]string{"../authz.rego": valid}, "clean relative"},
		{"inner dot dot", map[string]string{"a/../authz.rego": valid}, "clean relative"},
		{"dot", map[string]string{"./authz.rego": valid}, "clean relative"},
		{"double slash", map[string]string{"a//authz.rego": valid}, "clean relative"},
		{"backslash", map[string]string{`a\authz.rego`: valid}, "backslash"},
		{"control", map[string]string{"a\nb.rego": valid}, "control"},
		{"hidden file", map[string]string{".authz.rego": valid}, "hidden"},
		{"hidden dir", map[string]string{".git/authz.rego": valid}, "hidden"},
		{"extension", map[string]string{"authz.rego": valid, "README.md": "x"}, `extension ".md"`},
		{"upper case extension", map[string]string{"authz.REGO": valid}, "extension"},
		{"no extension", map[string]string{"authz.rego": valid, "Makefile": ""}, "extension"},
		{"file and dir", map[string]string{"a.rego": valid, "a.rego.json": "{}", "a.rego/b.rego": valid}, "both a file and a directory"},
		{"not utf-8", map[string]string{"authz.rego": "package x\n\xff"}, "not valid UTF-8"},
		{"name not utf-8", map[string]string{"a\xff.rego": valid}, "not valid UTF-8"},
		{"long name", map[string]string{strings.Repeat("a", 600) + ".rego": valid}, "longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := Set{Files: map[string][]byte{}}
			for name, data := range c.files {
				set.Files[name] = []byte(data)
			}
			_, _, err := encodeSet(set, DefaultMaxFiles)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want ErrInvalid saying %q", err, c.want)
			}
		})
	}
	t.Run("too many files", func(t *testing.T) {
		set := Set{Files: map[string][]byte{}}
		for i := range 11 {
			set.Files[fmt.Sprintf("m%d.rego", i)] = []byte(valid)
		}
		if _, _, err := encodeSet(set, 10); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "11 files, over the limit of 10") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("valid", func(t *testing.T) {
		set := policySet(1)
		set.Files["deep/er/still/data.yaml"] = []byte("a: 1\n")
		set.Files["x.yml"] = []byte("b: 2\n")
		if _, _, err := encodeSet(set, DefaultMaxFiles); err != nil {
			t.Error(err)
		}
	})
}

func TestPolicySetRoundTrip(t *testing.T) {
	in := policySet(7)
	in.At = time.Date(2026, 11, 23, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	data, enc, err := encodeSet(in, DefaultMaxFiles)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"note\":\"<a & b>\"`) || !strings.Contains(string(data), `"v":1,`) {
		t.Errorf("stored form is not plain readable JSON: %s", data)
	}
	out, err := decodeSet(data, DefaultMaxFiles)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Revision = decision.Revision(in.Files)
	want.At = in.At.UTC()
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(enc, out); diff != "" {
		t.Errorf("encode's result differs from what is read back (-enc +read):\n%s", diff)
	}

	// Values that are not a policy set.
	for name, bad := range map[string]string{
		"garbage":          "not json",
		"array":            "[]",
		"version":          strings.Replace(string(data), `"v":1`, `"v":2`, 1),
		"unknown field":    strings.Replace(string(data), `"v":1`, `"v":1,"extra":true`, 1),
		"edited, same rev": strings.Replace(string(data), "input.n == 7", "input.n == 8", 1),
		"trailing data":    string(data) + "{}",
		"no at":            strings.Replace(string(data), `"at":"2026-11-23T09:00:00Z"`, `"at":"0001-01-01T00:00:00Z"`, 1),
		"bad file name":    strings.Replace(string(data), `"authz.rego"`, `"../authz.rego"`, 1),
	} {
		if _, err := decodeSet([]byte(bad), DefaultMaxFiles); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: decode error %v, want ErrInvalid", name, err)
		}
	}
}

func TestPolicySetFS(t *testing.T) {
	src := fstest.MapFS{
		"policies/authz.rego":       {Data: []byte("package warden.authz\n")},
		"policies/sub/data.json":    {Data: []byte(`{"a":1}`)},
		"policies/sub/data.yaml":    {Data: []byte("b: 2\n")},
		"policies/README.md":        {Data: []byte("# notes")},
		"policies/.authz.rego.swp":  {Data: []byte("x")},
		"policies/.git/config.json": {Data: []byte("{}")},
		"other/x.rego":              {Data: []byte("package other\n")},
	}
	set, err := FromFS(src, "policies")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"authz.rego", "sub/data.json", "sub/data.yaml"}
	if got := slices.Sorted(maps.Keys(set.Files)); !slices.Equal(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	if set.Revision != decision.Revision(set.Files) {
		t.Errorf("Revision %s, want %s", set.Revision, decision.Revision(set.Files))
	}

	fsys := set.FS()
	var walked []string
	err = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			walked = append(walked, name)
		}
		return err
	})
	if err != nil || !slices.Equal(walked, want) {
		t.Errorf("WalkDir = %q, %v; want %q", walked, err, want)
	}
	if b, err := fs.ReadFile(fsys, "sub/data.json"); err != nil || string(b) != `{"a":1}` {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if _, ok := fsys.(fstest.MapFS); ok {
		t.Error("FS exposes its map")
	}
	if err := fstest.TestFS(fsys, want...); err != nil {
		t.Error(err)
	}
}

// TestPolicyStoreSeedOnce seeds an empty bucket from several replicas at
// once: exactly one stores its set, and every replica ends up with it.
func TestPolicyStoreSeedOnce(t *testing.T) {
	srv := startServer(t, t.TempDir())
	const seeders = 4
	type result struct {
		set     Set
		created bool
		err     error
	}
	stores := make([]*Store, seeders)
	for i := range stores {
		stores[i] = newPolicyStore(t, dial(t, srv), StoreOptions{})
	}
	results := make([]result, seeders)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i, s := range stores {
		wg.Go(func() {
			start.Wait()
			set, created, err := Seed(tctx(t), s, policySet(i))
			results[i] = result{set, created, err}
		})
	}
	start.Done()
	wg.Wait()

	var winners []int
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("seeder %d: %v", i, r.err)
		}
		if r.created {
			winners = append(winners, i)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("seeders %v created the set, want exactly one", winners)
	}
	won := results[winners[0]].set
	if won.Revision != decision.Revision(policySet(winners[0]).Files) || won.KVRevision == 0 || won.At.IsZero() {
		t.Errorf("the winner got %+v", won)
	}
	for i, r := range results {
		if r.set.Revision != won.Revision || r.set.KVRevision != won.KVRevision {
			t.Errorf("seeder %d sees revision %s at %d, the winner stored %s at %d", i, r.set.Revision, r.set.KVRevision, won.Revision, won.KVRevision)
		}
	}
	// Seeding again leaves the bucket alone.
	again, created, err := Seed(tctx(t), stores[0], policySet(99))
	if err != nil || created || again.KVRevision != won.KVRevision {
		t.Errorf("second seed = %d, %v, %v; want the first set kept", again.KVRevision, created, err)
	}
}

func TestPolicyStorePutConflict(t *testing.T) {
	srv := startServer(t, t.TempDir())
	s := newPolicyStore(t, dial(t, srv), StoreOptions{})
	ctx := tctx(t)

	if _, err := s.Current(ctx); !errors.Is(err, ErrNoSet) {
		t.Fatalf("Current on an empty bucket: %v, want ErrNoSet", err)
	}
	if _, err := s.History(ctx); !errors.Is(err, ErrNoSet) {
		t.Fatalf("History on an empty bucket: %v, want ErrNoSet", err)
	}
	first, err := s.Put(ctx, policySet(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Two admins both read first and both try to replace it.
	second, err := s.Put(ctx, policySet(2), first.KVRevision)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, policySet(3), first.KVRevision); !errors.Is(err, ErrConflict) {
		t.Errorf("Put over a stale revision: %v, want ErrConflict", err)
	}
	if _, err := s.Put(ctx, policySet(3), 0); !errors.Is(err, ErrConflict) {
		t.Errorf("Put expecting an empty bucket: %v, want ErrConflict", err)
	}
	if _, err := s.Put(ctx, policySet(3), second.KVRevision+100); !errors.Is(err, ErrConflict) {
		t.Errorf("Put expecting a future revision: %v, want ErrConflict", err)
	}
	cur, err := s.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(second, cur); diff != "" {
		t.Errorf("Current differs from what Put returned (-put +current):\n%s", diff)
	}
}

// TestPolicyStoreRefuses checks that what cannot be stored is refused before
// it reaches the bucket, with an error that says why.
func TestPolicyStoreRefuses(t *testing.T) {
	srv := startServer(t, t.TempDir())
	s := newPolicyStore(t, dial(t, srv), StoreOptions{MaxBytes: 64 << 10, MaxFiles: 20})
	ctx := tctx(t)

	big := policySet(1)
	big.Files["big.json"] = []byte(`{"x":"` + strings.Repeat("a", 70<<10) + `"}`)
	many := policySet(1)
	for i := range 20 {
		many.Files[fmt.Sprintf("m/%02d.rego", i)] = []byte("package m\n")
	}
	badName := policySet(1)
	badName.Files["../escape.rego"] = []byte("package x\n")

	for name, c := range map[string]struct {
		set  Set
		want string
	}{
		"oversize":   {big, "over the limit of 65536"},
		"many files": {many, "23 files, over the limit of 20"},
		"bad name":   {badName, `"../escape.rego"`},
	} {
		if _, err := s.Put(ctx, c.set, 0); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Put error %v, want ErrInvalid saying %q", name, err, c.want)
		}
		if _, _, err := Seed(ctx, s, c.set); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Seed error %v, want ErrInvalid", name, err)
		}
	}
	if _, err := s.Current(ctx); !errors.Is(err, ErrNoSet) {
		t.Errorf("after refused puts, Current: %v, want ErrNoSet", err)
	}

	// The default limit fits under NATS's default max_payload (1 MiB), and
	// a set just under it is stored.
	s2 := newPolicyStore(t, dial(t, srv), StoreOptions{Bucket: "WARDEN_POLICIES_BIG"})
	near := policySet(2)
	near.Files["big.json"] = []byte(`{"x":"` + strings.Repeat("a", DefaultMaxBytes-1024) + `"}`)
	if _, err := s2.Put(ctx, near, 0); err != nil {
		t.Errorf("a set just under the default limit: %v", err)
	}
	near.Files["big.json"] = []byte(`{"x":"` + strings.Repeat("a", DefaultMaxBytes) + `"}`)
	if _, err := s2.Put(ctx, near, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("a set over the default limit: %v, want ErrInvalid", err)
	}
}

// TestPolicyStoreHistory keeps the last History versions, newest first, and
// rolls back by putting an old one again.
func TestPolicyStoreHistory(t *testing.T) {
	srv := startServer(t, t.TempDir())
	s := newPolicyStore(t, dial(t, srv), StoreOptions{History: 5})
	ctx := tctx(t)

	var last uint64
	var stored []Set
	for i := range 8 {
		set, err := s.Put(ctx, policySet(i), last)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, set)
		last = set.KVRevision
	}
	hist, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(stored[3:])
	slices.Reverse(want)
	if diff := cmp.Diff(want, hist); diff != "" {
		t.Fatalf("History (-want +got):\n%s", diff)
	}

	// Roll back to set 4.
	old := hist[3]
	back, err := s.Put(ctx, Set{Files: old.Files, Author: "bob", Message: "roll back to " + old.Revision}, last)
	if err != nil {
		t.Fatal(err)
	}
	if back.Revision != old.Revision || back.KVRevision <= last {
		t.Errorf("rolled back to revision %s at %d, want %s after %d", back.Revision, back.KVRevision, old.Revision, last)
	}
	// The bucket was created with History 5; a store opened later with
	// another history updates it.
	newPolicyStore(t, dial(t, srv), StoreOptions{History: 10})
	if _, err := s.Put(ctx, policySet(100), back.KVRevision); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, policySet(101), back.KVRevision+1); err != nil {
		t.Fatal(err)
	}
	if hist, err := s.History(ctx); err != nil || len(hist) != 7 {
		t.Errorf("History after raising it to 10: %d sets, %v; want 7", len(hist), err)
	}
	// A replica configured with a lower history (or value size) does not
	// lower the fleet's.
	newPolicyStore(t, dial(t, srv), StoreOptions{History: 2, MaxBytes: 1 << 10})
	st, err := s.kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config; cfg.MaxMsgsPerSubject != 10 || cfg.MaxMsgSize < DefaultMaxBytes {
		t.Errorf("after a store with history 2: history %d, value size %d; want 10 and at least %d", cfg.MaxMsgsPerSubject, cfg.MaxMsgSize, DefaultMaxBytes)
	}
	if hist, err := s.History(ctx); err != nil || len(hist) != 7 {
		t.Errorf("History after a store with history 2: %d sets, %v; want 7", len(hist), err)
	}
}

// TestPolicyStoreDeleted: a deleted key reads as no set, watchers keep the
// active one, and seeding works again.
func TestPolicyStoreDeleted(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := dial(t, srv)
	s := newPolicyStore(t, nc, StoreOptions{})
	ctx := tctx(t)
	first, err := s.Put(ctx, policySet(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	w := watch(t, s, &rec)
	waitDelivered(t, first.KVRevision, w)

	kv := rawBucket(t, nc, DefaultBucket)
	if err := kv.Delete(ctx, setKey); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Current(ctx); !errors.Is(err, ErrNoSet) {
		t.Errorf("Current after delete: %v, want ErrNoSet", err)
	}
	seeded, created, err := Seed(ctx, s, policySet(2))
	if err != nil || !created {
		t.Fatalf("Seed after delete: %v, %v", created, err)
	}
	waitDelivered(t, seeded.KVRevision, w)
	if got, want := rec.kvRevisions(), []uint64{first.KVRevision, seeded.KVRevision}; !slices.Equal(got, want) {
		t.Errorf("watch delivered %v, want %v (the delete is not a set)", got, want)
	}
}

func rawBucket(t testing.TB, nc *nats.Conn, bucket string) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(tctx(t), bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}
