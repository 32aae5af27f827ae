package openai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	oai "github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

const (
	testPasskey = "proxy-passkey-for-tests-01"
	operatorKey = "operator-key-0123456789"
	// userKey is a caller's own Horde key (pass-through).
	userKey = "caller-own-horde-key-42"
	// linkedKey is the key the token user linked in chat.
	linkedKey  = "linked-horde-key-of-user-7"
	validToken = "hc_valid-token-of-user-7-aaaaaaaaaaaaaaaaaaaaaaaaaaa"
	// Models served by the default test workers.
	modelFimbul = "koboldcpp/Fimbulvetr-11B-v2"
	modelHermes = "aphrodite/NousResearch/Hermes-3-Llama-3.1-8B"
	modelNemo   = "koboldcpp/Mistral-Nemo-Instruct-12B"
	// defaultAnswer is what the fake workers answer unless the prompt says
	// otherwise (see testResponder).
	defaultAnswer = "Hello from a fake Horde worker, nice to meet you."
	longAnswer    = "The quick brown fox jumps over the lazy dog while the patient cat watches from the warm windowsill, thinking about dinner and the long evening ahead."
)

var testSecret = bytes.Repeat([]byte{0x5a}, 32)

// testResponder answers defaultAnswer, or longAnswer when the prompt asks
// for LONG, so tests know exactly what comes back.
func testResponder(j hordetest.Job) string {
	if strings.Contains(j.Prompt, "LONG") {
		return longAnswer
	}
	return defaultAnswer
}

// fastWorkers finish any job in well under a millisecond of simulated time.
func fastWorkers() []hordetest.Worker {
	return []hordetest.Worker{
		{Name: "fast-fimbul", Models: []string{modelFimbul}, MaxLength: 512, MaxContextLength: 8192, TokensPerSecond: 1e7, Threads: 400},
		{Name: "fast-hermes", Models: []string{modelHermes}, MaxLength: 1024, MaxContextLength: 16384, TokensPerSecond: 1e7, Threads: 400, Trusted: true},
		{Name: "fast-nemo", Models: []string{modelNemo}, MaxLength: 1024, MaxContextLength: 16384, TokensPerSecond: 1e7, Threads: 400},
	}
}

// memStore is an in-memory bridge.Store.
type memStore struct {
	mu   sync.Mutex
	keys map[int64]string
	jobs map[string]*bridge.JournalEntry
	done map[string]bridge.JobState
}

func newMemStore() *memStore {
	return &memStore{keys: map[int64]string{}, jobs: map[string]*bridge.JournalEntry{}, done: map[string]bridge.JobState{}}
}

func (m *memStore) LinkedHordeKey(_ context.Context, id int64) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[id], nil
}

func (m *memStore) CreateJob(_ context.Context, e bridge.JournalEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.jobs[e.ID]; dup {
		return errors.New("duplicate job")
	}
	m.jobs[e.ID] = &e
	return nil
}

func (m *memStore) MarkJobSubmitted(_ context.Context, id, hordeID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j, ok := m.jobs[id]; ok {
		j.HordeID = hordeID
	}
	return nil
}

func (m *memStore) SaveJobResult(_ context.Context, id string, result []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j, ok := m.jobs[id]; ok {
		j.Result = result
	}
	return nil
}

func (m *memStore) FinishJob(_ context.Context, id string, state bridge.JobState, _ []byte, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Forget finished jobs so that long benchmarks do not grow the map.
	delete(m.jobs, id)
	m.done[id] = state
	if len(m.done) > 100000 {
		clear(m.done)
	}
	return nil
}

func (m *memStore) IncrementJobAttempts(_ context.Context, id string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j, ok := m.jobs[id]; ok {
		j.Attempts++
		return j.Attempts, nil
	}
	return 0, nil
}

func (m *memStore) UnfinishedJobs(context.Context) ([]bridge.JournalEntry, error) { return nil, nil }

