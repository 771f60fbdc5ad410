package serve

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series, in a registry of its own (so
// that several servers in one process, as in tests, do not collide). A nil
// *metrics records nothing (batch prediction from files).
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	batchSize    *prometheus.HistogramVec
	batchSeconds *prometheus.HistogramVec
	depth        *prometheus.GaugeVec
	compilations *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitbert_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vitbert_request_duration_seconds", Help: "HTTP request latency by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"endpoint"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vitbert_batch_size", Help: "Inputs per forward pass (before padding to a compiled batch shape).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}, []string{"model", "queue"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vitbert_batch_duration_seconds", Help: "Forward pass time per batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"model", "queue"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vitbert_queue_depth", Help: "Inputs waiting for a forward pass.",
		}, []string{"model", "queue"}),
		compilations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitbert_compilations_total", Help: "Input shapes compiled (each once).",
		}, []string{"model", "queue"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.batchSize, m.batchSeconds, m.depth, m.compilations,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) request(endpoint string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
}

func (m *metrics) batch(model, queue string, n int, d time.Duration) {
	if m == nil {
		return
	}
	m.batchSize.WithLabelValues(model, queue).Observe(float64(n))
	m.batchSeconds.WithLabelValues(model, queue).Observe(d.Seconds())
}

func (m *metrics) queueDepth(model, queue string, delta int) {
	if m == nil {
		return
	}
	m.depth.WithLabelValues(model, queue).Add(float64(delta))
}

func (m *metrics) compiled(model, queue string) {
	if m == nil {
		return
	}
	m.compilations.WithLabelValues(model, queue).Inc()
}
