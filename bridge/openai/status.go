package openai

import (
	"bytes"
	"context"
	"crypto/subtle"
	_ "embed"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hordechat/hordechat/bridge"
)

//go:embed status.html
var statusHTML string

var statusPage = template.Must(template.New("status").Parse(statusHTML))

// statusJSON is what /status.json reports; the status page refreshes from it.
type statusJSON struct {
	Version         string        `json:"version,omitempty"`
	Enabled         bool          `json:"enabled"`
	UptimeSeconds   int64         `json:"uptime_seconds"`
	RequestsServed  int64         `json:"requests_served"`
	JobsInFlight    int           `json:"jobs_in_flight"`
	V1JobsInFlight  int64         `json:"v1_jobs_in_flight"`
	BaseURL         string        `json:"base_url"`
	Auth            statusAuth    `json:"auth"`
	ModelsUpdatedAt *time.Time    `json:"models_updated_at"`
	ModelsStale     bool          `json:"models_stale"`
	Models          []statusModel `json:"models"`
}

type statusAuth struct {
	Tokens    bool `json:"tokens"`
	HordeKey  bool `json:"horde_key"`
	Anonymous bool `json:"anonymous"`
}

type statusModel struct {
	Name            string  `json:"name"`
	Workers         int     `json:"workers"`
	Threads         int     `json:"threads"`
	QueuedTokens    float64 `json:"queued_tokens"`
	QueuedJobs      float64 `json:"queued_jobs"`
	ETASeconds      int64   `json:"eta_seconds"`
	ContextLength   int     `json:"context_length"`
	MaxOutputTokens int     `json:"max_output_tokens"`
}

// baseURL is the /v1 base callers should use: the configured public URL,
// or the one this request came in on.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.PublicBaseURL != "" {
		return strings.TrimRight(s.cfg.PublicBaseURL, "/") + "/v1"
	}
	scheme := "http"
	if r.TLS != nil || (s.trusted(peerAddr(r.RemoteAddr)) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")) {
		scheme = "https"
	}
	host := r.Host
	if host == "" {
		host = "127.0.0.1"
	}
	return scheme + "://" + host + "/v1"
}

// servedModels are the models with workers this server offers, busiest
// first.
func (s *Server) servedModels() (bridge.ModelSnapshot, []bridge.ModelInfo) {
	snap := s.bridge.Models().Snapshot()
	var out []bridge.ModelInfo
	for _, mi := range snap.Models {
		if mi.Workers > 0 && s.policy.modelAllowed(mi.Name) {
			out = append(out, mi)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Threads > out[j].Threads })
	return snap, out
}

func (s *Server) status(r *http.Request) statusJSON {
	snap, models := s.servedModels()
	st := statusJSON{
		Version: s.version, Enabled: s.cfg.Enabled,
		UptimeSeconds:  int64(s.clock.Since(s.started).Seconds()),
		RequestsServed: s.served.Load(),
		JobsInFlight:   s.bridge.InFlight(),
		V1JobsInFlight: s.inFlight.Load(),
		BaseURL:        s.baseURL(r),
		Auth:           statusAuth{Tokens: s.cfg.AuthTokens, HordeKey: s.cfg.AuthHordeKey, Anonymous: s.cfg.AuthAnonymous},
		ModelsStale:    snap.Stale,
		Models:         make([]statusModel, 0, len(models)),
	}
	if !snap.UpdatedAt.IsZero() {
		t := snap.UpdatedAt.UTC()
		st.ModelsUpdatedAt = &t
	}
	for _, mi := range models {
		st.Models = append(st.Models, statusModel{
			Name: mi.Name, Workers: mi.Workers, Threads: mi.Threads, QueuedTokens: mi.Queued, QueuedJobs: mi.Jobs,
			ETASeconds: int64(mi.ETA.Seconds()), ContextLength: mi.MaxContextLength, MaxOutputTokens: mi.MaxLength,
		})
	}
	return st
}

func (s *Server) handleStatusJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, http.StatusOK, s.status(r))
}

// pageData fills status.html; the numbers there are refreshed by its
// script from /status.json.
type pageData struct {
	Version   string
	Enabled   bool
	BaseURL   string
	Model     string
	Auth      statusAuth
	Curl      string
	Python    string
	Opencode  string
	ModelsURL string
}

func (s *Server) handleStatusPage(w http.ResponseWriter, r *http.Request) {
	base := s.baseURL(r)
	_, models := s.servedModels()
	model := bridge.DefaultModel
	if len(models) > 0 {
		model = models[0].Name
	}
	token := "$HORDECHAT_TOKEN"
	d := pageData{
		Version: s.version, Enabled: s.cfg.Enabled, BaseURL: base, Model: model,
		Auth:      statusAuth{Tokens: s.cfg.AuthTokens, HordeKey: s.cfg.AuthHordeKey, Anonymous: s.cfg.AuthAnonymous},
		ModelsURL: base + "/models",
		Curl: "curl " + base + "/chat/completions \\\n" +
			"  -H \"Authorization: Bearer " + token + "\" \\\n" +
			"  -H \"Content-Type: application/json\" \\\n" +
			"  -d '{\"model\": \"" + model + "\", \"stream\": true,\n" +
			"       \"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}]}'",
		Python: "from openai import OpenAI\n\n" +
			"client = OpenAI(\n" +
			"    base_url=\"" + base + "\",\n" +
			"    api_key=\"hc_...\",  # a hordechat token, or your AI Horde key\n" +
			"    timeout=900,  # the Horde queue can take minutes\n" +
			")\n" +
			"reply = client.chat.completions.create(\n" +
			"    model=\"" + model + "\",\n" +
			"    messages=[{\"role\": \"user\", \"content\": \"Hello!\"}],\n" +
			")\n" +
			"print(reply.choices[0].message.content)",
	}
	top := models
	if len(top) > 8 {
		top = top[:8]
	}
	if oc, err := OpencodeConfig(base, top); err == nil {
		d.Opencode = string(oc)
	}
	var buf bytes.Buffer
	if err := statusPage.Execute(&buf, d); err != nil {
		s.log.Error("render status page", "err", err)
		http.Error(w, "status page unavailable", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Everything is inline; nothing may load from elsewhere.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "uptime_seconds": int64(s.clock.Since(s.started).Seconds())})
}

// handleReadyz is ready when the models were loaded at least once and the
// Ready func (database, Horde) says so.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	problems := []string{}
	if s.bridge.Models().Snapshot().UpdatedAt.IsZero() {
		problems = append(problems, "the model list has not been loaded from the Horde yet")
	}
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		s.writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "problems": problems})
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

func (s *Server) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	if s.cfg.MetricsToken == "" {
		return h
	}
	want := []byte("Bearer " + s.cfg.MetricsToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "metrics need the bearer token set in openai.metrics_token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
