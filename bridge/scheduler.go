package bridge

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/hordeapi"
)

// The status scheduler: one loop polls every in-flight Horde request, at a
// pace chosen per request from its last status and capped by a global
// budget. See Scheduler.

var (
	// ErrWatchStopped ends a watch whose caller called Stop, or that a
	// newer Watch of the same request id replaced.
	ErrWatchStopped = errors.New("status watch stopped")
	// ErrSchedulerStopped ends the watches still open when Run returns,
	// and every watch started after that.
	ErrSchedulerStopped = errors.New("status scheduler stopped")
)

// StatusClient is the part of the Horde client the scheduler needs
// (*hordeapi.Client satisfies it). Give the scheduler a client that does not
// retry on its own (hordeapi.Config.MaxRetries 0): the scheduler backs off
// per request, and a client-side retry would poll again sooner than
// SchedulerConfig.MinInterval allows.
type StatusClient interface {
	TextStatus(ctx context.Context, who hordeapi.Caller, id string) (*hordeapi.TextStatus, error)
}

// SchedulerConfig tunes the status polling. Zero fields take the defaults of
// DefaultSchedulerConfig.
type SchedulerConfig struct {
	// CallsPerSecond is the budget of status calls per second shared by all
	// requests: a token bucket with a burst of a tenth of it (at least 1),
	// so any 1 s window sees at most CallsPerSecond+burst-1 calls.
	CallsPerSecond float64
	// MinInterval is the shortest gap between two polls of one request,
	// counted from the previous answer; never below 1 s, since the Horde
	// caches a status for 1 s and allows 60 status calls a minute per id.
	MinInterval time.Duration
	// MaxInterval is the longest gap between polls of a queued request.
	MaxInterval time.Duration
	// SafetyInterval is the gap between safety-net polls of a request
	// whose results come by webhook.
	SafetyInterval time.Duration
	// Concurrency bounds the status calls in flight at once.
	Concurrency int
	// Fixed polls every request every MinInterval, without adaptation: the
	// baseline the benchmarks compare against.
	Fixed bool
}

// DefaultSchedulerConfig returns the defaults: 10 calls/s, 1 s to 30 s
// between polls, a safety-net poll every 2 minutes, 8 calls in flight.
func DefaultSchedulerConfig() SchedulerConfig {
	return SchedulerConfig{
		CallsPerSecond: 10,
		MinInterval:    time.Second,
		MaxInterval:    30 * time.Second,
		SafetyInterval: 2 * time.Minute,
		Concurrency:    8,
	}
}

func (c SchedulerConfig) withDefaults() SchedulerConfig {
	d := DefaultSchedulerConfig()
	if !(c.CallsPerSecond > 0) || math.IsInf(c.CallsPerSecond, 0) {
		c.CallsPerSecond = d.CallsPerSecond
	}
	c.MinInterval = max(c.MinInterval, time.Second)
	if c.MaxInterval <= 0 {
		c.MaxInterval = d.MaxInterval
	}
	c.MaxInterval = max(c.MaxInterval, c.MinInterval)
	if c.SafetyInterval <= 0 {
		c.SafetyInterval = d.SafetyInterval
	}
	c.SafetyInterval = max(c.SafetyInterval, c.MinInterval)
	if c.Concurrency <= 0 {
		c.Concurrency = d.Concurrency
	}
	return c
}

// Policy constants.
const (
	// schedPollFraction: a queued request is polled again after this share
	// of its estimated time to pick-up, so the polls close in on it.
	schedPollFraction = 0.5
	// schedNearStart: a request estimated to be picked up within this many
	// MinIntervals is polled at MinInterval.
	schedNearStart = 3
	// schedMinSpan is the shortest observation a request's own queue speed
	// is estimated from, in seconds (the Horde rounds wait_time to seconds).
	schedMinSpan = 5.0
	// schedRateAlpha weighs each request's observed queue speed into the
	// scheduler-wide estimate used for requests not yet observed long.
	schedRateAlpha = 0.05
	// schedMaxDefers bounds how many safety-net polls in a row are skipped
	// while webhooks arrive, so a lost webhook is noticed within
	// (schedMaxDefers+1) SafetyIntervals (+10 % jitter), well inside the
	// Horde's 20 min.
	schedMaxDefers = 2
	// schedJitter spreads gaps of 2 MinIntervals or more by ±10 %.
	schedJitter = 0.1
)