// memTokens is a TokenStore over a map.
type memTokens struct {
	mu    sync.Mutex
	users map[string]TokenUser
	calls int
	fail  error
}

func (m *memTokens) LookupToken(_ context.Context, token string) (TokenUser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail != nil {
		return TokenUser{}, m.fail
	}
	u, ok := m.users[token]
	if !ok {
		return TokenUser{}, fmt.Errorf("authenticate api token: %w", ErrUnknownToken)
	}
	return u, nil
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hordeSide wraps the fake Horde's handler: it times the fake (for the
// benchmarks' "latency hordechat adds") and lets tests wait for calls.
type hordeSide struct {
	next  http.Handler
	track bool

	mu     sync.Mutex
	inside time.Duration
	calls  int
	waits  []hordeWait
	byID   map[string]time.Duration // handler time per Horde request id
}

type hordeWait struct {
	method, prefix string
	ch             chan struct{}
}

// idWriter keeps the body of a submit answer to learn the request id.
type idWriter struct {
	http.ResponseWriter
	body []byte
}

func (w *idWriter) Write(b []byte) (int, error) {
	w.body = append(w.body, b...)
	return w.ResponseWriter.Write(b)
}

func (h *hordeSide) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var iw *idWriter
	if h.track && r.Method == http.MethodPost {
		iw = &idWriter{ResponseWriter: w}
		w = iw
	}
	start := time.Now()
	h.next.ServeHTTP(w, r)
	d := time.Since(start)
	id := ""
	if h.track {
		if iw != nil {
			var sub struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(iw.body, &sub)
			id = sub.ID
		} else if rest, ok := strings.CutPrefix(r.URL.Path, "/api/v2/generate/text/status/"); ok {
			id = rest
		}
	}
	h.mu.Lock()
	h.inside += d
	h.calls++
	if id != "" {
		h.byID[id] += d
	}
	kept := h.waits[:0]
	for _, wt := range h.waits {
		if r.Method == wt.method && strings.HasPrefix(r.URL.Path, wt.prefix) {
			close(wt.ch)
			continue
		}
		kept = append(kept, wt)
	}
	h.waits = kept
	h.mu.Unlock()
}

// timeFor is the fake's handler time spent on one Horde request.
func (h *hordeSide) timeFor(id string) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byID[id]
}

// next returns a channel closed after the next call with method to a path
// starting with prefix ("/api/v2/...") has been answered.
func (h *hordeSide) await(method, prefix string) <-chan struct{} {
	ch := make(chan struct{})
	h.mu.Lock()
	h.waits = append(h.waits, hordeWait{method, prefix, ch})
	h.mu.Unlock()
	return ch
}

// harness is the whole stack: the fake Horde, a real bridge.Service, the
// /v1 Server and an httptest server in front of it.
type harness struct {
	tb      testing.TB
	fake    *hordetest.Server
	side    *hordeSide
	client  *hordeapi.Client
	svc     *bridge.Service
	srv     *Server
	ts      *httptest.Server
	store   *memStore
	tokens  *memTokens
	reg     *prometheus.Registry
	ids     *bridge.Identities
	logs    *syncBuffer
	hordeMx *HordeMetrics
}

type harnessOpts struct {
	cfg       func(*Config)
	bridgeCfg func(*bridge.Config)
	horde     []hordetest.Option
	// hordeClock drives the fake Horde and the bridge; nil is a real clock
	// with a fast simulation tick.
	hordeClock clockwork.Clock
	// serverClock drives heartbeats, limits and caches; nil is real.
	serverClock clockwork.Clock
	noKeys      bool
	ready       func(context.Context) error
	// sched overrides the bridge's scheduler settings (benchmarks).
	sched *bridge.SchedulerConfig
	// trackHorde records the fake's handler time per Horde request id.
	trackHorde bool
	// quiet logs at warn level only (benchmarks).
	quiet bool
}

