package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// schedWorker is a simulated worker for scheduler tests.
func schedWorker(name string, threads int, tokensPerSecond float64) hordetest.Worker {
	return hordetest.Worker{Name: name, Threads: threads, TokensPerSecond: tokensPerSecond, MaxLength: 2048, MaxContextLength: 4096}
}

// schedRecorder collects what a watch's callbacks saw.
type schedRecorder struct {
	mu       sync.Mutex
	statuses []*hordeapi.TextStatus
	retries  []error
}

func (c *schedRecorder) options(n int, webhook bool) WatchOptions {
	return WatchOptions{
		N: n, Webhook: webhook,
		OnStatus: func(st *hordeapi.TextStatus) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.statuses = append(c.statuses, st)
		},
		OnRetry: func(err error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.retries = append(c.retries, err)
		},
	}
}

func (c *schedRecorder) counts() (statuses, retries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.statuses), len(c.retries)
}

func TestSchedulerConfigDefaults(t *testing.T) {
	def := DefaultSchedulerConfig()
	tests := []struct {
		name string
		in   SchedulerConfig
		want SchedulerConfig
	}{
		{"zero takes defaults", SchedulerConfig{}, def},
		{"min interval never below 1s", SchedulerConfig{MinInterval: 200 * time.Millisecond}, def},
		{"max and safety at least min", SchedulerConfig{MinInterval: 5 * time.Second, MaxInterval: 2 * time.Second, SafetyInterval: time.Second},
			SchedulerConfig{CallsPerSecond: 10, MinInterval: 5 * time.Second, MaxInterval: 5 * time.Second, SafetyInterval: 5 * time.Second, Concurrency: 8}},
		{"kept", SchedulerConfig{CallsPerSecond: 2.5, MinInterval: 2 * time.Second, MaxInterval: time.Minute, SafetyInterval: 5 * time.Minute, Concurrency: 3, Fixed: true},
			SchedulerConfig{CallsPerSecond: 2.5, MinInterval: 2 * time.Second, MaxInterval: time.Minute, SafetyInterval: 5 * time.Minute, Concurrency: 3, Fixed: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewScheduler(nil, clockwork.NewFakeClock(), tt.in, nil).Config()
			if got != tt.want {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSchedulerWatchFinishes(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{})
	id := r.submit("hello there", 80, 1, "")
	var rec schedRecorder
	w := r.sched.Watch(id, schedCaller, rec.options(1, false))
	r.untilDone(w, 2*time.Minute)

	st, err := w.Result()
	if err != nil {
		t.Fatalf("Result: %v", err)
	}
	if !st.Done || st.Faulted || st.Finished != 1 || len(st.Generations) != 1 {
		t.Fatalf("final status = %+v", st)
	}
	if !strings.HasPrefix(st.Generations[0].Text, "Echo: hello there") {
		t.Errorf("text = %q", st.Generations[0].Text)
	}
	rec.mu.Lock()
	last := rec.statuses[len(rec.statuses)-1]
	rec.mu.Unlock()
	if last != st {
		t.Error("OnStatus did not get the final status before Done")
	}
	tl, _ := r.horde.Timeline(id)
	if delay := r.clock.Now().Sub(tl.DoneAt); delay < 0 || delay > time.Second {
		t.Errorf("noticed %s after the request finished, want within 1s", delay)
	}
	calls := r.statusCalls(id)
	r.advance(2 * time.Minute)
	if got := r.statusCalls(id); got != calls {
		t.Errorf("%d more status calls after the watch ended", got-calls)
	}
	w.Stop() // after Done: no effect
	if st2, err := w.Result(); st2 != st || err != nil {
		t.Errorf("Stop after Done changed the result to %v, %v", st2, err)
	}
}

func TestSchedulerForwardsCaller(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{})
	id := r.submit("who am i", 80, 1, "")
	w := r.sched.Watch(id, schedCaller, WatchOptions{})
	r.untilDone(w, 2*time.Minute)
	recs := r.horde.RequestsTo(http.MethodGet, "/v2/generate/text/status/")
	if len(recs) == 0 {
		t.Fatal("no status calls")
	}
	for _, rec := range recs {
		if got := rec.Header.Get("apikey"); got != schedTestKey {
			t.Errorf("apikey = %q, want the submitter's key", got)
		}
		if !rec.Proxied || rec.Identity != schedCaller.ProxiedFor {
			t.Errorf("identity = %q (proxied %v), want %q", rec.Identity, rec.Proxied, schedCaller.ProxiedFor)
		}
	}
}

func TestSchedulerPerJobMinInterval(t *testing.T) {
	// Rate limits stay on: a poll faster than 60/min per id would come back
	// as a 429 and show up as a retry.
	r := newSchedRig(t, SchedulerConfig{}, hordetest.WithWorkers(schedWorker("w", 2, 5)))
	var recs []*schedRecorder
	var watches []*Watch
	for i := range 6 {
		id := r.submit(fmt.Sprintf("job %d", i), 100, 1, "")
		rec := &schedRecorder{}
		recs = append(recs, rec)
		watches = append(watches, r.sched.Watch(id, schedCaller, rec.options(1, false)))
		r.advance(600 * time.Millisecond) // the Horde takes 2 submits a second per address
	}
	// Callers poking all the time must not speed polls up either.
	r.onStep = func() {
		for _, w := range watches {
			w.Poke()
		}
	}
	r.advanceUntil(5*time.Minute, func() bool {
		for _, w := range watches {
			if !schedIsDone(w) {
				return false
			}
		}
		return true
	})
	for id, ts := range r.statusTimes() {
		if len(ts) < 2 {
			t.Errorf("%s: only %d polls", id, len(ts))
			continue
		}
		if g := schedMinGap(ts); g < time.Second {
			t.Errorf("%s: two polls %s apart, want at least 1s", id, g)
		}
	}
	for i, w := range watches {
		if _, err := w.Result(); err != nil {
			t.Errorf("job %d: %v", i, err)
		}
		if _, retries := recs[i].counts(); retries != 0 {
			t.Errorf("job %d: %d retries (rate limited?)", i, retries)
		}
	}
}

func TestSchedulerGlobalBudget(t *testing.T) {
	for _, rate := range []float64{5, 30} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			// 40 long jobs processing at once want 40 polls a second.
			r := newSchedRig(t, SchedulerConfig{CallsPerSecond: rate},
				hordetest.WithoutRateLimits(), hordetest.WithWorkers(schedWorker("slow", 40, 1)))
			for i := range 40 {
				id := r.submit(fmt.Sprintf("job %d", i), 140, 1, "")
				r.sched.Watch(id, schedCaller, WatchOptions{})
			}
			const span = 90 * time.Second
			r.advance(span)
			var all []time.Time
			for id, ts := range r.statusTimes() {
				if g := schedMinGap(ts); g < time.Second {
					t.Errorf("%s: two polls %s apart", id, g)
				}
				all = append(all, ts...)
			}
			burst := max(1, int(rate/10))
			limit := int(rate) + burst - 1
			if got := schedMaxInWindow(all, time.Second); got > limit {
				t.Errorf("%d status calls within one second, budget allows %d", got, limit)
			}
			// The budget is the bottleneck here, so it should be used up.
			if want := int(rate * span.Seconds() * 0.95); len(all) < want {
				t.Errorf("%d calls in %s, want at least %d", len(all), span, want)
			}
		})
	}
}