// Scheduler polls the status of in-flight Horde requests for all jobs at
// once: a min-heap of next-poll times, one loop goroutine, and a pool of
// Concurrency goroutines making the calls. Every timer runs on the injected
// clock.
//
// The next poll of a request follows its last status. Queued requests are
// polled after half their estimated time to pick-up, between MinInterval
// and MaxInterval; the estimate divides wait_time, or queue_position, by
// the speed at which the request's own wait_time and position have been
// falling, or the speed other requests showed, whichever is faster (and
// never slower than the Horde's own estimate). Until a request's own speed
// is known (5 s of observation) the gap is at most 10 s. Requests a worker
// holds, or about to be picked up, are polled every MinInterval: wait_time
// counts a job at its full max_length, but most answers stop earlier, so a
// job can end at any moment. Gaps of two
// MinIntervals or more get ±10 % jitter; no request is polled twice within
// MinInterval. A token bucket of CallsPerSecond caps all polls. When it
// runs dry, or the pool is busy, due polls are shared out fairly between
// principals (the Proxied-For identity, else the key, of each watch's
// Caller): round-robin across principals, earliest-due first within one,
// so one person with many jobs in flight gets no more of the budget than
// anyone else with a poll due, and no request starves. Failures
// (5xx, 429, network) back off per request, exponentially and at least by
// Retry-After; a 404 ends the watch with the error; a done or faulted
// status ends it with the status.
//
// A request whose results come by webhook (WatchOptions.Webhook) is polled
// only as a safety net, every SafetyInterval, and not at all while webhooks
// keep arriving (then at most two in a row are skipped, so a lost webhook is
// noticed within three SafetyIntervals).
// Deliver finishes its watch as soon as the last generation is in.
type Scheduler struct {
	client StatusClient
	clock  clockwork.Clock
	cfg    SchedulerConfig
	log    *slog.Logger
	emit   int64 // budget: ns between calls at the steady rate
	tau    int64 // budget: how far ahead of the steady rate calls may run (the burst)
	wake   chan struct{}
	work   chan *Watch

	mu       sync.Mutex
	cond     *sync.Cond // signalled whenever the loop may have become idle
	queue    schedQueue // watches waiting for their due time
	ready    schedPrincipals
	byWho    map[string]*schedPrincipal
	vtime    uint64 // pass of the principal served last (fair queuing)
	byID     map[string]*Watch
	seq      uint64
	tat      int64 // budget: theoretical arrival time of the next call (GCRA)
	inflight int
	started  bool
	stopped  bool
	wakeSet  bool
	parked   bool    // the loop waits for nextWake or a wake-up
	nextWake int64   // unix ns; 0 when nothing is scheduled
	lastHook int64   // when Deliver last accepted a generation
	waitRate float64 // queue speed seen by requests: wait_time seconds that pass per second
	posRate  float64 // queue positions advanced per second; 0 while unknown
}

