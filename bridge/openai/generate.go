package openai

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bridge"
)

// gen is a parsed, vetted generation request, ready to run.
type gen struct {
	chat         bool // chat.completion, else text_completion
	req          bridge.Request
	model        string // shown before the Horde says which model served
	n            int
	stream       bool
	includeUsage bool
	echo         string // legacy echo: the prompt goes before the answer
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	c, e := s.admit(r)
	if e != nil {
		s.writeError(w, e)
		return
	}
	var body chatRequest
	if e := s.readBody(w, r, &body); e != nil {
		s.writeError(w, e)
		return
	}
	g, e := s.chatGen(c, &body)
	if e != nil {
		s.writeError(w, e)
		return
	}
	s.run(w, r, c, g)
}

func (s *Server) chatGen(c *caller, body *chatRequest) (*gen, *apiError) {
	if e := body.checkUnsupported(); e != nil {
		return nil, e
	}
	msgs, e := body.messages()
	if e != nil {
		return nil, e
	}
	g, e := s.newGen(c, &body.commonRequest)
	if e != nil {
		return nil, e
	}
	if s.policy.blocked(msgs, "") {
		s.metrics.rejected.WithLabelValues("blocked").Inc()
		return nil, blockedError()
	}
	g.chat, g.req.Messages = true, msgs
	return g, nil
}

func (s *Server) handleCompletion(w http.ResponseWriter, r *http.Request) {
	c, e := s.admit(r)
	if e != nil {
		s.writeError(w, e)
		return
	}
	var body completionRequest
	if e := s.readBody(w, r, &body); e != nil {
		s.writeError(w, e)
		return
	}
	g, e := s.completionGen(c, &body)
	if e != nil {
		s.writeError(w, e)
		return
	}
	s.run(w, r, c, g)
}

func (s *Server) completionGen(c *caller, body *completionRequest) (*gen, *apiError) {
	if e := body.checkUnsupported(); e != nil {
		return nil, e
	}
	p, e := body.promptText()
	if e != nil {
		return nil, e
	}
	if strings.TrimSpace(p) == "" {
		return nil, badRequest("prompt", "invalid_value", "prompt must not be empty.")
	}
	g, e := s.newGen(c, &body.commonRequest)
	if e != nil {
		return nil, e
	}
	if s.policy.blocked(nil, p) {
		s.metrics.rejected.WithLabelValues("blocked").Inc()
		return nil, blockedError()
	}
	g.req.Prompt = p
	if body.Echo {
		g.echo = p
	}
	return g, nil
}

// admit authenticates the caller and applies the request rate.
func (s *Server) admit(r *http.Request) (*caller, *apiError) {
	ip := s.clientAddr(r)
	c, e := s.authenticate(r, ip)
	if e != nil {
		if e.Status == 401 {
			s.metrics.rejected.WithLabelValues("auth").Inc()
		}
		return nil, e
	}
	if e := s.limit(c.limitKey); e != nil {
		return nil, e
	}
	return c, nil
}

// newGen maps the fields chat and legacy completions share.
func (s *Server) newGen(c *caller, body *commonRequest) (*gen, *apiError) {
	p := bridge.Params{
		Temperature: body.Temperature, TopP: body.TopP, Seed: body.Seed,
		FrequencyPenalty: body.FrequencyPenalty, PresencePenalty: body.PresencePenalty,
		TopK: body.TopK, MinP: body.MinP, TopA: body.TopA, Typical: body.Typical, TFS: body.TFS,
		RepPen: body.RepPen, RepPenRange: body.RepPenRange, RepPenSlope: body.RepPenSlope,
		SmoothingFactor: body.SmoothingFactor, DynatempRange: body.DynatempRange, DynatempExponent: body.DynatempExponent,
		TrustedWorkers: body.TrustedWorkers, Workers: body.Workers, WorkerBlacklist: body.WorkerBlacklist,
	}
	n := 1
	if body.N != nil {
		n = *body.N
		if n < 1 || n > s.cfg.MaxN {
			return nil, badRequest("n", "invalid_value", "n must be between 1 and %d on this server (got %d).", s.cfg.MaxN, n)
		}
	}
	p.N = n
	mt, param := body.MaxCompletionTokens, "max_completion_tokens"
	if mt == nil {
		mt, param = body.MaxTokens, "max_tokens"
	}
	if mt != nil {
		v := *mt
		if v < 1 {
			return nil, badRequest(param, "invalid_value", "%s must be at least 1 (got %d).", param, v)
		}
		if s.cfg.MaxTokens > 0 && v > s.cfg.MaxTokens {
			v = s.cfg.MaxTokens // lowered, not refused: tools often ask for more than any worker gives
		}
		p.MaxTokens = &v
	}
	for _, st := range body.Stop {
		if st != "" {
			p.Stop = append(p.Stop, st)
		}
	}
	names, display, e := s.resolveModels(body.Model)
	if e != nil {
		return nil, e
	}
	g := &gen{
		req:    bridge.Request{Principal: c.principal, Models: names, Params: p},
		model:  display,
		n:      n,
		stream: body.Stream,
	}
	if body.Stream && body.StreamOptions != nil {
		g.includeUsage = body.StreamOptions.IncludeUsage
	}
	return g, nil
}

