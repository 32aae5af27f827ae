package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// The harness of the fault tests: a Service on a fake clock whose timers
// it can see, a client whose retries wait on that clock, a record of every
// answer the client got, and a journal that notes when each job ended.
// Time moves from event to event (the next timer of the Service or the
// client, the fake Horde's next event, the scenario's next action), and
// only once every job, the scheduler and every sleeping retry have settled.

// injectedMark starts the message of every answer a test injects, so an
// injected 429 or 5xx can be told from one the fake's own rules produced.
const injectedMark = "injected: "

// jobTag finds the test job a prompt (or a JSON body holding it) belongs to.
var jobTag = regexp.MustCompile(`\[job-(\d{4})\]`)

func tagOf(b []byte) string {
	if m := jobTag.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// trackClock is the Service's fake clock; it keeps the expiry of every live
// timer made through it, so the test can move time straight to the next.
type trackClock struct {
	*clockwork.FakeClock
	mu     sync.Mutex
	timers map[*trackTimer]struct{}
}

type trackTimer struct {
	clockwork.Timer
	c  *trackClock
	at time.Time
}

func newTrackClock(fc *clockwork.FakeClock) *trackClock {
	return &trackClock{FakeClock: fc, timers: map[*trackTimer]struct{}{}}
}

func (c *trackClock) NewTimer(d time.Duration) clockwork.Timer {
	t := &trackTimer{Timer: c.FakeClock.NewTimer(d), c: c, at: c.Now().Add(d)}
	c.mu.Lock()
	c.timers[t] = struct{}{}
	c.mu.Unlock()
	return t
}

func (t *trackTimer) Stop() bool {
	t.c.mu.Lock()
	delete(t.c.timers, t)
	t.c.mu.Unlock()
	return t.Timer.Stop()
}

func (t *trackTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	t.at = t.c.Now().Add(d)
	t.c.timers[t] = struct{}{}
	t.c.mu.Unlock()
	return t.Timer.Reset(d)
}

// next is the earliest timer expiry after now; expired timers are dropped.
func (c *trackClock) next(now time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best time.Time
	for t := range c.timers {
		if !t.at.After(now) {
			delete(c.timers, t)
			continue
		}
		if best.IsZero() || t.at.Before(best) {
			best = t.at
		}
	}
	return best, !best.IsZero()
}

// wireCall is one HTTP attempt of the client and the answer it got.
type wireCall struct {
	At         time.Time
	Method     string
	Path       string
	Identity   string // the Proxied-For sent
	Tag        string // the test job, for submits
	Status     int    // 0 when no answer came
	RC         string
	Message    string
	Injected   bool
	RetryAfter time.Duration
	HordeID    string // a submit's accepted request id
	Err        error
}

// limiter429 says the answer is a rate-limiter 429 (no rc).
func (c wireCall) limiter429() bool { return c.Status == http.StatusTooManyRequests && c.RC == "" }

// wireLog is the client's transport: it records every attempt and answer
// on the fake clock, below the client's retries and above Go's transport.
type wireLog struct {
	clock clockwork.Clock
	base  http.RoundTripper
	mu    sync.Mutex
	calls []wireCall
}

func (w *wireLog) RoundTrip(req *http.Request) (*http.Response, error) {
	c := wireCall{At: w.clock.Now(), Method: req.Method, Path: req.URL.Path, Identity: req.Header.Get("Proxied-For")}
	if req.GetBody != nil {
		if body, err := req.GetBody(); err == nil {
			raw, _ := io.ReadAll(body)
			c.Tag = tagOf(raw)
		}
	}
	resp, err := w.base.RoundTrip(req)
	if err != nil {
		c.Err = err
		w.add(c)
		return nil, err
	}
	raw, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rest io.Reader = bytes.NewReader(raw)
	if rerr != nil {
		rest = io.MultiReader(rest, errReader{rerr})
	}
	resp.Body = io.NopCloser(rest)
	c.Status = resp.StatusCode
	var body struct {
		ID      string `json:"id"`
		Message string `json:"message"`
		RC      string `json:"rc"`
	}
	_ = json.Unmarshal(raw, &body)
	c.RC, c.Message = body.RC, body.Message
	c.Injected = strings.HasPrefix(body.Message, injectedMark)
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if d, perr := time.ParseDuration(ra + "s"); perr == nil {
			c.RetryAfter = d
		}
	}
	if req.Method == http.MethodPost && resp.StatusCode == http.StatusAccepted {
		c.HordeID = body.ID
	}
	w.add(c)
	return resp, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func (w *wireLog) add(c wireCall) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, c)
}