// NewScheduler returns a scheduler; it polls only while Run runs. A nil
// log discards.
func NewScheduler(client StatusClient, clock clockwork.Clock, cfg SchedulerConfig, log *slog.Logger) *Scheduler {
	cfg = cfg.withDefaults()
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	burst := max(1, math.Floor(cfg.CallsPerSecond/10))
	// Rounded up, so a second never holds one call more than the rate.
	emit := max(int64(math.Ceil(float64(time.Second)/cfg.CallsPerSecond)), 1)
	s := &Scheduler{
		client:   client,
		clock:    clock,
		cfg:      cfg,
		log:      log,
		emit:     emit,
		tau:      int64(burst-1) * emit,
		wake:     make(chan struct{}, 1),
		work:     make(chan *Watch, cfg.Concurrency),
		byID:     map[string]*Watch{},
		byWho:    map[string]*schedPrincipal{},
		waitRate: 1,
	}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Config returns the configuration in effect, defaults filled in.
func (s *Scheduler) Config() SchedulerConfig { return s.cfg }

// WatchOptions say what a watch expects and whom it tells.
type WatchOptions struct {
	// N is how many generations the request asked for; Deliver finishes
	// the watch when that many distinct ones came in. 0 means 1.
	N int
	// Webhook says results also arrive through Deliver, so polls are only
	// a safety net.
	Webhook bool
	// OnStatus gets each status fetched, the final one included, before
	// Done is closed; never concurrently for one watch. It runs on a
	// polling goroutine and must not block long.
	OnStatus func(*hordeapi.TextStatus)
	// OnRetry gets each transient poll failure (5xx, network, 429);
	// polling goes on with backoff.
	OnRetry func(err error)
}

// Watch is one request being polled. Its methods are safe for concurrent use.
type Watch struct {
	s        *Scheduler
	id       string
	who      hordeapi.Caller
	p        *schedPrincipal // whose share of the budget it polls on
	onStatus func(*hordeapi.TextStatus)
	onRetry  func(error)
	done     chan struct{}
	n        int32
	webhook  bool

	// Guarded by s.mu. Kept small: 10,000 watches must fit in a few MB.
	state    uint8
	fails    uint8 // transient failures in a row
	defers   uint8 // safety-net polls skipped in a row while webhooks flow
	safety   bool  // the pending poll is a webhook safety-net poll
	index    int32 // in s.queue, or in p.ready when watchReady; -1 when in neither
	qWait    int32 // wait_time at the first queued observation
	qPos     int32 // queue_position then
	seq      uint64
	due      int64 // next poll, unix ns
	earliest int64 // no poll before: MinInterval after the last answer, or Retry-After
	qSince   int64 // time of the first queued observation of this wait; 0 for none
	hooks    *schedHooks
	result   *hordeapi.TextStatus
	err      error
}

// Watch states.
const (
	watchQueued  uint8 = iota // in s.queue, waiting for its due time
	watchReady                // due, in its principal's ready heap, waiting for budget or pool
	watchPolling              // a call or its callbacks are running
	watchDone                 // result or err set, done closed
)

// schedHooks collects the generations webhooks delivered for one watch.
type schedHooks struct {
	jobs  []string
	gens  []hordeapi.Generation
	kudos float64
}

// Watch starts polling the request id on behalf of who, the Caller that
// submitted it (its key and Proxied-For carry the rate limits). The first
// poll is due at once; with opt.Webhook, not before SafetyInterval. A
// watch already open for the same id ends with ErrWatchStopped.
func (s *Scheduler) Watch(id string, who hordeapi.Caller, opt WatchOptions) *Watch {
	w := &Watch{
		s: s, id: id, who: who, onStatus: opt.OnStatus, onRetry: opt.OnRetry,
		done: make(chan struct{}), n: int32(min(max(opt.N, 1), math.MaxInt32)),
		webhook: opt.Webhook, index: -1,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		w.state, w.err = watchDone, ErrSchedulerStopped
		close(w.done)
		return w
	}
	if old := s.byID[id]; old != nil {
		s.finishLocked(old, nil, ErrWatchStopped)
	}
	now := s.clock.Now().UnixNano()
	w.due = now
	if w.webhook && !s.cfg.Fixed {
		w.due = now + int64(s.jitterUp(s.cfg.SafetyInterval))
		w.safety = true
	}
	s.seq++
	w.seq = s.seq
	s.byID[id] = w
	w.p = s.principalLocked(who)
	heap.Push(&s.queue, w)
	s.signalLocked()
	return w
}

// Done is closed when the watch has ended; then Result tells how.
func (w *Watch) Done() <-chan struct{} { return w.done }

// Result waits for Done, then returns the final status (Done or Faulted
// true), or a terminal error: the hordeapi.ErrNotFound one when the Horde
// lost or expired the request, another non-retryable error of the client,
// ErrWatchStopped or ErrSchedulerStopped.
func (w *Watch) Result() (*hordeapi.TextStatus, error) {
	<-w.done
	return w.result, w.err
}

// ID is the Horde request id watched.
func (w *Watch) ID() string { return w.id }

// Stop ends the watch with ErrWatchStopped unless it has ended already: no
// more polls are made for it (a callback already running may complete).
func (w *Watch) Stop() {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.finishLocked(w, nil, ErrWatchStopped)
}

// Poke asks for a poll as soon as MinInterval, any Retry-After and the
// budget allow, e.g. when the caller needs fresh progress now. A poll in
// flight counts as that poll.
func (w *Watch) Poke() {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.state != watchQueued {
		return
	}
	due := max(s.clock.Now().UnixNano(), w.earliest)
	w.safety = false
	if due < w.due {
		w.due = due
		heap.Fix(&s.queue, int(w.index))
		s.signalLocked()
	}
}

// Deliver records a generation a webhook brought, counting each Horde job
// id once. When the watch's N distinct generations are in, it finishes the
// watch at once with a status built from them: Done, Finished N, the
// generations in arrival order and the sum of their kudos. It returns
// false for a request no open watch has, or a job already counted.
func (s *Scheduler) Deliver(p *hordeapi.WebhookPayload) bool {
	if p == nil || p.Request == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.byID[p.Request]
	if w == nil || w.state == watchDone {
		return false
	}
	if w.hooks == nil {
		w.hooks = &schedHooks{}
	}
	h := w.hooks
	if p.ID != "" {
		for _, j := range h.jobs {
			if j == p.ID {
				return false
			}
		}
	}
	s.lastHook = s.clock.Now().UnixNano()
	h.jobs = append(h.jobs, p.ID)
	h.gens = append(h.gens, webhookGeneration(p))
	h.kudos += p.Kudos
	if len(h.gens) >= int(w.n) {
		st := &hordeapi.TextStatus{
			Done: true, Finished: len(h.gens), Generations: h.gens, Kudos: h.kudos, IsPossible: true,
		}
		s.finishLocked(w, st, nil)
	}
	return true
}

func webhookGeneration(p *hordeapi.WebhookPayload) hordeapi.Generation {
	state := "ok"
	for _, m := range p.GenMetadata {
		if m.Type == "censorship" {
			state = "censored"
			if m.Value == "csam" {
				state = "csam"
			}
		}
	}
	return hordeapi.Generation{
		Text: p.Text, Seed: p.Seed, WorkerID: p.WorkerID, WorkerName: p.WorkerName,
		Model: p.Model, State: state, GenMetadata: p.GenMetadata,
	}
}

// Run polls until ctx ends, then ends the watches still open with
// ErrSchedulerStopped and returns nil. It may run once.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("status scheduler: Run called twice")
	}
	s.started = true
	s.mu.Unlock()

	var wg sync.WaitGroup
	for range s.cfg.Concurrency {
		wg.Go(func() {
			for w := range s.work {
				s.poll(ctx, w)
			}
		})
	}
	s.loop(ctx)

	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	close(s.work) // only the loop sends, and it has returned
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.byID {
		s.finishLocked(w, nil, ErrSchedulerStopped)
	}
	s.nextWake = 0
	s.cond.Broadcast()
	return nil
}

