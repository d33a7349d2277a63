package web

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Prometheus series of the decision path.
type metrics struct {
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
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
	}
	reg.MustRegister(m.decisions, m.latency,
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