func TestSchedulerFairness(t *testing.T) {
	// 2 calls a second for 25 jobs that each want 1 a second: every job
	// should get its turn about every 12.5 s, the late ones too.
	r := newSchedRig(t, SchedulerConfig{CallsPerSecond: 2},
		hordetest.WithoutRateLimits(), hordetest.WithWorkers(schedWorker("slow", 40, 1)))
	started := map[string]time.Time{}
	watchOne := func(i int) {
		id := r.submit(fmt.Sprintf("job %d", i), 140, 1, "")
		started[id] = r.clock.Now()
		r.sched.Watch(id, schedCaller, WatchOptions{})
	}
	for i := range 20 {
		watchOne(i)
	}
	r.advance(30 * time.Second)
	for i := 20; i < 25; i++ {
		watchOne(i)
	}
	r.advance(100 * time.Second)
	end := r.clock.Now()

	times := r.statusTimes()
	const fairGap = 15 * time.Second // 25 jobs / 2 per second, plus slack
	lo, hi := 1<<30, 0
	for id, start := range started {
		ts := append([]time.Time{start}, times[id]...)
		ts = append(ts, end)
		for i := 1; i < len(ts); i++ {
			if g := ts[i].Sub(ts[i-1]); g > fairGap {
				t.Errorf("%s waited %s for a poll (at %s), want at most %s", id, g, ts[i-1].Sub(hordetest.DefaultStart), fairGap)
			}
		}
		if !start.After(hordetest.DefaultStart) { // the first 20
			lo, hi = min(lo, len(times[id])), max(hi, len(times[id]))
		}
	}
	if hi-lo > 2 {
		t.Errorf("the first 20 jobs got between %d and %d polls each, want an even share", lo, hi)
	}
}