// loop hands due polls to the pool and sleeps until the next is due, the
// budget has a token, or something changed.
func (s *Scheduler) loop(ctx context.Context) {
	for {
		s.mu.Lock()
		s.parked, s.wakeSet = false, false
		now := s.clock.Now().UnixNano()
		wait := s.dispatchLocked(now)
		s.nextWake = 0
		if wait >= 0 {
			s.nextWake = now + wait
		}
		s.mu.Unlock()

		// The timer is set before the loop counts as parked, so a test
		// that moves a fake clock only while the loop is parked never
		// races its registration.
		var timer clockwork.Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = s.clock.NewTimer(time.Duration(wait))
			fire = timer.Chan()
		} else if wait == 0 {
			continue
		}
		s.mu.Lock()
		s.parked = true
		s.cond.Broadcast()
		s.mu.Unlock()

		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// dispatchLocked starts every poll that is due and allowed, and returns
// how long until the loop has something to do: 0 to look again at once,
// -1 for nothing until woken.
func (s *Scheduler) dispatchLocked(now int64) int64 {
	for {
		s.promoteLocked(now)
		if len(s.ready) == 0 {
			if len(s.queue) > 0 {
				return s.queue[0].due - now
			}
			return -1
		}
		if s.inflight >= s.cfg.Concurrency {
			return -1 // a finishing poll wakes the loop
		}
		tat := max(s.tat, now)
		if at := tat - s.tau; at > now {
			return at - now
		}
		s.tat = tat + s.emit
		w := s.nextReadyLocked()
		w.state = watchPolling
		w.defers = 0
		s.inflight++
		s.work <- w // never blocks: inflight < Concurrency = cap(s.work)
	}
}

// promoteLocked moves the watches due by now from the queue to their
// principals' ready heaps, skipping safety-net polls while webhooks flow.
func (s *Scheduler) promoteLocked(now int64) {
	for len(s.queue) > 0 && s.queue[0].due <= now {
		w := s.queue[0]
		if w.safety && s.lastHook != 0 && now-s.lastHook < int64(s.cfg.SafetyInterval) && w.defers < schedMaxDefers {
			// Webhooks are arriving, so this one will most likely come
			// too: skip this safety-net poll.
			w.defers++
			w.due = now + int64(s.jitterUp(s.cfg.SafetyInterval))
			heap.Fix(&s.queue, 0)
			continue
		}
		heap.Pop(&s.queue)
		p := w.p
		w.state = watchReady
		heap.Push(&p.ready, w)
		if p.index < 0 {
			// A principal that was idle starts level with the others: it
			// cannot bank the turns it did not need.
			p.pass = max(p.pass, s.vtime)
			heap.Push(&s.ready, p)
		} else {
			heap.Fix(&s.ready, int(p.index))
		}
	}
}

// nextReadyLocked takes the next poll to make: the earliest-due ready
// watch of the principal served least (start-time fair queuing with equal
// weights, which is round-robin between principals with polls due).
func (s *Scheduler) nextReadyLocked() *Watch {
	p := s.ready[0]
	w := heap.Pop(&p.ready).(*Watch)
	s.vtime = p.pass
	p.pass++
	if len(p.ready) == 0 {
		heap.Pop(&s.ready)
	} else {
		heap.Fix(&s.ready, 0)
	}
	return w
}

// principalLocked returns who's share of the budget, counting one more
// open watch on it.
func (s *Scheduler) principalLocked(who hordeapi.Caller) *schedPrincipal {
	key := who.ProxiedFor
	if key == "" {
		// No forwarded identity: the key is the principal. Kept hashed,
		// so the table holds no secret.
		sum := sha256.Sum256([]byte(who.APIKey))
		key = "key:" + string(sum[:16])
	}
	p := s.byWho[key]
	if p == nil {
		p = &schedPrincipal{key: key, index: -1}
		s.byWho[key] = p
	}
	p.watches++
	return p
}

// poll makes one status call for w and plans what follows.
func (s *Scheduler) poll(ctx context.Context, w *Watch) {
	if ctx.Err() != nil {
		s.release(w)
		return
	}
	st, err := s.client.TextStatus(ctx, w.who, w.id)
	if ctx.Err() != nil {
		s.release(w) // shutting down: Run ends the watch
		return
	}
	answered := s.clock.Now().UnixNano()
	switch {
	case err == nil && st == nil:
		err = errors.New("status scheduler: client returned no status")
	case err == nil:
		if s.active(w) && w.onStatus != nil {
			w.onStatus(st)
		}
		s.mu.Lock()
		if w.state == watchPolling {
			if st.Done || st.Faulted {
				s.finishLocked(w, st, nil)
			} else {
				s.planLocked(w, st, answered)
				heap.Push(&s.queue, w)
			}
		}
		s.releaseLocked()
		s.mu.Unlock()
		return
	}
	if !schedTransient(err) {
		s.mu.Lock()
		if w.state == watchPolling {
			s.finishLocked(w, nil, err)
		}
		s.releaseLocked()
		s.mu.Unlock()
		return
	}
	if s.active(w) && w.onRetry != nil {
		w.onRetry(err)
	}
	s.mu.Lock()
	var wait time.Duration
	if w.state == watchPolling {
		wait = s.backoffLocked(w, err, answered)
		heap.Push(&s.queue, w)
	}
	s.releaseLocked()
	s.mu.Unlock()
	s.log.Debug("status poll failed", "horde_id", w.id, "err", err, "retry_in", wait)
}

// schedTransient reports whether a failed poll is worth repeating: the
// Horde is down or overloaded (5xx), rate limits (429), or unreachable.
func schedTransient(err error) bool {
	var api *hordeapi.APIError
	if errors.As(err, &api) {
		return api.Retryable()
	}
	return errors.Is(err, hordeapi.ErrUnavailable) || errors.Is(err, hordeapi.ErrRateLimited)
}

func (s *Scheduler) active(w *Watch) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return w.state == watchPolling
}