// run runs an admitted generation under the caller's concurrency limit.
func (s *Server) run(w http.ResponseWriter, r *http.Request, c *caller, g *gen) {
	if !s.conc.acquire(c.limitKey) {
		s.metrics.rejected.WithLabelValues("concurrency").Inc()
		s.writeError(w, &apiError{Status: 429, Type: "rate_limit_error", Code: "too_many_concurrent_requests", RetryAfter: concurrencyRetry,
			Message: fmt.Sprintf("You already have %d requests running on this server, the most it allows at once. Wait for one to finish.", s.cfg.MaxConcurrent)})
		return
	}
	defer s.conc.release(c.limitKey)
	s.inFlight.Add(1)
	s.metrics.inFlight.Inc()
	defer func() {
		s.inFlight.Add(-1)
		s.metrics.inFlight.Dec()
	}()
	// The job may take many minutes: no server-wide write timeout may cut
	// it; each write sets its own deadline instead.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})

	tr := newTracker(s.clock, s.metrics)
	ctx, abandon, finish := jobContext(r.Context(), tr)
	defer finish()
	var res *bridge.Result
	var err error
	if g.stream {
		res, err = s.stream(ctx, abandon, w, g, tr)
	} else {
		res, err = s.bridge.Complete(ctx, g.req, tr.progress)
		if err == nil {
			s.writeJSON(w, http.StatusOK, s.answer(g, res))
		} else {
			s.writeError(w, fromBridge(err))
		}
	}
	s.account(c, res, err)
}

// jobContext is the context a job runs in. It ends when the caller goes
// away (or abandon is called), but never while the submit is in flight:
// a submit cancelled after the Horde took it would leave a request nobody
// deletes, so the cancel waits for the first status, which means the
// bridge knows the Horde's request id and will delete it. finish must be
// called when the job has returned.
func jobContext(parent context.Context, tr *tracker) (ctx context.Context, abandon, finish func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	finished := make(chan struct{})
	var once sync.Once
	abandon = func() {
		once.Do(func() {
			go func() {
				select {
				case <-tr.first:
				case <-finished:
				}
				cancel()
			}()
		})
	}
	// AfterFunc rather than a goroutine per job: an idle stream costs
	// memory, and thousands may wait in the Horde's queue.
	stop := context.AfterFunc(parent, abandon)
	return ctx, abandon, func() {
		stop()
		close(finished)
		cancel()
	}
}

// concurrencyRetry is the Retry-After for a caller at its job limit: a
// short Horde job takes about this long.
const concurrencyRetry = 10

// account records a finished job in the metrics and logs.
func (s *Server) account(c *caller, res *bridge.Result, err error) {
	auth := string(c.kind)
	switch {
	case err == nil:
		s.served.Add(1)
		s.metrics.jobs.WithLabelValues(auth, "ok").Inc()
		s.metrics.tokens.WithLabelValues(auth, "prompt").Add(float64(res.PromptTokens))
		s.metrics.tokens.WithLabelValues(auth, "completion").Add(float64(res.CompletionTokens))
		s.metrics.kudos.WithLabelValues(auth).Add(res.Kudos)
		s.log.Debug("v1 job done", "auth", auth, "principal", c.principal.String(), "job", res.JobID, "model", res.Model, "kudos", res.Kudos)
	case errors.Is(err, context.Canceled):
		s.metrics.jobs.WithLabelValues(auth, "canceled").Inc()
		s.log.Debug("v1 job cancelled by the caller", "auth", auth, "principal", c.principal.String())
	default:
		be := bridge.Classify(err)
		s.metrics.jobs.WithLabelValues(auth, "error").Inc()
		s.log.Info("v1 job failed", "auth", auth, "principal", c.principal.String(), "code", be.Code, "err", err)
	}
}