func TestSchedulerRetries5xx(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{})
	id := r.submit("flaky", 80, 1, "")
	r.horde.Inject(hordetest.Fault{Kind: hordetest.FaultStatus, Status: http.StatusServiceUnavailable,
		Method: http.MethodGet, Path: "/v2/generate/text/status/", Count: 3})
	var rec schedRecorder
	w := r.sched.Watch(id, schedCaller, rec.options(1, false))
	r.untilDone(w, 2*time.Minute)

	if st, err := w.Result(); err != nil || !st.Done {
		t.Fatalf("Result = %+v, %v; want the finished status", st, err)
	}
	rec.mu.Lock()
	retries := rec.retries
	rec.mu.Unlock()
	if len(retries) != 3 {
		t.Fatalf("OnRetry called %d times, want 3", len(retries))
	}
	for _, err := range retries {
		if !errors.Is(err, hordeapi.ErrUnavailable) {
			t.Errorf("retry error %v is not ErrUnavailable", err)
		}
	}
	ts := r.statusTimes()[id]
	if len(ts) < 4 {
		t.Fatalf("%d status calls, want at least 4", len(ts))
	}
	// Backoff doubles from 1s, half of it random: 1s, [1s,2s], [2s,4s].
	for i, want := range []time.Duration{time.Second, time.Second, 2 * time.Second} {
		if g := ts[i+1].Sub(ts[i]); g < want || g > 2*want {
			t.Errorf("gap after failure %d = %s, want between %s and %s", i+1, g, want, 2*want)
		}
	}
}

func TestSchedulerRetryAfter(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{})
	id := r.submit("limited", 80, 1, "")
	r.horde.Inject(hordetest.Fault{Kind: hordetest.FaultRateLimit, RetryAfter: 7 * time.Second,
		Method: http.MethodGet, Path: "/v2/generate/text/status/", Count: 1})
	var rec schedRecorder
	w := r.sched.Watch(id, schedCaller, rec.options(1, false))
	r.settle()
	w.Poke() // must not cut the Retry-After short
	r.untilDone(w, 2*time.Minute)

	if _, err := w.Result(); err != nil {
		t.Fatalf("Result: %v", err)
	}
	rec.mu.Lock()
	retries := rec.retries
	rec.mu.Unlock()
	var api *hordeapi.APIError
	if len(retries) != 1 || !errors.Is(retries[0], hordeapi.ErrRateLimited) || !errors.As(retries[0], &api) || api.RetryAfter != 7*time.Second {
		t.Fatalf("retries = %v, want one rate-limit error with Retry-After 7s", retries)
	}
	ts := r.statusTimes()[id]
	if g := ts[1].Sub(ts[0]); g < 7*time.Second {
		t.Errorf("polled again %s after a 429 with Retry-After 7s", g)
	}
}

