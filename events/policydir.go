package events

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/wardenauthz/warden/decision"
)

// NewDirPolicies returns a manager that keeps engine in step with the policy
// files in dir (policies.source: dir, for GitOps): it reads the directory as
// PolicySetFromFS does every PollInterval, and when the files' revision
// differs from the active one, checks them and activates them or records why
// not. Reload reads it at once (cmd wires it to SIGHUP). Propose answers
// ErrReadOnly: the directory is changed where it is deployed from.
//
// Polling rather than file-system notifications keeps the manager free of a
// dependency and works the same on every file system (network mounts and
// Kubernetes ConfigMap volumes, whose atomic symlink swap notification
// libraries often miss); reading and hashing the shipped set takes about
// 60 µs, so an unchanged directory costs next to nothing.
//
// engine was created by the caller, usually from the same directory; the
// first read happens before NewDirPolicies returns. An error is returned when
// that read fails (no such directory, no Rego module in it); files that are
// read but fail their checks are a refusal, recorded in Status, and Ready
// reports not ready while the engine runs a set that did not come from the
// directory.
//
// ctx bounds the first read and check only; the manager polls until Close.
func NewDirPolicies(ctx context.Context, dir string, engine *decision.Engine, opts PolicyManagerOptions) (*PolicyManager, error) {
	if dir == "" || engine == nil {
		return nil, errors.New("events: policy manager: needs a policies.dir and an engine")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("events: policies.dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("events: policies.dir %s is not a directory", dir)
	}
	m := &PolicyManager{
		source: PolicySourceDir, engine: engine, dir: dir, opts: opts,
		log: opts.Logger.With("policy_source", PolicySourceDir, "dir", dir),
	}
	m.applyMu.Lock()
	err = m.pollDir(ctx, false)
	m.applyMu.Unlock()
	m.mu.Lock()
	seen := m.st.seen
	m.mu.Unlock()
	if err != nil && (!seen || ctx.Err() != nil) {
		return nil, fmt.Errorf("events: policies.dir %s: %w", dir, err)
	}

	runCtx, stop := context.WithCancel(context.Background())
	m.stop, m.done = stop, make(chan struct{})
	go m.pollLoop(runCtx)
	return m, nil
}

// dirFS is the file system of a policy directory.
func dirFS(dir string) fs.FS { return os.DirFS(dir) }

func (m *PolicyManager) pollLoop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.applyMu.Lock()
			_ = m.pollDir(ctx, false) // recorded in Status
			m.applyMu.Unlock()
		}
	}
}

// pollDir reads the directory and applies its set; apply does nothing for
// the active revision or, unless force, for one already refused, so an
// unchanged directory costs one read. The caller holds applyMu.
func (m *PolicyManager) pollDir(ctx context.Context, force bool) error {
	set, err := PolicySetFromFS(dirFS(m.dir), ".")
	if err != nil {
		m.readFailed(err)
		return err
	}
	return m.apply(ctx, set, force)
}

// readFailed records that the directory could not be read as a set. A
// directory caught in the middle of an edit fails like this too, so the
// same failure is recorded (and logged) once, not on every poll; the next
// good read clears it.
func (m *PolicyManager) readFailed(err error) {
	r := newPolicyRefusal("", 0, err)
	m.mu.Lock()
	if prev := m.st.lastErr; prev != nil && prev.Revision == "" && prev.Message == r.Message {
		m.mu.Unlock()
		return
	}
	m.st.lastErr = r
	if errors.Is(err, ErrInvalidPolicySet) {
		m.st.refusals++ // the files are there but are not a set Warden can load
	}
	m.mu.Unlock()
	m.log.Warn("events: cannot read the policy directory; keeping the active set", "active_revision", m.engine.Revision(), "error", err)
}
