package web

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenauthz/warden/events"
	"github.com/wardenauthz/warden/web/decisionlog"
)

// metrics are the Prometheus series of the decision path.
type metrics struct {
	decisions          *prometheus.CounterVec
	latency            prometheus.Histogram
	adminPolicyChanges prometheus.Counter
	revocations        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, v Verifier, e Engine) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_decisions_total",
			Help: "Decisions answered, by reason code.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "warden_decision_duration_seconds",
			Help: "Time to verify the token and decide every check of one request.",
			// Decisions take microseconds; the default buckets start at 5 ms.
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
		adminPolicyChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warden_admin_policy_changes_total",
			Help: "Changes of the admin policy (package warden.admin or its data) stored through this replica: security events.",
		}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_revocation_requests_total",
			Help: "Requests to the token revocation endpoint (POST /oauth2/revoke), by authenticated client (empty when none) and outcome.",
		}, []string{"client", "outcome"}),
	}
	reg.MustRegister(m.decisions, m.latency, m.adminPolicyChanges, m.revocations,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "warden_token_cache_hits_total",
			Help: "Token verifications answered from the verification cache.",
		}, func() float64 { h, _ := v.CacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "warden_token_cache_misses_total",
			Help: "Token verifications that had to check the signature.",
		}, func() float64 { _, m := v.CacheStats(); return float64(m) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "warden_decision_cache_hits_total",
			Help: "Policy results reused from the decision cache of the active policy set.",
		}, func() float64 { h, _ := e.DecisionCacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "warden_decision_cache_misses_total",
			Help: "Policy evaluations that found no reusable result in the decision cache.",
		}, func() float64 { _, m := e.DecisionCacheStats(); return float64(m) }),
	)
	return m
}

// registerEvents exports the event stream's state, read from Status at
// scrape time.
func (m *metrics) registerEvents(reg prometheus.Registerer, st Stream) {
	gauge := func(name, help string, f func(s events.Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(st.Status()) })
	}
	boolean := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(
		gauge("warden_events_applied_seq", "Highest stream sequence this replica has applied.",
			func(s events.Status) float64 { return float64(s.AppliedSeq) }),
		gauge("warden_events_lag", "Events in the stream this replica has not applied yet.",
			func(s events.Status) float64 { return float64(s.Lag) }),
		gauge("warden_events_degraded", "1 while this replica cannot follow the event stream.",
			func(s events.Status) float64 { return boolean(!s.DegradedSince.IsZero()) }),
		gauge("warden_events_outage_policy_active", "1 while events.on_disconnect is applied to decisions.",
			func(s events.Status) float64 { return boolean(s.OutagePolicyActive) }),
		gauge("warden_events_retention_short", "1 while the event stream keeps events for less than tokens.max_lifetime + leeway.",
			func(s events.Status) float64 { return boolean(s.RetentionShort) }),
		gauge("warden_revocation_subjects", "Subjects with live entries in the revocation ledger.",
			func(s events.Status) float64 { return float64(s.LedgerEntries) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "warden_events_bad_messages_total",
			Help: "Stream messages skipped because they were not valid events.",
		}, func() float64 { return float64(st.Status().BadMessages) }),
	)
}

// registerPolicies exports how the replica's policy set stands against its
// source, read from Status at scrape time.
func (m *metrics) registerPolicies(reg prometheus.Registerer, p Policies) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_policy_converged",
			Help: "1 while the active policy set is the source's set; 0 while a refused or pending set differs.",
		}, func() float64 {
			if p.Status().Converged {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "warden_policy_refusals_total",
			Help: "Policy sets this replica refused (did not compile or failed their tests).",
		}, func() float64 { return float64(p.Status().Refusals) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "warden_policy_reloads_total",
			Help: "Policy sets this replica activated.",
		}, func() float64 { return float64(p.Status().Reloads) }),
	)
}

// registerDecisionLog exports the decision log's losses and the open
// decision streams (the slots taken in streams).
func (m *metrics) registerDecisionLog(reg prometheus.Registerer, l *decisionlog.Log, streams chan struct{}) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "warden_decision_log_dropped_total",
			Help: "Decision-log entries dropped because the log's queue was full.",
		}, func() float64 { return float64(l.Dropped()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "warden_decision_log_write_errors_total",
			Help: "Failed writes of the decision log's JSON lines output.",
		}, func() float64 { return float64(l.WriteErrors()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "warden_decision_streams",
			Help: "Decision streams (GET /v1/decisions/stream) open now.",
		}, func() float64 { return float64(len(streams)) }),
	)
}

// signalsCollector exports the receiver's counts, read at scrape time.
type signalsCollector struct {
	s    Signals
	desc *prometheus.Desc
}

func (m *metrics) registerSignals(reg prometheus.Registerer, s Signals) {
	reg.MustRegister(signalsCollector{s: s, desc: prometheus.NewDesc("warden_signals_total",
		"Security Event Tokens received by this replica (pushed or polled), by transmitter and outcome: per event mapped, verification, unknown_type, ignored, unresolved, invalid, refused; per SET duplicate, the RFC 8935 error code, or error (NATS).",
		[]string{"transmitter", "outcome"}, nil)})
}

func (c signalsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c signalsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, n := range c.s.Counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n.N), n.Transmitter, n.Outcome)
	}
}