func TestSchedulerVanishedRequest(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{}, hordetest.WithWorkers())
	id := r.submit("lost", 80, 1, "")
	var rec schedRecorder
	w := r.sched.Watch(id, schedCaller, rec.options(1, false))
	r.advance(10 * time.Second)
	r.horde.Vanish(id)
	r.untilDone(w, 2*time.Minute)

	st, err := w.Result()
	if !errors.Is(err, hordeapi.ErrNotFound) || st != nil {
		t.Fatalf("Result = %v, %v; want ErrNotFound", st, err)
	}
	if _, retries := rec.counts(); retries != 0 {
		t.Errorf("a 404 was retried %d times", retries)
	}
	calls := r.statusCalls(id)
	r.advance(time.Minute)
	if got := r.statusCalls(id); got != calls {
		t.Errorf("%d polls after the 404", got-calls)
	}
}

func TestSchedulerTerminalClientError(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{})
	id := r.submit("odd", 80, 1, "")
	r.horde.Inject(hordetest.Fault{Kind: hordetest.FaultStatus, Status: http.StatusBadRequest,
		Body: `{"message": "bad request", "rc": "BadRequest"}`, Method: http.MethodGet, Path: "/v2/generate/text/status/", Count: 1})
	w := r.sched.Watch(id, schedCaller, WatchOptions{})
	r.untilDone(w, time.Minute)
	var api *hordeapi.APIError
	if _, err := w.Result(); !errors.As(err, &api) || api.Status != http.StatusBadRequest {
		t.Fatalf("Result error = %v, want the 400", err)
	}
	if got := r.statusCalls(id); got != 1 {
		t.Errorf("%d status calls, want 1 (no retry of a 400)", got)
	}
}

func TestSchedulerFaultedRequest(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{})
	r.horde.FaultJobs(-1)
	id := r.submit("doomed", 80, 1, "")
	w := r.sched.Watch(id, schedCaller, WatchOptions{})
	r.untilDone(w, 10*time.Minute)
	st, err := w.Result()
	if err != nil || !st.Faulted || !st.Done {
		t.Fatalf("Result = %+v, %v; want a faulted status", st, err)
	}
}

func TestWatchStop(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{}, hordetest.WithWorkers(schedWorker("slow", 1, 1)))
	id := r.submit("long", 140, 1, "")
	w := r.sched.Watch(id, schedCaller, WatchOptions{})
	r.advance(10 * time.Second)
	w.Stop()
	calls := r.statusCalls(id)
	if calls < 5 {
		t.Fatalf("only %d polls of a processing job in 10s", calls)
	}
	r.advance(3 * time.Minute)
	if got := r.statusCalls(id); got != calls {
		t.Errorf("%d polls after Stop", got-calls)
	}
	if st, err := w.Result(); st != nil || !errors.Is(err, ErrWatchStopped) {
		t.Errorf("Result = %v, %v; want ErrWatchStopped", st, err)
	}
	w.Stop()
	w.Poke()

	// Stopping from inside OnStatus neither deadlocks nor polls again.
	id2 := r.submit("short-lived", 140, 1, "")
	var w2 *Watch
	ready := make(chan struct{})
	w2 = r.sched.Watch(id2, schedCaller, WatchOptions{OnStatus: func(*hordeapi.TextStatus) {
		<-ready
		w2.Stop()
	}})
	close(ready)
	r.advance(30 * time.Second)
	if got := r.statusCalls(id2); got != 1 {
		t.Errorf("%d polls, want 1", got)
	}
	if _, err := w2.Result(); !errors.Is(err, ErrWatchStopped) {
		t.Errorf("Result error = %v, want ErrWatchStopped", err)
	}
}

