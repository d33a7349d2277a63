package policyset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardenauthz/warden/decision"
)

// writeDir writes files into dir, each file atomically (written aside, then
// renamed), as a deployment tool would.
func writeDir(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(filepath.Dir(p), ".tmp-"+filepath.Base(p))
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
}

// newDirReplica fills a temporary directory with files and starts an engine
// from it and a manager on it.
func newDirReplica(t testing.TB, files map[string][]byte, poll time.Duration) (string, *decision.Engine, *Manager) {
	t.Helper()
	dir := t.TempDir()
	writeDir(t, dir, files)
	engine := newTestEngine(t, os.DirFS(dir))
	m, err := newDirManager(t, dir, engine, poll)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return dir, engine, m
}

// TestDirPolicies: an edit is activated by the next poll, a broken edit is
// refused and recorded while the old set answers, and the API cannot write.
func TestDirPolicies(t *testing.T) {
	const poll = 50 * time.Millisecond
	shipped := shippedFiles(t)
	dir, engine, m := newDirReplica(t, shipped, poll)
	ctx := tctx(t)
	rev := decision.Revision(shipped)
	if st := m.Status(); st.Source != SourceDir || st.ActiveRevision != rev || st.StoredRevision != rev || !st.Converged || !st.Ready || st.Reloads != 0 {
		t.Fatalf("status at start %+v", st)
	}
	if cur, err := m.Current(ctx); err != nil || cur.Revision != rev || cur.KVRevision != 0 {
		t.Errorf("Current: %s at %d, %v; want %s", cur.Revision, cur.KVRevision, err, rev)
	}
	if _, err := m.Propose(ctx, variant(shipped, 1, true), 0, "alice", ""); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Propose: %v, want ErrReadOnly", err)
	}

	// An edit: reloaded by a poll.
	edited := variant(shipped, 1, true)
	start := time.Now()
	writeDir(t, dir, map[string][]byte{"data.json": edited["data.json"]})
	eventually(t, 20*time.Second, func() error {
		if got := engine.Revision(); got != decision.Revision(edited) {
			return fmt.Errorf("active %s, want %s", got, decision.Revision(edited))
		}
		return nil
	})
	t.Logf("edit active after %v (poll interval %v)", time.Since(start), poll)
	if d := auditorReads(ctx, engine); !d.Allow {
		t.Errorf("auditor read after the edit: %+v", d)
	}

	// A broken edit: refused, recorded, the edited set keeps answering.
	writeDir(t, dir, map[string][]byte{"authz.rego": []byte(syntaxError)})
	eventually(t, 20*time.Second, func() error {
		if st := m.Status(); st.LastError == nil {
			return fmt.Errorf("not refused yet: %+v", st)
		}
		return nil
	})
	st := m.Status()
	if st.ActiveRevision != decision.Revision(edited) || st.Converged || !st.Ready || st.Refusals != 1 {
		t.Errorf("status after a broken edit %+v", st)
	}
	if p := st.LastError.Problems; len(p) == 0 || p[0].File != "authz.rego" || p[0].Row == 0 || p[0].Code != "rego_parse_error" {
		t.Errorf("problems %+v", p)
	}
	if d := auditorReads(ctx, engine); !d.Allow || d.Revision != decision.Revision(edited) {
		t.Errorf("decision after a broken edit: %+v", d)
	}
	// Polls do not check the same broken files again.
	time.Sleep(4 * poll) // lets polls happen; the assertion is on the count
	if n := m.Status().Refusals; n != 1 {
		t.Errorf("%d refusals after more polls, want 1", n)
	}

	// Fixed: active again, refusal cleared.
	writeDir(t, dir, map[string][]byte{"authz.rego": shipped["authz.rego"]})
	eventually(t, 20*time.Second, func() error {
		if st := m.Status(); st.ActiveRevision != decision.Revision(edited) || st.LastError != nil || !st.Converged {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	// Files that are not policy files and hidden files change nothing.
	writeDir(t, dir, map[string][]byte{"README.md": []byte("# notes\n"), ".git/HEAD": []byte("ref: x\n")})
	if cur, err := m.Current(ctx); err != nil || cur.Revision != decision.Revision(edited) {
		t.Errorf("Current with other files: %s, %v", cur.Revision, err)
	}
}

// TestDirPoliciesReload: Reload reads the directory at once, without waiting
// for a poll, and reports a refusal.
func TestDirPoliciesReload(t *testing.T) {
	shipped := shippedFiles(t)
	dir, engine, m := newDirReplica(t, shipped, time.Hour)
	ctx := tctx(t)

	edited := variant(shipped, 1, false)
	writeDir(t, dir, map[string][]byte{"data.json": edited["data.json"]})
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := engine.Revision(); got != decision.Revision(edited) {
		t.Fatalf("after Reload: %s, want %s", got, decision.Revision(edited))
	}

	writeDir(t, dir, map[string][]byte{"extra.rego": []byte(typeError)})
	err := m.Reload(ctx)
	var pe *decision.PolicyError
	if !errors.As(err, &pe) || !slices.ContainsFunc(pe.Problems, func(p decision.Problem) bool {
		return p.File == "extra.rego" && p.Row == 3 && p.Code == "rego_type_error"
	}) {
		t.Fatalf("Reload of a type error: %v", err)
	}
	// An explicit Reload checks a refused set again.
	if err := m.Reload(ctx); !errors.As(err, &pe) {
		t.Fatalf("second Reload: %v", err)
	}
	if st := m.Status(); st.Refusals != 2 || st.ActiveRevision != decision.Revision(edited) || !st.Ready {
		t.Errorf("status %+v", st)
	}

	// The directory vanishing is recorded, once, and the set keeps answering.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err == nil {
		t.Fatal("Reload of a removed directory succeeded")
	}
	if st := m.Status(); st.LastError == nil || st.LastError.Revision != "" || st.ActiveRevision != decision.Revision(edited) || !st.Ready {
		t.Errorf("status after removing the directory %+v", st)
	}
}

// TestDirPoliciesStart: a directory that cannot be read as a set is an error
// at start; one whose set fails its checks is a refusal, and the manager is
// not ready while the engine runs a set that did not come from it.
func TestDirPoliciesStart(t *testing.T) {
	shipped := shippedFiles(t)
	engine := newTestEngine(t, mapFS(shipped))
	for name, dir := range map[string]string{
		"missing": filepath.Join(t.TempDir(), "nope"),
		"no rego": t.TempDir(),
		"not a dir": func() string {
			p := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}(),
	} {
		if _, err := newDirManager(t, dir, engine, 0); err == nil {
			t.Errorf("%s: no error", name)
		}
	}

	dir := t.TempDir()
	writeDir(t, dir, with(shipped, "extra_test.rego", failingTest))
	m, err := newDirManager(t, dir, engine, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Ready()
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "was refused") {
		t.Errorf("Ready: %v, want not ready", err)
	}
	if st := m.Status(); st.LastError == nil || len(st.LastError.FailingTests) != 1 || st.ActiveRevision != decision.Revision(shipped) {
		t.Errorf("status %+v", st)
	}
}