// answer builds the non-streaming answer.
func (s *Server) answer(g *gen, res *bridge.Result) any {
	if g.chat {
		out := chatCompletion{ID: "chatcmpl-" + res.JobID, Object: "chat.completion", Created: res.Created.Unix(), Model: res.Model, Usage: usageOf(res), Horde: hordeInfoOf(res)}
		for _, ch := range res.Choices {
			out.Choices = append(out.Choices, chatChoice{Index: ch.Index, Message: assistantMessage{Role: "assistant", Content: ch.Text}, FinishReason: string(ch.FinishReason)})
		}
		return out
	}
	out := textCompletion{ID: "cmpl-" + res.JobID, Object: "text_completion", Created: res.Created.Unix(), Model: res.Model, Usage: usageOf(res), Horde: hordeInfoOf(res)}
	for _, ch := range res.Choices {
		fr := string(ch.FinishReason)
		out.Choices = append(out.Choices, textChoice{Index: ch.Index, Text: g.echo + ch.Text, FinishReason: &fr})
	}
	return out
}

// tracker follows a job's progress: the latest state for heartbeats, and
// the queue and processing times for metrics. The bridge calls progress
// from its own goroutines; it must not block.
type tracker struct {
	clock   clockwork.Clock
	metrics *metrics
	changed chan struct{}
	first   chan struct{} // closed at the first progress
	once    sync.Once

	mu     sync.Mutex
	start  time.Time
	procAt time.Time
	last   bridge.Progress
	seen   bool
	ended  bool
}

func newTracker(clock clockwork.Clock, m *metrics) *tracker {
	return &tracker{clock: clock, metrics: m, start: clock.Now(), changed: make(chan struct{}, 1), first: make(chan struct{})}
}

func (t *tracker) progress(p bridge.Progress) {
	now := t.clock.Now()
	t.mu.Lock()
	if p.Stage == bridge.StageQueued && p.QueuePosition == 0 && !t.procAt.IsZero() && p.Restarted == t.last.Restarted {
		// The final status (nothing waiting, nothing processing) reads as
		// "queued" in the bridge; it is the end of processing, not a requeue.
		p.Stage = bridge.StageProcessing
	}
	switch {
	case p.Stage == bridge.StageProcessing && t.procAt.IsZero():
		t.procAt = now
		t.metrics.queue.Observe(now.Sub(t.start).Seconds())
	case p.Stage == bridge.StageDone && !t.ended:
		t.ended = true
		if t.procAt.IsZero() {
			t.metrics.queue.Observe(now.Sub(t.start).Seconds())
		} else {
			t.metrics.processing.Observe(now.Sub(t.procAt).Seconds())
		}
	}
	t.last, t.seen = p, true
	t.mu.Unlock()
	t.once.Do(func() { close(t.first) })
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// latest returns the last progress, and whether there was any.
func (t *tracker) latest() (bridge.Progress, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last, t.seen
}

// describe is the heartbeat text for a progress: one line, no secrets.
func describe(p bridge.Progress, seen bool) string {
	if !seen {
		return "submitted, waiting for the first status"
	}
	var b strings.Builder
	switch p.Stage {
	case bridge.StageQueued:
		b.WriteString("queued")
		if p.QueuePosition > 0 {
			fmt.Fprintf(&b, ", position %d", p.QueuePosition)
		}
	case bridge.StageProcessing:
		b.WriteString("processing")
	case bridge.StageRetrying:
		b.WriteString("retrying")
		if p.Err != nil {
			b.WriteString(": " + oneLine(p.Err.Message))
		}
	default:
		b.WriteString(string(p.Stage))
	}
	if p.ETA > 0 && (p.Stage == bridge.StageQueued || p.Stage == bridge.StageProcessing) {
		fmt.Fprintf(&b, ", eta %s", p.ETA.Round(time.Second))
	}
	if p.Restarted > 0 {
		fmt.Fprintf(&b, ", restarted %d", p.Restarted)
	}
	return b.String()
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// splitText cuts text into about parts pieces at spaces, so a stream
// shows the answer arriving; the pieces join back to text exactly.
func splitText(text string, parts int) []string {
	if text == "" {
		return nil
	}
	size := max(len(text)/parts, 24)
	var out []string
	for len(text) > size {
		cut := size
		for cut < len(text) && !utf8.RuneStart(text[cut]) {
			cut++
		}
		// Move to just after the next space, unless none is near.
		if i := strings.IndexFunc(text[cut:], unicode.IsSpace); i >= 0 && i < size {
			cut += i + 1
			for cut < len(text) && !utf8.RuneStart(text[cut]) {
				cut++
			}
		}
		if cut >= len(text) {
			break
		}
		out = append(out, text[:cut])
		text = text[cut:]
	}
	return append(out, text)
}

// streamID is a chunk id when the job id is not known yet.
func streamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
