package decision

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/topdown"
)

var (
	// errTimeout marks an evaluation stopped by the engine's EvalTimeout.
	errTimeout = errors.New("policy evaluation timed out")
	// errAbandoned marks an evaluation whose caller was answered at the
	// deadline while OPA was still inside a step (a built-in); it stops
	// at its next cancellation check, and its result is dropped.
	errAbandoned = errors.New("evaluation abandoned at the deadline")
)

// deadline stops one policy evaluation when the engine's timeout passes or
// the caller's context ends. It is handed to OPA as the evaluation's
// topdown.Cancel, which OPA polls between evaluation steps. Left to itself,
// OPA would start a goroutine per evaluation to watch the context; a timer
// and context.AfterFunc do the same without one, which matters at tens of
// thousands of decisions per second. done, made only for an evaluation
// that is offloaded (see Engine.eval), is closed when the evaluation must
// stop, so that the caller can stop waiting for it.
type deadline struct {
	cancelled atomic.Bool
	timedOut  atomic.Bool
	done      chan struct{}
	timer     *time.Timer
	stopCtx   func() bool
}

var _ topdown.Cancel = (*deadline)(nil)

// startDeadline arms a deadline; the caller must call stop when the
// evaluation returns.
func startDeadline(ctx context.Context, timeout time.Duration, withDone bool) *deadline {
	d := &deadline{}
	if withDone {
		d.done = make(chan struct{})
	}
	d.timer = time.AfterFunc(timeout, d.expire)
	if ctx.Done() != nil {
		d.stopCtx = context.AfterFunc(ctx, d.Cancel)
	}
	return d
}

func (d *deadline) expire() {
	d.timedOut.Store(true)
	d.Cancel()
}

// Cancel stops the evaluation.
func (d *deadline) Cancel() {
	if d.cancelled.CompareAndSwap(false, true) && d.done != nil {
		close(d.done)
	}
}

// Cancelled reports whether the evaluation must stop.
func (d *deadline) Cancelled() bool { return d.cancelled.Load() }

// stop releases the timer and the context callback.
func (d *deadline) stop() {
	d.timer.Stop()
	if d.stopCtx != nil {
		d.stopCtx()
	}
}