func newHarness(tb testing.TB, o harnessOpts) *harness {
	tb.Helper()
	h := &harness{tb: tb, store: newMemStore(), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	h.tokens = &memTokens{users: map[string]TokenUser{validToken: {Platform: "discord", PlatformUserID: "4242", StoreUserID: 7}}}
	h.store.keys[7] = linkedKey

	hopts := hordetest.Options{
		Clock: o.hordeClock, Passkey: testPasskey, Workers: fastWorkers(), Responder: testResponder,
		Users: []hordetest.User{
			{APIKey: operatorKey, Username: "operator", Kudos: 1e6, Concurrency: 100000},
			{APIKey: userKey, Username: "caller", Kudos: 1e6, Concurrency: 100000},
			{APIKey: linkedKey, Username: "linked", Kudos: 1e6, Concurrency: 100000},
		},
		TickInterval:      2 * time.Millisecond,
		DisableRateLimits: true, // tests about the Horde's limits inject faults
	}
	if hopts.Clock == nil {
		hopts.Clock = clockwork.NewRealClock()
	}
	for _, opt := range o.horde {
		opt(&hopts)
	}
	h.fake = hordetest.NewServer(hopts)
	h.side = &hordeSide{next: h.fake.Handler(), track: o.trackHorde, byID: map[string]time.Duration{}}
	hts := httptest.NewServer(h.side)
	tb.Cleanup(func() {
		hts.Close()
		_ = h.fake.Close()
	})

	var err error
	h.hordeMx, err = NewHordeMetrics(h.reg)
	if err != nil {
		tb.Fatal(err)
	}
	hcfg := hordeapi.DefaultConfig()
	hcfg.BaseURL = hts.URL + "/api"
	hcfg.APIKey = operatorKey
	hcfg.ProxyPasskey = testPasskey
	hcfg.MaxRetries = 0
	transport := &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 0}
	tb.Cleanup(transport.CloseIdleConnections)
	h.client, err = hordeapi.New(hcfg, hordeapi.WithVersion("test"),
		hordeapi.WithHTTPClient(&http.Client{Timeout: 30 * time.Second, Transport: h.hordeMx.RoundTripper(transport)}),
		hordeapi.WithSleep(func(ctx context.Context, _ time.Duration) error { return ctx.Err() }))
	if err != nil {
		tb.Fatal(err)
	}
	bcfg := bridge.DefaultConfig()
	bcfg.StatusCallsPerSecond = 100
	if o.bridgeCfg != nil {
		o.bridgeCfg(&bcfg)
	}
	level := slog.LevelDebug
	if o.quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: level}))
	h.svc, err = bridge.New(bcfg, bridge.Deps{Client: h.client, Store: h.store, IdentitySecret: testSecret, Clock: hopts.Clock, Log: log, Scheduler: o.sched})
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.svc.RefreshModels(context.Background()); err != nil {
		tb.Fatal(err)
	}
	if err := h.svc.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.svc.Close)
	h.ids, err = bridge.NewIdentities(testSecret)
	if err != nil {
		tb.Fatal(err)
	}

	cfg := DefaultConfig()
	cfg.RateLimitPerMinute = 0
	cfg.MaxConcurrent = 0
	cfg.Heartbeat = 50 * time.Millisecond
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	deps := Deps{Bridge: h.svc, Tokens: h.tokens, Keys: h.client, Clock: o.serverClock, Log: log, Registry: h.reg, Version: "test", Ready: o.ready}
	if o.noKeys {
		deps.Keys = nil
	}
	h.srv, err = New(cfg, deps)
	if err != nil {
		tb.Fatal(err)
	}
	h.ts = httptest.NewServer(h.srv.Handler())
	tb.Cleanup(h.ts.Close)
	return h
}