func (s *Scheduler) release(w *Watch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

// releaseLocked frees a pool slot and wakes the loop to use it.
func (s *Scheduler) releaseLocked() {
	s.inflight--
	s.signalLocked()
	s.cond.Broadcast()
}

func (s *Scheduler) signalLocked() {
	if s.wakeSet {
		return
	}
	s.wakeSet = true
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// finishLocked ends w once: it records the outcome, drops w from the heap
// and the index, and closes Done.
func (s *Scheduler) finishLocked(w *Watch, st *hordeapi.TextStatus, err error) {
	if w.state == watchDone {
		return
	}
	if w.index >= 0 {
		if w.state == watchReady {
			p := w.p
			heap.Remove(&p.ready, int(w.index))
			if len(p.ready) == 0 {
				heap.Remove(&s.ready, int(p.index))
			} else {
				heap.Fix(&s.ready, int(p.index))
			}
		} else {
			heap.Remove(&s.queue, int(w.index))
		}
	}
	if p := w.p; p != nil {
		if p.watches--; p.watches == 0 {
			delete(s.byWho, p.key)
		}
	}
	if s.byID[w.id] == w {
		delete(s.byID, w.id)
	}
	w.state, w.result, w.err = watchDone, st, err
	close(w.done)
}

// planLocked sets w's next poll from a fresh status answered at now.
func (s *Scheduler) planLocked(w *Watch, st *hordeapi.TextStatus, now int64) {
	w.fails = 0
	w.safety = false
	w.earliest = now + int64(s.cfg.MinInterval)
	var gap time.Duration
	switch {
	case s.cfg.Fixed:
		gap = s.cfg.MinInterval
	case w.webhook && (st.IsPossible || st.Processing > 0):
		// The webhook will bring the result; this is only the safety net.
		// (A request no worker can serve gets no webhook: it is polled as
		// usual, so the caller notices it in time.)
		gap = s.jitterUp(s.cfg.SafetyInterval)
		w.safety = true
	default:
		gap = s.jitter(s.adaptiveGapLocked(w, st, now))
	}
	w.due = max(now+int64(gap), w.earliest)
	w.state = watchQueued
}

// adaptiveGapLocked is the pause before the next poll of a request, from
// its status.
func (s *Scheduler) adaptiveGapLocked(w *Watch, st *hordeapi.TextStatus, now int64) time.Duration {
	minI, maxI := s.cfg.MinInterval, s.cfg.MaxInterval
	if st.Processing > 0 || st.Waiting == 0 {
		// A worker has it. wait_time assumes max_length tokens, but most
		// answers stop before, so it may end any moment.
		w.qSince = 0
		return minI
	}
	if !st.IsPossible {
		w.qSince = 0
		return maxI
	}
	eta, own := s.queueETALocked(w, st, now)
	if eta <= schedNearStart*minI.Seconds() {
		return minI
	}
	gap := time.Duration(eta * schedPollFraction * float64(time.Second))
	if !own {
		// Until this request's own speed is known, look again soon: the
		// Horde's estimate alone can be far off (it counts only as many
		// threads as requests are queued ahead, so the head of a long
		// queue looks minutes away).
		gap = min(gap, time.Duration(2*schedMinSpan*float64(time.Second)))
	}
	return min(max(gap, minI), maxI)
}

// queueETALocked estimates the seconds until a worker picks the queued
// request up, and reports whether the request's own progress went into it.
// wait_time divides the queued tokens (each job at max_length) by a
// nominal throughput, which misjudges real queues; so the estimate divides
// wait_time, and queue_position, by the speed at which they have been
// falling for this request since it was first seen queued, or, before that
// is known, for the other requests (the Horde has one queue).
func (s *Scheduler) queueETALocked(w *Watch, st *hordeapi.TextStatus, now int64) (eta float64, own bool) {
	wait, pos := float64(st.WaitTime), float64(st.QueuePosition)
	var waitRate, posRate float64
	if w.qSince == 0 {
		w.qSince, w.qWait, w.qPos = now, int32(min(st.WaitTime, math.MaxInt32)), int32(min(st.QueuePosition, math.MaxInt32))
	} else if span := float64(now-w.qSince) / float64(time.Second); span >= schedMinSpan {
		own = true
		waitRate = (float64(w.qWait) - wait) / span
		posRate = (float64(w.qPos) - pos) / span
		if waitRate > 0 {
			s.waitRate += schedRateAlpha * (min(waitRate, 8) - s.waitRate)
		}
		if posRate > 0 {
			if s.posRate == 0 {
				s.posRate = posRate
			} else {
				s.posRate += schedRateAlpha * (posRate - s.posRate)
			}
		}
	}
	// Missing the pick-up costs notice delay (a short job may be over
	// before the next poll), polling early only a call; so the faster of
	// this request's and the others' speeds counts, and never slower than
	// the Horde's own estimate.
	eta = wait / min(max(waitRate, s.waitRate, 1), 8)
	if posRate = max(posRate, s.posRate); posRate > 0 && pos > 0 {
		eta = min(eta, pos/posRate)
	}
	return eta, own
}

// backoffLocked schedules a retry after a transient failure at now and
// returns the pause: exponential from MinInterval up to MaxInterval, half
// of it random, and never shorter than a Retry-After.
func (s *Scheduler) backoffLocked(w *Watch, err error, now int64) time.Duration {
	w.fails = min(w.fails+1, 16)
	d := min(s.cfg.MinInterval<<(w.fails-1), s.cfg.MaxInterval)
	d = max(d/2+rand.N(d/2+1), s.cfg.MinInterval)
	w.earliest = now + int64(s.cfg.MinInterval)
	var api *hordeapi.APIError
	if errors.As(err, &api) && api.RetryAfter > 0 {
		w.earliest = max(w.earliest, now+int64(api.RetryAfter))
		d = max(d, api.RetryAfter)
	}
	w.due = max(now+int64(d), w.earliest)
	w.state = watchQueued
	return d
}

// jitter spreads gaps of two MinIntervals or more by ±10 %, never below
// MinInterval, so requests submitted together drift apart.
func (s *Scheduler) jitter(d time.Duration) time.Duration {
	if d < 2*s.cfg.MinInterval {
		return d
	}
	f := 1 + schedJitter*(2*rand.Float64()-1)
	return max(time.Duration(float64(d)*f), s.cfg.MinInterval)
}

// jitterUp spreads d by up to +10 %, never below d.
func (s *Scheduler) jitterUp(d time.Duration) time.Duration {
	return d + time.Duration(schedJitter*rand.Float64()*float64(d))
}

// waitSettled is a hook for tests and benchmarks on a fake clock: it blocks
// until the scheduler can do nothing more before the clock moves (the loop
// is parked, no wake-up is pending, no call or callback is running, and
// the loop's timer is still in the future), then returns when the loop
// wakes next (zero for only when woken).
func (s *Scheduler) waitSettled(ctx context.Context) (time.Time, error) {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cond.Broadcast()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.settledLocked() {
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		s.cond.Wait()
	}
	if s.nextWake == 0 {
		return time.Time{}, nil
	}
	return time.Unix(0, s.nextWake), nil
}

func (s *Scheduler) settledLocked() bool {
	if s.stopped {
		return s.inflight == 0
	}
	if !s.parked || s.wakeSet || s.inflight > 0 {
		return false
	}
	return s.nextWake == 0 || s.clock.Now().UnixNano() < s.nextWake
}

// schedQueue is a min-heap of watches by due time, then by age.
type schedQueue []*Watch

func (q schedQueue) Len() int { return len(q) }

func (q schedQueue) Less(i, j int) bool {
	if q[i].due != q[j].due {
		return q[i].due < q[j].due
	}
	return q[i].seq < q[j].seq
}

func (q schedQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = int32(i)
	q[j].index = int32(j)
}

func (q *schedQueue) Push(x any) {
	w := x.(*Watch)
	w.index = int32(len(*q))
	*q = append(*q, w)
}

func (q *schedQueue) Pop() any {
	old := *q
	n := len(old)
	w := old[n-1]
	old[n-1] = nil
	w.index = -1
	*q = old[:n-1]
	return w
}

// schedPrincipal is one principal's share of the budget: its due watches
// and its place in the round-robin.
type schedPrincipal struct {
	key     string
	ready   schedQueue // due watches, earliest first
	pass    uint64     // polls handed out, offset to the scheduler's virtual time
	index   int32      // in s.ready; -1 when it has no due watch
	watches int32      // open watches, so an idle principal can be dropped
}

// schedPrincipals is a min-heap of principals with due watches: the least
// served first, then the one whose earliest due watch is oldest.
type schedPrincipals []*schedPrincipal

func (q schedPrincipals) Len() int { return len(q) }

func (q schedPrincipals) Less(i, j int) bool {
	if q[i].pass != q[j].pass {
		return q[i].pass < q[j].pass
	}
	return q[i].ready.headBefore(q[j].ready)
}

func (q schedPrincipals) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = int32(i)
	q[j].index = int32(j)
}

func (q *schedPrincipals) Push(x any) {
	p := x.(*schedPrincipal)
	p.index = int32(len(*q))
	*q = append(*q, p)
}

func (q *schedPrincipals) Pop() any {
	old := *q
	n := len(old)
	p := old[n-1]
	old[n-1] = nil
	p.index = -1
	*q = old[:n-1]
	return p
}

// headBefore orders two non-empty ready heaps by their earliest watch.
func (q schedQueue) headBefore(o schedQueue) bool {
	a, b := q[0], o[0]
	if a.due != b.due {
		return a.due < b.due
	}
	return a.seq < b.seq
}
