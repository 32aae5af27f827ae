package openai

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the /v1 server's Prometheus series. Labels are bounded: the
// route pattern, the status code, the auth kind, never a user or a key.
type metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	jobs       *prometheus.CounterVec
	tokens     *prometheus.CounterVec
	kudos      *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	queue      prometheus.Histogram
	processing prometheus.Histogram
	inFlight   prometheus.Gauge
	streams    prometheus.Gauge
}

// jobBuckets cover a Horde queue: seconds to many minutes.
var jobBuckets = []float64{0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200}

func newMetrics(reg prometheus.Registerer, inFlight func() float64) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hordechat_http_requests_total", Help: "HTTP requests served by the built-in server, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hordechat_http_request_duration_seconds", Help: "Time to serve an HTTP request, including waiting for the Horde.",
			Buckets: append([]float64{0.001, 0.005, 0.025}, jobBuckets...),
		}, []string{"route"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hordechat_openai_jobs_total", Help: "Generation requests run for /v1 callers, by how they authenticated and how the job ended.",
		}, []string{"auth", "outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hordechat_openai_tokens_total", Help: "Estimated tokens used by /v1 callers, by auth kind and kind (prompt or completion).",
		}, []string{"auth", "kind"}),
		kudos: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hordechat_openai_kudos_total", Help: "Kudos the Horde charged for /v1 jobs, by auth kind.",
		}, []string{"auth"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hordechat_openai_rejected_total", Help: "/v1 requests refused before reaching the Horde, by reason.",
		}, []string{"reason"}),
		queue: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hordechat_openai_job_queue_seconds", Help: "Time from submitting a /v1 job until a worker started it (or it finished, if no poll saw it processing).",
			Buckets: jobBuckets,
		}),
		processing: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hordechat_openai_job_processing_seconds", Help: "Time a worker spent on a /v1 job, as seen by polling.",
			Buckets: jobBuckets,
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hordechat_openai_jobs_in_flight", Help: "/v1 jobs running now.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hordechat_openai_streams_open", Help: "Streaming /v1 responses open now.",
		}),
	}
	cs := []prometheus.Collector{m.requests, m.duration, m.jobs, m.tokens, m.kudos, m.rejected, m.queue, m.processing, m.inFlight, m.streams}
	if inFlight != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hordechat_jobs_in_flight", Help: "Generation jobs the bridge is running now, for every platform.",
		}, inFlight))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Pre-create the common series so dashboards see zeros, not gaps.
	for _, k := range []AuthKind{AuthToken, AuthHordeKey, AuthAnonymous} {
		m.jobs.WithLabelValues(string(k), "ok")
		m.kudos.WithLabelValues(string(k))
	}
	return m, nil
}

// HordeMetrics counts calls to the Horde by endpoint and status. Build it
// before the Horde client and give that client RoundTripper's result, so
// every call (submit, poll, cancel, discovery) is counted.
type HordeMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHordeMetrics registers the Horde call series with reg.
func NewHordeMetrics(reg prometheus.Registerer) (*HordeMetrics, error) {
	m := &HordeMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hordechat_horde_calls_total", Help: "Calls to the AI Horde API, by endpoint template and status code (\"error\" when no answer came).",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hordechat_horde_call_duration_seconds", Help: "Duration of calls to the AI Horde API, by endpoint template.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observe records one Horde call; path is the request path, such as
// "/api/v2/generate/text/status/<id>" and is reduced to its template.
// status 0 means the call got no answer.
func (m *HordeMetrics) Observe(method, path string, status int, d time.Duration) {
	ep := method + " " + EndpointTemplate(path)
	code := "error"
	if status > 0 {
		code = strconv.Itoa(status)
	}
	m.calls.WithLabelValues(ep, code).Inc()
	m.duration.WithLabelValues(ep).Observe(d.Seconds())
}

// RoundTripper wraps next (nil: http.DefaultTransport) so that each Horde
// call is observed. It reads only the method, path and status: never a
// header, so keys stay out of metrics.
func (m *HordeMetrics) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := next.RoundTrip(r)
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		m.Observe(r.Method, r.URL.Path, status, time.Since(start))
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// hordeEndpoints are the Horde paths with a trailing parameter, longest
// first; anything else unknown becomes "other" so labels stay bounded.
var hordeEndpoints = []struct{ prefix, template string }{
	{"/v2/generate/text/status/", "/v2/generate/text/status/{id}"},
	{"/v2/status/models/", "/v2/status/models/{name}"},
	{"/v2/workers/", "/v2/workers/{id}"},
	{"/v2/users/", "/v2/users/{id}"},
}

var hordeFixed = map[string]bool{
	"/v2/generate/text/async": true, "/v2/status/models": true, "/v2/workers": true,
	"/v2/find_user": true, "/v2/status/heartbeat": true, "/v2/status/performance": true,
	"/v2/status/modes": true,
}

// EndpointTemplate reduces a Horde API path to a bounded label:
// "/api/v2/generate/text/status/abc" → "/v2/generate/text/status/{id}".
func EndpointTemplate(path string) string {
	if i := strings.Index(path, "/v2/"); i >= 0 {
		path = path[i:]
	}
	if hordeFixed[path] {
		return path
	}
	for _, e := range hordeEndpoints {
		if strings.HasPrefix(path, e.prefix) {
			return e.template
		}
	}
	return "other"
}

// statusWriter remembers the status code for metrics and logs. It unwraps
// to the real writer, so http.ResponseController and flushing keep working.
type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.code, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.code, w.written = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if !w.written {
		w.code, w.written = http.StatusOK, true
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