func TestWatchReplaced(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{})
	id := r.submit("twice", 80, 1, "")
	w1 := r.sched.Watch(id, schedCaller, WatchOptions{})
	w2 := r.sched.Watch(id, schedCaller, WatchOptions{})
	if _, err := w1.Result(); !errors.Is(err, ErrWatchStopped) {
		t.Errorf("replaced watch: %v, want ErrWatchStopped", err)
	}
	r.untilDone(w2, 2*time.Minute)
	if _, err := w2.Result(); err != nil {
		t.Errorf("new watch: %v", err)
	}
}

func TestWatchPoke(t *testing.T) {
	// No workers: the request waits, impossible, and is polled every
	// MaxInterval.
	r := newSchedRig(t, SchedulerConfig{}, hordetest.WithWorkers())
	id := r.submit("poke me", 80, 1, "")
	t0 := r.clock.Now()
	w := r.sched.Watch(id, schedCaller, WatchOptions{})
	r.advance(5 * time.Second)
	if got := r.statusCalls(id); got != 1 {
		t.Fatalf("%d polls in 5s of an impossible request, want 1", got)
	}
	w.Poke()
	r.settle()
	w.Poke() // within MinInterval of the last answer: waits for it
	r.advance(5 * time.Second)
	ts := r.statusTimes()[id]
	want := []time.Duration{0, 5 * time.Second, 6 * time.Second}
	if len(ts) != len(want) {
		t.Fatalf("polls at %v, want at %v", ts, want)
	}
	for i, d := range want {
		if got := ts[i].Sub(t0); got != d {
			t.Errorf("poll %d at +%s, want +%s", i, got, d)
		}
	}
}

func TestSchedulerAdaptiveCadence(t *testing.T) {
	// One thread: a 100 s job runs, ours (30 s) waits behind it.
	r := newSchedRig(t, SchedulerConfig{}, hordetest.WithWorkers(schedWorker("one", 1, 2)))
	r.submit("blocker", 200, 1, "")
	r.advance(time.Second)
	id := r.submit("mine", 60, 1, "")
	w := r.sched.Watch(id, schedCaller, WatchOptions{})
	r.untilDone(w, 5*time.Minute)
	if _, err := w.Result(); err != nil {
		t.Fatal(err)
	}
	tl, _ := r.horde.Timeline(id)
	start := tl.Jobs[0].Start
	var queued, processing []time.Time
	for _, ts := range r.statusTimes()[id] {
		if ts.Before(start) {
			queued = append(queued, ts)
		} else {
			processing = append(processing, ts)
		}
	}
	wait := start.Sub(tl.Created)
	if len(queued) > 10 || len(queued) < 2 {
		t.Errorf("%d polls during a %s wait in the queue, want 2-10", len(queued), wait)
	}
	for i := 1; i < len(queued); i++ {
		if g := queued[i].Sub(queued[i-1]); g > 33*time.Second {
			t.Errorf("queued gap %s above MaxInterval+jitter", g)
		}
	}
	if len(processing) == 0 || processing[0].Sub(start) > 30*time.Second {
		t.Fatalf("processing noticed late: polls %v, start %v", processing, start)
	}
	for i := 1; i < len(processing); i++ {
		if g := processing[i].Sub(processing[i-1]); g != time.Second {
			t.Errorf("processing gap %s, want 1s", g)
		}
	}
	if delay := r.clock.Now().Sub(tl.DoneAt); delay > time.Second {
		t.Errorf("noticed %s after finish", delay)
	}
}

func TestSchedulerRunEnds(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{}, hordetest.WithWorkers())
	id := r.submit("pending", 80, 1, "")
	w := r.sched.Watch(id, schedCaller, WatchOptions{})
	r.advance(5 * time.Second)
	r.shutdown()
	if st, err := w.Result(); st != nil || !errors.Is(err, ErrSchedulerStopped) {
		t.Errorf("Result = %v, %v; want ErrSchedulerStopped", st, err)
	}
	late := r.sched.Watch(id, schedCaller, WatchOptions{})
	if !schedIsDone(late) {
		t.Fatal("a watch after Run ended is not done")
	}
	if _, err := late.Result(); !errors.Is(err, ErrSchedulerStopped) {
		t.Errorf("late watch: %v", err)
	}
	if err := r.sched.Run(context.Background()); err == nil {
		t.Error("a second Run did not fail")
	}
}

