package decision

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// evaluators keeps goroutines that run policy evaluations for eval, so that
// a caller can be answered at the deadline while OPA is stuck inside one
// step. They are kept rather than started per evaluation because OPA's
// evaluator recurses deeply: a new goroutine grows its stack from scratch
// on every decision, which measured at more than twice the decision's cost
// (BenchmarkDecide); a kept one has grown it already.
type evaluators struct {
	idle chan *evaluator
}

// maxIdleEvaluators bounds the kept goroutines; more run under load and
// end when they find no room to wait in.
const maxIdleEvaluators = 64

// evaluatorPool is shared by every Engine of the process, so that engines
// (one per policy check, in tests many) leave no goroutines behind beyond
// maxIdleEvaluators.
var evaluatorPool = &evaluators{idle: make(chan *evaluator, maxIdleEvaluators)}

// evaluator is one goroutine that runs the evaluations it is sent, one at a
// time, until jobs is closed.
type evaluator struct {
	jobs chan evalJob
	out  chan evalOutcome // buffered: an abandoned evaluation still finishes
}

type evalJob struct {
	ctx    context.Context
	q      rego.PreparedEvalQuery
	input  ast.Value
	d      *deadline
	tracer topdown.QueryTracer
}

type evalOutcome struct {
	rs  rego.ResultSet
	err error
}

func (w *evaluator) run() {
	for job := range w.jobs {
		rs, err := evaluate(job.ctx, job.q, job.input, job.d, job.tracer)
		w.out <- evalOutcome{rs, err}
	}
}

// get returns an idle evaluator or starts one.
func (p *evaluators) get() *evaluator {
	select {
	case w := <-p.idle:
		return w
	default:
		w := &evaluator{jobs: make(chan evalJob), out: make(chan evalOutcome, 1)}
		go w.run()
		return w
	}
}

// put keeps w, whose outcome has been read, for the next evaluation, or
// ends it when enough are kept.
func (p *evaluators) put(w *evaluator) {
	select {
	case p.idle <- w:
	default:
		close(w.jobs)
	}
}

// abandon ends w after the evaluation it is stuck in: its outcome will
// never be read, so it is not kept.
func (w *evaluator) abandon() { close(w.jobs) }
