// Package metrics holds central's Prometheus metrics, served at /metrics.
// Every method is safe on a nil *Metrics, so components work without them.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is central's metric set, on its own registry.
type Metrics struct {
	registry      *prometheus.Registry
	ingest        *prometheus.CounterVec
	errors        *prometheus.CounterVec
	builds        *prometheus.CounterVec
	captureToCase prometheus.Histogram
	buildSeconds  prometheus.Histogram
}

// New returns a metric set registered on a fresh registry, with the Go and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		ingest: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plume_central_ingest_total",
			Help: "Station uploads by kind (blob, evidence, record) and outcome (created, duplicate, rejected).",
		}, []string{"kind", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plume_central_api_errors_total",
			Help: "API error responses by plume error code.",
		}, []string{"code"}),
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plume_central_package_builds_total",
			Help: "Evidence package builds by outcome (built, failed).",
		}, []string{"outcome"}),
		captureToCase: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "plume_central_capture_to_case_seconds",
			Help:    "Time from capture at the station to the case being opened at central.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600},
		}),
		buildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "plume_central_package_build_seconds",
			Help:    "Time to build, self-verify and store one evidence package.",
			Buckets: prometheus.DefBuckets,
		}),
	}
	m.registry.MustRegister(m.ingest, m.errors, m.builds, m.captureToCase, m.buildSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Ingest counts one station upload.
func (m *Metrics) Ingest(kind, outcome string, n int) {
	if m != nil && n > 0 {
		m.ingest.WithLabelValues(kind, outcome).Add(float64(n))
	}
}

// APIError counts one error response.
func (m *Metrics) APIError(code string) {
	if m != nil {
		m.errors.WithLabelValues(code).Inc()
	}
}

// PackageBuild counts one package build and observes its duration.
func (m *Metrics) PackageBuild(outcome string, d time.Duration) {
	if m != nil {
		m.builds.WithLabelValues(outcome).Inc()
		if outcome == "built" {
			m.buildSeconds.Observe(d.Seconds())
		}
	}
}

// CaptureToCase observes the latency from capture to case.
func (m *Metrics) CaptureToCase(d time.Duration) {
	if m != nil {
		m.captureToCase.Observe(max(d, 0).Seconds())
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