func TestWatchDeliver(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{}, hordetest.WithWorkers())
	id := r.submit("two answers", 80, 2, "")
	var rec schedRecorder
	w := r.sched.Watch(id, schedCaller, rec.options(2, true))

	if !r.sched.Deliver(schedPayload(id, "job-1", "one", 1.5)) {
		t.Fatal("first generation refused")
	}
	if r.sched.Deliver(schedPayload(id, "job-1", "one", 1.5)) {
		t.Error("duplicate job accepted")
	}
	if r.sched.Deliver(schedPayload("no-such-request", "job-9", "x", 1)) || r.sched.Deliver(nil) {
		t.Error("unknown request accepted")
	}
	if schedIsDone(w) {
		t.Fatal("done after 1 of 2 generations")
	}
	second := schedPayload(id, "job-2", "two", 2.25)
	second.GenMetadata = []hordeapi.GenMetadata{{Type: "censorship", Value: "csam"}}
	if !r.sched.Deliver(second) {
		t.Fatal("second generation refused")
	}
	if !schedIsDone(w) { // at once, without the clock moving
		t.Fatal("not done after N generations")
	}
	st, err := w.Result()
	if err != nil || !st.Done || st.Finished != 2 || st.Kudos != 3.75 || len(st.Generations) != 2 {
		t.Fatalf("Result = %+v, %v", st, err)
	}
	if g := st.Generations; g[0].Text != "one" || g[0].State != "ok" || g[1].Text != "two" || g[1].State != "csam" || !g[1].Censored() {
		t.Errorf("generations = %+v", g)
	}
	if r.sched.Deliver(schedPayload(id, "job-3", "three", 1)) {
		t.Error("generation accepted after the watch ended")
	}
	r.advance(5 * time.Minute)
	if got := r.statusCalls(id); got != 0 {
		t.Errorf("%d status calls", got)
	}
	if n, _ := rec.counts(); n != 0 {
		t.Errorf("OnStatus called %d times", n)
	}
}

func TestWatchWebhookEndToEnd(t *testing.T) {
	var r *schedRig
	hooks := newSchedWebhookServer(t, func() *Scheduler { return r.sched }, nil)
	r = newSchedRig(t, SchedulerConfig{}, hordetest.WithWebhookClient(hooks.Client()))
	r.flush = true
	id := r.submit("by webhook", 80, 1, hooks.URL+"/hook")
	w := r.sched.Watch(id, schedCaller, WatchOptions{N: 1, Webhook: true})
	r.untilDone(w, time.Minute)
	st, err := w.Result()
	if err != nil || len(st.Generations) != 1 || !strings.HasPrefix(st.Generations[0].Text, "Echo: by webhook") {
		t.Fatalf("Result = %+v, %v", st, err)
	}
	tl, _ := r.horde.Timeline(id)
	if !r.clock.Now().Equal(tl.DoneAt) {
		t.Errorf("done %s after the job finished, want at once", r.clock.Now().Sub(tl.DoneAt))
	}
	if got := r.statusCalls(id); got != 0 {
		t.Errorf("%d status calls for a webhook job that finished within the safety interval", got)
	}
	if hs := r.horde.Webhooks(); len(hs) != 1 || hs[0].Status != http.StatusNoContent {
		t.Errorf("webhook deliveries = %+v", hs)
	}
}

// schedQueueBehind fills one slow thread with a request of n 140 s jobs, so
// requests submitted after it wait, possible, for n×140 s.
func schedQueueBehind(r *schedRig, n int) {
	r.submit("blocker", 140, n, "")
}