// sdk is an official OpenAI Go SDK client for the harness with key as
// the bearer token ("" sends none).
func (h *harness) sdk(key string, opts ...option.RequestOption) oai.Client {
	base := []option.RequestOption{
		option.WithBaseURL(h.ts.URL + "/v1/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
		option.WithHTTPClient(h.ts.Client()),
	}
	if key == "" {
		base = append(base, option.WithHeaderDel("Authorization"))
	}
	return oai.NewClient(append(base, opts...)...)
}

// do sends a raw request and returns the response with its body read.
func (h *harness) do(method, path, key, body string, header ...string) (*http.Response, []byte) {
	h.tb.Helper()
	req, err := http.NewRequest(method, h.ts.URL+path, strings.NewReader(body))
	if err != nil {
		h.tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.tb.Fatal(err)
	}
	return resp, raw
}

// submits returns the recorded submits to the fake Horde.
func (h *harness) submits() []hordetest.RecordedRequest {
	return h.fake.RequestsTo(http.MethodPost, "/v2/generate/text/async")
}

// lastSubmit returns the one submit a test expects.
func (h *harness) lastSubmit() hordetest.RecordedRequest {
	h.tb.Helper()
	subs := h.submits()
	if len(subs) == 0 {
		h.tb.Fatal("no submit reached the Horde")
	}
	return subs[len(subs)-1]
}

// submitBody decodes a recorded submit.
func submitBody(tb testing.TB, rr hordetest.RecordedRequest) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(rr.Body, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// metricsText scrapes /metrics.
func (h *harness) metricsText() string {
	h.tb.Helper()
	resp, raw := h.do(http.MethodGet, "/metrics", "", "")
	if resp.StatusCode != 200 {
		h.tb.Fatalf("metrics: %d %s", resp.StatusCode, raw)
	}
	return string(raw)
}

// apiErr decodes an OpenAI error body.
func apiErr(tb testing.TB, raw []byte) errorDetailT {
	tb.Helper()
	var b struct {
		Error errorDetailT `json:"error"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		tb.Fatalf("not an OpenAI error body: %v: %s", err, raw)
	}
	return b.Error
}

type errorDetailT struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e errorDetailT) param() string {
	if e.Param == nil {
		return ""
	}
	return *e.Param
}

func (e errorDetailT) code() string {
	if e.Code == nil {
		return ""
	}
	return *e.Code
}

// sseReader reads a raw SSE response line by line on its own goroutine.
type sseReader struct {
	resp  *http.Response
	lines chan string
}

func (h *harness) openStream(ctx context.Context, path, key, body string) *sseReader {
	h.tb.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.ts.URL+path, strings.NewReader(body))
	if err != nil {
		h.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.tb.Fatal(err)
	}
	r := &sseReader{resp: resp, lines: make(chan string, 1024)}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	h.tb.Cleanup(func() { resp.Body.Close() })
	return r
}

// next waits for the next line; ok is false at the end of the stream.
func (r *sseReader) next(tb testing.TB) (string, bool) {
	tb.Helper()
	select {
	case l, ok := <-r.lines:
		return l, ok
	case <-time.After(20 * time.Second):
		tb.Fatal("stream stalled: no line in 20s")
		return "", false
	}
}

// until reads lines until one satisfies f, returning every line read.
func (r *sseReader) until(tb testing.TB, f func(string) bool) []string {
	tb.Helper()
	var seen []string
	for {
		l, ok := r.next(tb)
		if !ok {
			tb.Fatalf("stream ended before the expected line; got:\n%s", strings.Join(seen, "\n"))
		}
		seen = append(seen, l)
		if f(l) {
			return seen
		}
	}
}

func chatBody(model, content string, extra ...string) string {
	b := `{"model":` + jsonString(model) + `,"messages":[{"role":"user","content":` + jsonString(content) + `}]`
	for _, e := range extra {
		b += "," + e
	}
	return b + "}"
}

func jsonString(s string) string {
	raw, _ := json.Marshal(s)
	return string(raw)
}

// waitFor closes over a channel with a generous real-time bound, so a
// broken test fails instead of hanging.
func waitFor(tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		tb.Fatalf("timed out waiting for %s", what)
	}
}
