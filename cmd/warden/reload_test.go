package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardenauthz/warden/policies"
)

// TestSIGHUPReloadsPolicies changes a policy directory under a running
// Warden and sends SIGHUP: a good set takes over; a set whose tests fail and
// a set that does not compile are refused, and the previous set keeps
// answering.
func TestSIGHUPReloadsPolicies(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, policies.FS()); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	baseURL, stderr, _ := startWarden(t, dataDir, "--policies-source", "dir", "--policies-dir", dir)
	staff := mint(t, dataDir, "--sub", "bob", "--roles", "auditor")

	before := askDecision(t, baseURL, staff, "orders:approve")
	if before.Allow {
		t.Fatalf("an auditor may approve before the change: %+v", before)
	}

	// Add a role that may approve, then reload. The shipped tests still
	// pass: they do not know the role.
	writePolicyFile(t, dir, "data.json", `{"warden":{"roles":{"manager":["orders:read","orders:approve"],"staff":["orders:read"],"auditor":["orders:read","orders:approve"]}}}`)
	hangup(t)
	after := waitFor(t, func() (decisionResult, bool) {
		d := askDecision(t, baseURL, staff, "orders:approve")
		return d, d.Allow
	})
	if after.PolicyRevision == before.PolicyRevision {
		t.Errorf("revision unchanged (%s) after a reload that changed the data", after.PolicyRevision)
	}
	// The engine logs through serve's logger (decision discards its log
	// without one): the start and the reload are both there.
	if n := strings.Count(stderr.String(), "policy set loaded"); n < 2 {
		t.Errorf("%d \"policy set loaded\" lines from the engine in serve's log, want the start and the reload:\n%s", n, stderr)
	}

	// Letting staff approve breaks the shipped test_staff_may_not_approve:
	// refused, with the test's file and row.
	writePolicyFile(t, dir, "data.json", `{"warden":{"roles":{"manager":["orders:read","orders:approve"],"staff":["orders:read","orders:approve"],"auditor":["orders:read","orders:approve"]}}}`)
	hangup(t)
	waitFor(t, func() (string, bool) {
		return stderr.String(), strings.Contains(stderr.String(), "test_staff_may_not_approve failed")
	})
	if !strings.Contains(stderr.String(), "authz_test.rego:") {
		t.Errorf("the refusal does not locate the failing test:\n%s", stderr)
	}
	if d := askDecision(t, baseURL, staff, "orders:approve"); !d.Allow || d.PolicyRevision != after.PolicyRevision {
		t.Errorf("after a refused reload: %+v, want the previous set (%s) still allowing", d, after.PolicyRevision)
	}

	// A module that does not compile is refused; the last good set stays.
	writePolicyFile(t, dir, "authz.rego", "package warden.authz\n\nallow if {\n")
	hangup(t)
	waitFor(t, func() (string, bool) {
		return stderr.String(), strings.Contains(stderr.String(), "rego_parse_error")
	})
	if !strings.Contains(stderr.String(), "authz.rego:4:") {
		t.Errorf("the refusal does not name the file and position:\n%s", stderr)
	}
	if d := askDecision(t, baseURL, staff, "orders:approve"); !d.Allow || d.PolicyRevision != after.PolicyRevision {
		t.Errorf("after a refused reload: %+v, want the previous set (%s) still allowing", d, after.PolicyRevision)
	}
}

func writePolicyFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), fs.FileMode(0o644)); err != nil {
		t.Fatal(err)
	}
}

// hangup sends SIGHUP to this process, where serve (started by startWarden)
// has claimed it with signal.Notify.
func hangup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls f until it reports done, failing the test after 10 s.
func waitFor[T any](t testing.TB, f func() (T, bool)) T {
	t.Helper()
	return waitForWithin(t, 10*time.Second, f)
}

// waitForWithin is waitFor with its own deadline.
func waitForWithin[T any](t testing.TB, within time.Duration, f func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v, done := f()
		if done {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached in %v; last value %+v", within, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