func TestWatchSafetyNetCadence(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{}, hordetest.WithWorkers(schedWorker("one", 1, 1)))
	schedQueueBehind(r, 5)
	id := r.submit("waits", 80, 1, "")
	start := r.clock.Now()
	r.sched.Watch(id, schedCaller, WatchOptions{N: 1, Webhook: true})
	r.advance(9 * time.Minute)
	ts := r.statusTimes()[id]
	if len(ts) != 4 {
		t.Fatalf("%d safety polls in 9 min, want 4: %v", len(ts), ts)
	}
	prev := start
	for i, at := range ts {
		if g := at.Sub(prev); g < 2*time.Minute || g > 2*time.Minute+12*time.Second {
			t.Errorf("safety poll %d came %s after the last, want 2m to 2m12s", i, g)
		}
		prev = at
	}
}

func TestWatchSafetyNetDefersWhileWebhooksFlow(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{}, hordetest.WithoutRateLimits(), hordetest.WithWorkers(schedWorker("one", 1, 1)))
	schedQueueBehind(r, 8)
	id := r.submit("waits", 80, 1, "")
	feed := r.submit("feeds webhooks", 80, 1, "")
	start := r.clock.Now()
	r.sched.Watch(id, schedCaller, WatchOptions{N: 1, Webhook: true})
	r.sched.Watch(feed, schedCaller, WatchOptions{N: 1000, Webhook: true})
	// Another request's webhooks arrive every 30 s: the endpoint works.
	fed, lastFeed := 0, start
	r.onStep = func() {
		if now := r.clock.Now(); now.Sub(lastFeed) >= 30*time.Second && now.Sub(start) < 10*time.Minute {
			fed++
			lastFeed = now
			r.sched.Deliver(schedPayload(feed, fmt.Sprint("job-", fed), "x", 1))
		}
	}
	r.advance(10 * time.Minute)
	ts := r.statusTimes()[id]
	// Two safety polls skipped, then one made: 3 intervals (+ jitter) in.
	if len(ts) != 1 || ts[0].Sub(start) < 6*time.Minute || ts[0].Sub(start) > 6*time.Minute+36*time.Second {
		t.Fatalf("safety polls at %v after %s, want one between 6m and 6m36s", ts, start)
	}
	// Webhooks stop: back to a poll every SafetyInterval.
	r.advance(10 * time.Minute)
	ts = r.statusTimes()[id]
	if len(ts) < 5 {
		t.Fatalf("%d safety polls after webhooks stopped, want one every 2 min", len(ts))
	}
	last := ts[len(ts)-4:]
	for i := 1; i < len(last); i++ {
		if g := last[i].Sub(last[i-1]); g < 2*time.Minute || g > 2*time.Minute+12*time.Second {
			t.Errorf("safety gap %s, want 2m to 2m12s", g)
		}
	}
}

// schedBlockingClient holds every status call until released.
type schedBlockingClient struct {
	mu       sync.Mutex
	cur, max int
	calls    int
	entered  chan string
	release  chan struct{}
}

