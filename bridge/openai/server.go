// Package openai serves the OpenAI API (/v1) on hordechat's built-in HTTP
// listener, so community tools (SillyTavern, opencode, KoboldAI Lite, any
// OpenAI SDK) reach the AI Horde through hordechat. It is a consumer of
// package bridge, like the chat adapters: it authenticates the caller,
// applies the operator's limits, turns the OpenAI request into a
// bridge.Request and the bridge.Result back into OpenAI's wire format.
//
// The Horde has no token streaming and its queue can take minutes, so a
// stream starts at once, carries SSE comment heartbeats saying where the
// job is (": queued, position 3, eta 20s"), and delivers the finished text
// in a few chunks. A caller that goes away cancels its Horde request.
//
// Besides /v1 the handler serves a status page (/), /status.json,
// /healthz, /readyz and /metrics.
package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hordechat/hordechat/bridge"
)

// Deps are what a Server is built from.
type Deps struct {
	// Bridge runs the generations; required.
	Bridge *bridge.Service
	// Tokens resolves personal tokens (hc_...); nil refuses them.
	Tokens TokenStore
	// Keys checks callers' own Horde keys with find_user; nil refuses them.
	// Pass the *hordeapi.Client.
	Keys KeyChecker
	// DefaultModel is bridge.default_model, so that the model allow and
	// deny lists can vet the default too.
	DefaultModel string
	// Ready reports whether the process can serve (database and Horde
	// reachable) for /readyz; nil only checks that models are loaded.
	Ready func(ctx context.Context) error
	// Clock drives heartbeats, limits and caches; nil is the real clock.
	Clock clockwork.Clock
	Log   *slog.Logger
	// Registry receives the metrics; nil uses a private registry. /metrics
	// serves Gatherer, or Registry when it is also a Gatherer (a
	// *prometheus.Registry is both).
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	// Version is shown on the status page.
	Version string
}

// Server is the /v1 endpoint with its status page and operational routes.
type Server struct {
	cfg          Config
	bridge       *bridge.Service
	tokens       TokenStore
	keys         *keyCache
	ready        func(context.Context) error
	defaultModel string
	clock        clockwork.Clock
	log          *slog.Logger
	proxies      []netip.Prefix
	policy       *policy
	rate         *rateLimiter
	conc         *concurrency
	metrics      *metrics
	gatherer     prometheus.Gatherer
	version      string
	started      time.Time
	handler      http.Handler

	served   atomic.Int64 // /v1 generations answered
	inFlight atomic.Int64 // /v1 jobs running
}

// New builds a Server; it does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bridge == nil {
		return nil, errors.New("openai: Deps.Bridge is required")
	}
	clock := deps.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "openai")
	proxies, err := parsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	pol, err := newPolicy(cfg)
	if err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	reg, gatherer := deps.Registry, deps.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
	}
	if gatherer == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			gatherer = g
		} else {
			gatherer = prometheus.DefaultGatherer
		}
	}
	svc := deps.Bridge
	m, err := newMetrics(reg, func() float64 { return float64(svc.InFlight()) })
	if err != nil {
		return nil, fmt.Errorf("openai: register metrics: %w", err)
	}
	s := &Server{
		cfg: cfg, bridge: svc, tokens: deps.Tokens, ready: deps.Ready, defaultModel: deps.DefaultModel,
		clock: clock, log: log, proxies: proxies, policy: pol,
		rate:     newRateLimiter(clock, cfg.RateLimitPerMinute, cfg.RateLimitBurst),
		conc:     newConcurrency(cfg.MaxConcurrent),
		metrics:  m,
		gatherer: gatherer,
		version:  deps.Version,
		started:  clock.Now(),
	}
	if deps.Keys != nil {
		s.keys = &keyCache{
			checker: deps.Keys, clock: clock, ttl: cfg.HordeKeyCacheTTL, negTTL: keyNegativeTTL, max: keyCacheMax, log: log,
			entries: map[[32]byte]keyEntry{}, inflight: map[[32]byte]*keyLookup{},
		}
	}
	s.handler = s.routes()
	return s, nil
}