func (w *wireLog) all() []wireCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]wireCall(nil), w.calls...)
}

// dialFailed says the attempt never reached the Horde.
func dialFailedErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// journalRecord is what the journal saw of one job.
type journalRecord struct {
	ID       string
	Tag      string
	Created  time.Time
	Finished time.Time // zero while unfinished
	State    JobState
	ErrMsg   string
}

// faultJournal is the in-memory journal, noting on the fake clock when each
// job was created and finished, and telling the test when a job is in it.
type faultJournal struct {
	*memStore
	clock    clockwork.Clock
	mu       sync.Mutex
	byID     map[string]*journalRecord
	byTag    map[string]string // job id by test tag
	onCreate map[string]func() // by tag; run once when the job is journaled
}

func newFaultJournal(clock clockwork.Clock) *faultJournal {
	return &faultJournal{memStore: newMemStore(), clock: clock, byID: map[string]*journalRecord{}, byTag: map[string]string{}, onCreate: map[string]func(){}}
}

func (f *faultJournal) CreateJob(ctx context.Context, e JournalEntry) error {
	if err := f.memStore.CreateJob(ctx, e); err != nil {
		return err
	}
	tag := tagOf(e.Payload)
	f.mu.Lock()
	f.byID[e.ID] = &journalRecord{ID: e.ID, Tag: tag, Created: e.CreatedAt}
	f.byTag[tag] = e.ID
	hook := f.onCreate[tag]
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

func (f *faultJournal) FinishJob(ctx context.Context, id string, state JobState, result []byte, errMsg string) error {
	if err := f.memStore.FinishJob(ctx, id, state, result, errMsg); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.byID[id]; r != nil {
		r.Finished, r.State, r.ErrMsg = f.clock.Now(), state, errMsg
	}
	return nil
}

// record returns the journal record of a test job.
func (f *faultJournal) record(tag string) (journalRecord, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.byTag[tag]
	if !ok {
		return journalRecord{}, false
	}
	return *f.byID[id], true
}

func (f *faultJournal) setOnCreate(tag string, hook func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onCreate[tag] = hook
}

func (f *faultJournal) records() []journalRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]journalRecord, 0, len(f.byID))
	for _, r := range f.byID {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// sleepers are the client retries waiting on the fake clock. A sleeper
// whose time has come counts as busy until it has resumed.
type sleepers struct {
	mu   sync.Mutex
	cond *sync.Cond
	seq  int
	at   map[int]time.Time
}

func newSleepers() *sleepers {
	s := &sleepers{at: map[int]time.Time{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *sleepers) add(at time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.at[s.seq] = at
	return s.seq
}

func (s *sleepers) remove(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.at, id)
	s.cond.Broadcast()
}

func (s *sleepers) dueLocked(now time.Time) bool {
	for _, at := range s.at {
		if !at.After(now) {
			return true
		}
	}
	return false
}

// waitNoneDue blocks until no sleeper is due at now; it reports whether it
// had to wait.
func (s *sleepers) waitNoneDue(ctx context.Context, now time.Time) (bool, error) {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cond.Broadcast()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	waited := false
	for s.dueLocked(now) {
		if err := ctx.Err(); err != nil {
			return waited, err
		}
		waited = true
		s.cond.Wait()
	}
	return waited, nil
}

// faultRig is a Service against the fake Horde, all on one fake clock.
type faultRig struct {
	t       *testing.T
	clock   *trackClock
	fake    *hordetest.Server
	svc     *Service
	journal *faultJournal
	wire    *wireLog
	sleep   *sleepers
	cfg     Config
}

func newFaultRig(t *testing.T, cfg Config, horde ...hordetest.Option) *faultRig {
	t.Helper()
	fc := clockwork.NewFakeClockAt(hordetest.DefaultStart)
	r := &faultRig{t: t, clock: newTrackClock(fc), sleep: newSleepers(), cfg: cfg}
	r.fake = hordetest.New(t, append([]hordetest.Option{hordetest.WithClock(fc), hordetest.WithPasskey(testPasskey)}, horde...)...)
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 16
	t.Cleanup(base.CloseIdleConnections)
	r.wire = &wireLog{clock: r.clock, base: base}
	hcfg := hordeapi.DefaultConfig()
	hcfg.BaseURL = r.fake.URL
	hcfg.ProxyPasskey = testPasskey
	client, err := hordeapi.New(hcfg, hordeapi.WithVersion("test"),
		hordeapi.WithHTTPClient(&http.Client{Transport: r.wire, Timeout: hcfg.Timeout}),
		hordeapi.WithSleep(r.retrySleep))
	if err != nil {
		t.Fatal(err)
	}
	r.journal = newFaultJournal(r.clock)
	r.svc, err = New(cfg, Deps{Client: client, Store: r.journal, IdentitySecret: testSecret, Clock: r.clock})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start registers the deliverers, loads the models and starts the Service.
func (r *faultRig) start(deliverers map[string]Deliverer) {
	r.t.Helper()
	for p, d := range deliverers {
		r.svc.RegisterDeliverer(p, d)
	}
	if err := r.svc.RefreshModels(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	if err := r.svc.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(r.svc.Close)
}

// retrySleep is the client's wait before a retry, on the fake clock. The
// caller is a job counted busy (a submit or a cancel); while it sleeps it is
// parked, and once its time has come it counts as busy until it resumed.
func (r *faultRig) retrySleep(ctx context.Context, d time.Duration) error {
	timer := r.clock.NewTimer(d)
	defer timer.Stop()
	id := r.sleep.add(r.clock.Now().Add(d))
	r.svc.busyAdd(-1)
	var err error
	select {
	case <-timer.Chan():
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.svc.busyAdd(1)
	r.sleep.remove(id)
	return err
}

// quiet reports, without waiting, whether nothing can happen before the
// clock moves.
func (r *faultRig) quiet() bool {
	s := r.svc
	s.mu.Lock()
	idle := s.busy == 0 && !s.wakePendingLocked()
	s.mu.Unlock()
	if !idle {
		return false
	}
	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	return s.sched.settledLocked()
}

// settle waits until the jobs, the scheduler and the retries are parked.
// The timeout only guards against a hang.
func (r *faultRig) settle() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		if err := r.svc.waitIdle(ctx); err != nil {
			r.t.Fatalf("jobs did not settle: %v", err)
		}
		if _, err := r.svc.sched.waitSettled(ctx); err != nil {
			r.t.Fatalf("scheduler did not settle: %v", err)
		}
		waited, err := r.sleep.waitNoneDue(ctx, r.clock.Now())
		if err != nil {
			r.t.Fatalf("retries did not resume: %v", err)
		}
		if !waited && r.quiet() {
			return
		}
	}
}

// faultAction is something the scenario does at a simulated time.
type faultAction struct {
	at time.Time
	do func()
}

// drive runs the actions in time order and moves the clock from event to
// event until done holds after all actions ran, by at most limit.
func (r *faultRig) drive(limit time.Duration, acts []faultAction, done func() bool) {
	r.t.Helper()
	sort.SliceStable(acts, func(i, j int) bool { return acts[i].at.Before(acts[j].at) })
	end := r.clock.Now().Add(limit)
	next := 0
	for {
		r.settle()
		now := r.clock.Now()
		for next < len(acts) && !acts[next].at.After(now) {
			acts[next].do()
			next++
		}
		r.settle()
		if next == len(acts) && done() {
			return
		}
		if !now.Before(end) {
			r.t.Fatalf("the jobs did not all end within %s of simulated time", limit)
		}
		step := end
		if t, ok := r.clock.next(now); ok && t.Before(step) {
			step = t
		}
		if ev := r.fake.NextEvent(); ev.Before(step) {
			step = ev
		}
		if next < len(acts) && acts[next].at.Before(step) {
			step = acts[next].at
		}
		r.fake.Advance(step.Sub(now))
	}
}