func (c *schedBlockingClient) TextStatus(ctx context.Context, _ hordeapi.Caller, id string) (*hordeapi.TextStatus, error) {
	c.mu.Lock()
	c.cur++
	c.calls++
	c.max = max(c.max, c.cur)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cur--
		c.mu.Unlock()
	}()
	c.entered <- id
	select {
	case <-c.release:
		return &hordeapi.TextStatus{Done: true, Finished: 1}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// schedWaitParked waits until the loop sleeps with no wake-up pending.
func schedWaitParked(t *testing.T, s *Scheduler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cond.Broadcast()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.parked || s.wakeSet {
		if ctx.Err() != nil {
			t.Fatal("scheduler loop did not park")
		}
		s.cond.Wait()
	}
}

func TestSchedulerConcurrencyLimit(t *testing.T) {
	client := &schedBlockingClient{entered: make(chan string, 10), release: make(chan struct{})}
	clock := clockwork.NewFakeClockAt(hordetest.DefaultStart)
	s := NewScheduler(client, clock, SchedulerConfig{Concurrency: 2, CallsPerSecond: 100}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = s.Run(ctx)
	}()
	defer func() {
		cancel()
		<-ran
	}()
	var ws []*Watch
	for i := range 5 {
		ws = append(ws, s.Watch(fmt.Sprint("req-", i), hordeapi.Caller{}, WatchOptions{}))
	}
	for range 2 {
		<-client.entered
	}
	schedWaitParked(t, s)
	if n := len(client.entered); n != 0 {
		t.Fatalf("%d calls started beyond the 2 allowed", n)
	}
	for range 3 {
		client.release <- struct{}{}
		<-client.entered
	}
	for range 2 {
		client.release <- struct{}{}
	}
	for i, w := range ws {
		if st, err := w.Result(); err != nil || !st.Done {
			t.Errorf("watch %d: %v, %v", i, st, err)
		}
	}
	client.mu.Lock()
	defer client.mu.Unlock()
	if client.max != 2 || client.calls != 5 {
		t.Errorf("max in flight %d, calls %d; want 2 and 5", client.max, client.calls)
	}
}

func TestSchedulerRetriesNetworkError(t *testing.T) {
	r := newSchedRig(t, SchedulerConfig{})
	id := r.submit("dropped", 80, 1, "")
	// net/http resends an idempotent GET once when a reused connection
	// drops, so it takes more than one reset to surface an error.
	r.horde.Inject(hordetest.Fault{Kind: hordetest.FaultReset, Method: http.MethodGet, Path: "/v2/generate/text/status/", Count: 3})
	var rec schedRecorder
	w := r.sched.Watch(id, schedCaller, rec.options(1, false))
	r.untilDone(w, time.Minute)
	if _, err := w.Result(); err != nil {
		t.Fatalf("Result: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.retries) == 0 || len(rec.retries) > 3 {
		t.Errorf("%d retries, want 1 to 3", len(rec.retries))
	}
	for _, err := range rec.retries {
		if !errors.Is(err, hordeapi.ErrUnavailable) {
			t.Errorf("retry error %v is not ErrUnavailable", err)
		}
	}
}

func TestWatchBeforeRun(t *testing.T) {
	clock := clockwork.NewFakeClockAt(hordetest.DefaultStart)
	client := &schedBlockingClient{entered: make(chan string, 1), release: make(chan struct{}, 1)}
	s := NewScheduler(client, clock, SchedulerConfig{}, nil)
	w := s.Watch("early", hordeapi.Caller{}, WatchOptions{})
	client.release <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = s.Run(ctx)
	}()
	defer func() {
		cancel()
		<-ran
	}()
	if id := <-client.entered; id != "early" {
		t.Errorf("polled %q", id)
	}
	if st, err := w.Result(); err != nil || !st.Done {
		t.Errorf("Result = %v, %v", st, err)
	}
}

func TestWatchCallbacksSerialized(t *testing.T) {
	// The callbacks share plain variables, as callers' closures do; the
	// race detector checks that successive calls, made from different
	// pool goroutines, are ordered.
	r := newSchedRig(t, SchedulerConfig{Concurrency: 8}, hordetest.WithWorkers(schedWorker("slow", 1, 2)))
	id := r.submit("chatty", 60, 1, "")
	r.horde.Inject(hordetest.Fault{Kind: hordetest.FaultStatus, Status: http.StatusBadGateway,
		Method: http.MethodGet, Path: "/v2/generate/text/status/", Count: 2})
	var statuses, retries int
	var last *hordeapi.TextStatus
	w := r.sched.Watch(id, schedCaller, WatchOptions{
		OnStatus: func(st *hordeapi.TextStatus) { statuses++; last = st },
		OnRetry:  func(error) { retries++ },
	})
	r.untilDone(w, 2*time.Minute)
	st, err := w.Result()
	if err != nil || st != last || retries != 2 || statuses < 20 {
		t.Errorf("Result %v, %v; %d statuses, %d retries", st, err, statuses, retries)
	}
}