// Handler serves /v1, the status page, /status.json, /healthz, /readyz
// and /metrics. Mount it at "/" on the built-in listener.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	v1 := func(method string, h http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case !s.cfg.Enabled:
				s.writeError(w, &apiError{Status: 404, Type: "invalid_request_error", Code: "disabled", Message: "The OpenAI-compatible endpoint is turned off on this server (openai.enabled = false)."})
			case r.Method != method:
				w.Header().Set("Allow", method+", OPTIONS")
				s.writeError(w, &apiError{Status: 405, Type: "invalid_request_error", Code: "method_not_allowed", Message: fmt.Sprintf("Use %s for %s.", method, r.URL.Path)})
			default:
				h(w, r)
			}
		})
	}
	mux.Handle("/v1/chat/completions", v1(http.MethodPost, s.handleChat))
	mux.Handle("/v1/completions", v1(http.MethodPost, s.handleCompletion))
	mux.Handle("/v1/models", v1(http.MethodGet, s.handleModels))
	mux.Handle("/v1/models/{id...}", v1(http.MethodGet, s.handleModel))
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, &apiError{Status: 404, Type: "invalid_request_error", Code: "unknown_url",
			Message: fmt.Sprintf("Invalid URL (%s %s): this server offers /v1/chat/completions, /v1/completions and /v1/models.", r.Method, r.URL.Path)})
	})
	mux.HandleFunc("GET /{$}", s.handleStatusPage)
	mux.HandleFunc("GET /status.json", s.handleStatusJSON)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.Handle("GET /metrics", s.metricsHandler())
	return s.instrument(s.cors(mux))
}

// instrument counts requests by route pattern and status.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern // set in place by the mux
		if route == "" {
			route = "other"
		} else if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		code := sw.code
		if !sw.written {
			code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// cors answers preflights and marks answers for allowed browser origins.
// A cross-origin browser request from an origin not allowed is refused,
// so a web page cannot use a visitor's local hordechat.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !strings.HasPrefix(r.URL.Path, "/v1/") {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		allowed, any := s.originAllowed(origin)
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if !allowed && !sameOrigin(r, origin) {
			s.metrics.rejected.WithLabelValues("cors").Inc()
			s.writeError(w, &apiError{Status: 403, Type: "permission_error", Code: "origin_not_allowed",
				Message: "Browser requests from this origin are not allowed; the operator can add it to openai.cors_origins."})
			return
		}
		if allowed {
			if any {
				w.Header().Set("Access-Control-Allow-Origin", "*")
			} else {
				w.Header().Set("Access-Control-Allow-Origin", origin)
			}
			w.Header().Set("Access-Control-Expose-Headers", "Retry-After")
		}
		if preflight {
			w.Header().Add("Vary", "Access-Control-Request-Method")
			w.Header().Add("Vary", "Access-Control-Request-Headers")
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			if h := r.Header.Get("Access-Control-Request-Headers"); h != "" {
				w.Header().Set("Access-Control-Allow-Headers", h)
			}
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) originAllowed(origin string) (allowed, any bool) {
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" {
			return true, true
		}
		if strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true, false
		}
	}
	return false, false
}

// sameOrigin reports whether Origin names this very server (browsers send
// Origin on same-origin POSTs too).
func sameOrigin(r *http.Request, origin string) bool {
	_, host, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(host, r.Host)
}

// limit applies the per-caller request rate.
func (s *Server) limit(key string) *apiError {
	ok, wait := s.rate.allow(key)
	if ok {
		return nil
	}
	s.metrics.rejected.WithLabelValues("rate").Inc()
	secs := retryAfterSeconds(wait)
	return &apiError{Status: 429, Type: "rate_limit_error", Code: "rate_limit_exceeded", RetryAfter: secs,
		Message: fmt.Sprintf("Too many requests from you (this server allows %d a minute). Try again in %d s.", s.cfg.RateLimitPerMinute, secs)}
}

// writeJSON writes v with status, bounding the write by write_timeout.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	s.writeJSON(w, e.Status, e.body())
}

// readBody reads a bounded JSON body within read_timeout, then lifts the
// read deadline: a long-running handler must not be cut off by a
// server-wide ReadTimeout (net/http cancels the request context when a
// read deadline passes).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxBodyBytes)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.metrics.rejected.WithLabelValues("body_too_large").Inc()
			return &apiError{Status: 413, Type: "invalid_request_error", Code: "request_too_large",
				Message: fmt.Sprintf("The request body is larger than this server accepts (%d bytes).", s.cfg.MaxBodyBytes)}
		}
		return &apiError{Status: 400, Type: "invalid_request_error", Code: "invalid_body", Message: "Could not read the request body."}
	}
	if len(body) == 0 {
		return badRequest("", "invalid_json", "The request body is empty; the OpenAI API expects a JSON payload.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return decodeError(err)
	}
	return nil
}
