package bridge

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// The simulated workload of the scheduler benchmarks.
//
// 1,000 requests are submitted together at the start. Each job's
// processing time is drawn uniformly from 5-60 s (seeded): the Responder
// reads the job number from the prompt and writes exactly as many tokens as
// the serving worker generates in that time. Four workers of 25 threads
// each (8, 12, 16 and 24 tokens/s) share the queue, so the jobs start one
// after the other as threads free up and their queue waits spread evenly
// over 0 to about 5 min. Requests ask for max_length 1500 (60 s at the
// fastest worker), so the Horde's wait_time overestimates, as it does for
// real answers that stop early. The benchmarks report the spread measured.
//
// Everything runs against hordetest over loopback HTTP with a real
// hordeapi.Client (no client retries), on one fake clock that the rig moves
// from event to event (the scheduler's next wake-up, the fake's next job
// event) after the scheduler has settled, so every delay is exact in
// simulated time and the run takes seconds.
const schedBenchJobs = 1000

var schedBenchSpeeds = map[string]float64{"bench-a": 8, "bench-b": 12, "bench-c": 16, "bench-d": 24}

func schedBenchWorkers() []hordetest.Worker {
	var ws []hordetest.Worker
	for _, name := range []string{"bench-a", "bench-b", "bench-c", "bench-d"} {
		ws = append(ws, hordetest.Worker{Name: name, Threads: 25, TokensPerSecond: schedBenchSpeeds[name], MaxLength: 2048, MaxContextLength: 4096})
	}
	return ws
}

type schedWorkload struct {
	procs []time.Duration // job i's processing time
}

func newSchedWorkload(n int) *schedWorkload {
	rng := rand.New(rand.NewPCG(2026, 1))
	wl := &schedWorkload{procs: make([]time.Duration, n)}
	for i := range wl.procs {
		wl.procs[i] = 5*time.Second + time.Duration(rng.Int64N(int64(55*time.Second)))
	}
	return wl
}

// respond sizes job i's text to its processing time on the serving worker.
func (wl *schedWorkload) respond(j hordetest.Job) string {
	i, err := strconv.Atoi(strings.TrimPrefix(j.Prompt, "job "))
	if err != nil || i < 0 || i >= len(wl.procs) {
		return "?"
	}
	tokens := int(wl.procs[i].Seconds()*schedBenchSpeeds[j.WorkerName] + 0.5)
	return strings.Repeat("abcd", tokens)
}

type schedSimMode int

const (
	schedSimAdaptive schedSimMode = iota
	schedSimFixed
	schedSimWebhook
)

// schedSimResult is what one simulation measured.
type schedSimResult struct {
	jobs        int
	calls       int           // status calls
	minGap      time.Duration // shortest gap between two polls of one request
	peakPerSec  int           // most status calls in any 1 s window
	delay       schedStats    // simulated: request done at the Horde -> watch done
	realDelay   schedStats    // webhook mode: real time from the POST leaving the fake to Deliver done
	wait, proc  schedStats    // the workload as it ran
	simDuration time.Duration
}

type schedStats struct {
	n             int
	min, max, sum time.Duration
}

func (s *schedStats) add(d time.Duration) {
	if s.n == 0 || d < s.min {
		s.min = d
	}
	s.max = max(s.max, d)
	s.sum += d
	s.n++
}

func (s schedStats) mean() time.Duration {
	if s.n == 0 {
		return 0
	}
	return s.sum / time.Duration(s.n)
}

func (s schedStats) String() string {
	r := time.Millisecond
	if s.max < 100*time.Millisecond {
		r = time.Microsecond
	}
	return fmt.Sprintf("min %s mean %s max %s", s.min.Round(r), s.mean().Round(r), s.max.Round(r))
}

// schedCallTally counts status calls as the fake records them, forgetting
// the records as it goes so a long run does not hoard them.
type schedCallTally struct {
	last   map[string]time.Time
	minGap time.Duration
	calls  int
	window []time.Time // calls within the last second
	peak   int
}

func newSchedCallTally() *schedCallTally {
	return &schedCallTally{last: map[string]time.Time{}, minGap: time.Duration(1<<63 - 1)}
}

func (t *schedCallTally) add(id string, at time.Time) {
	if prev, ok := t.last[id]; ok {
		t.minGap = min(t.minGap, at.Sub(prev))
	}
	t.last[id] = at
	t.calls++
	cut := 0
	for cut < len(t.window) && !t.window[cut].After(at.Add(-time.Second)) {
		cut++
	}
	t.window = append(t.window[cut:], at)
	t.peak = max(t.peak, len(t.window))
}

func (t *schedCallTally) drain(h *hordetest.Server) {
	recs := h.RequestsTo(http.MethodGet, "/v2/generate/text/status/")
	h.ResetRequests()
	for _, rec := range recs {
		t.add(rec.Path[strings.LastIndexByte(rec.Path, '/')+1:], rec.Time)
	}
}

// runSchedSim runs the workload once and measures it.
func runSchedSim(b *testing.B, wl *schedWorkload, mode schedSimMode) schedSimResult {
	b.Helper()
	// A budget far above what Fixed needs (1,000 calls/s at the start):
	// this compares policies, not budgets.
	cfg := SchedulerConfig{CallsPerSecond: 100000, Concurrency: 8, Fixed: mode == schedSimFixed}
	opts := []hordetest.Option{
		hordetest.WithoutRateLimits(),
		hordetest.WithWorkers(schedBenchWorkers()...),
		hordetest.WithResponder(wl.respond),
	}
	n := len(wl.procs)
	seen := make([]time.Time, n) // simulated time each watch saw the end
	var r *schedRig
	var hookURL string
	var realMu sync.Mutex
	var realDelay schedStats
	index := map[string]int{}
	if mode == schedSimWebhook {
		hooks := newSchedWebhookServer(b, func() *Scheduler { return r.sched }, func(req *http.Request, p *hordeapi.WebhookPayload, ok bool) {
			// Deliver has returned: with N=1 the watch is done.
			done := time.Now()
			fired, _ := strconv.ParseInt(req.Header.Get("X-Sched-Fired"), 10, 64)
			if !ok {
				return
			}
			realMu.Lock()
			defer realMu.Unlock()
			realDelay.add(done.Sub(time.Unix(0, fired)))
			seen[index[p.Request]] = r.clock.Now()
		})
		hookURL = hooks.URL + "/hook"
		base := hooks.Client()
		opts = append(opts, hordetest.WithWebhookClient(&http.Client{
			Timeout: 10 * time.Second, Transport: schedStampTransport{base.Transport},
		}))
	}
	r = newSchedRig(b, cfg, opts...)
	r.flush = mode == schedSimWebhook
	defer r.shutdown()

	ids := make([]string, n)
	watches := make([]*Watch, n)
	for i := range n {
		ids[i] = r.submit(fmt.Sprint("job ", i), 1500, 1, hookURL)
		realMu.Lock()
		index[ids[i]] = i
		realMu.Unlock()
	}
	start := r.clock.Now()
	for i, id := range ids {
		watches[i] = r.sched.Watch(id, schedCaller, WatchOptions{
			N: 1, Webhook: mode == schedSimWebhook,
			OnStatus: func(st *hordeapi.TextStatus) {
				if st.Done { // a poll saw the end (before Done closes)
					realMu.Lock()
					defer realMu.Unlock()
					seen[i] = r.clock.Now()
				}
			},
		})
	}
	allDone := make(chan struct{})
	go func() {
		defer close(allDone)
		for _, w := range watches {
			<-w.Done()
		}
	}()
	tally := newSchedCallTally()
	r.onStep = func() { tally.drain(r.horde) }
	if !r.advanceUntil(time.Hour, func() bool {
		select {
		case <-allDone:
			return true
		default:
			return false
		}
	}) {
		b.Fatal("simulation did not finish in an hour")
	}
	tally.drain(r.horde)

	res := schedSimResult{jobs: n, calls: tally.calls, minGap: tally.minGap, peakPerSec: tally.peak, simDuration: r.clock.Now().Sub(start)}
	realMu.Lock() // the webhook handler wrote seen under it
	defer realMu.Unlock()
	res.realDelay = realDelay
	for i, id := range ids {
		if _, err := watches[i].Result(); err != nil {
			b.Fatalf("job %d: %v", i, err)
		}
		tl, ok := r.horde.Timeline(id)
		if !ok || !tl.Done || len(tl.Jobs) == 0 {
			b.Fatalf("job %d: timeline %+v", i, tl)
		}
		res.wait.add(tl.Jobs[0].Start.Sub(tl.Created))
		res.proc.add(tl.DoneAt.Sub(tl.Jobs[len(tl.Jobs)-1].Start))
		res.delay.add(seen[i].Sub(tl.DoneAt))
	}
	return res
}

// schedStampTransport stamps each webhook POST with the real time it
// leaves the fake Horde.
type schedStampTransport struct{ base http.RoundTripper }

func (t schedStampTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Sched-Fired", strconv.FormatInt(time.Now().UnixNano(), 10))
	return t.base.RoundTrip(req)
}

// BenchmarkSchedulerVsFixed runs the 1,000-job workload with the adaptive
// policy and with a fixed 1 s poller. One iteration is two whole
// simulations (several seconds), so the default benchtime runs it once;
// the metrics do not depend on b.N.
func BenchmarkSchedulerVsFixed(b *testing.B) {
	wl := newSchedWorkload(schedBenchJobs)
	var ad, fx schedSimResult
	for b.Loop() {
		ad = runSchedSim(b, wl, schedSimAdaptive)
		fx = runSchedSim(b, wl, schedSimFixed)
	}
	callsAd := float64(ad.calls) / float64(ad.jobs)
	callsFx := float64(fx.calls) / float64(fx.jobs)
	delayAd, delayFx := ad.delay.mean().Seconds(), fx.delay.mean().Seconds()
	b.ReportMetric(callsAd, "calls/job")
	b.ReportMetric(callsFx, "fixed-calls/job")
	b.ReportMetric(callsAd/callsFx, "calls-ratio")
	b.ReportMetric(delayAd, "delay-s")
	b.ReportMetric(delayFx, "fixed-delay-s")
	b.ReportMetric(delayAd/delayFx, "delay-ratio")
	b.Logf("workload: %d jobs; queue wait %v; processing %v", ad.jobs, ad.wait, ad.proc)
	b.Logf("adaptive: %d calls (%.2f/job), notice delay %v, shortest per-job gap %s, peak %d calls/s, %s simulated",
		ad.calls, callsAd, ad.delay, ad.minGap, ad.peakPerSec, ad.simDuration.Round(time.Second))
	b.Logf("fixed:    %d calls (%.2f/job), notice delay %v, shortest per-job gap %s, peak %d calls/s, %s simulated",
		fx.calls, callsFx, fx.delay, fx.minGap, fx.peakPerSec, fx.simDuration.Round(time.Second))
	if ad.minGap < time.Second || fx.minGap < time.Second {
		b.Errorf("a request was polled twice within 1s")
	}
	if callsAd/callsFx > 0.4 || delayAd/delayFx > 1.2 {
		b.Errorf("targets missed: calls ratio %.3f (want <= 0.4), delay ratio %.3f (want <= 1.2)", callsAd/callsFx, delayAd/delayFx)
	}
}

// BenchmarkSchedulerWebhook runs the same workload with results coming by
// webhook over https; polls are only the safety net. The notice delay is
// measured in real time, from the POST leaving the fake Horde to Deliver
// having finished the watch; in simulated time it is zero by construction
// (the clock does not move while webhooks are delivered). One iteration is
// one whole simulation.
func BenchmarkSchedulerWebhook(b *testing.B) {
	wl := newSchedWorkload(schedBenchJobs)
	var res schedSimResult
	for b.Loop() {
		res = runSchedSim(b, wl, schedSimWebhook)
	}
	calls := float64(res.calls) / float64(res.jobs)
	b.ReportMetric(calls, "calls/job")
	b.ReportMetric(float64(res.realDelay.mean().Microseconds())/1000, "delay-ms")
	b.ReportMetric(float64(res.realDelay.max.Microseconds())/1000, "max-delay-ms")
	b.ReportMetric(res.delay.mean().Seconds(), "sim-delay-s")
	b.Logf("webhook: %d calls (%.3f/job), real notice delay %v over %d webhooks, simulated delay %v, %s simulated",
		res.calls, calls, res.realDelay, res.realDelay.n, res.delay, res.simDuration.Round(time.Second))
	if calls > 0.1 || res.realDelay.mean() > 50*time.Millisecond {
		b.Errorf("targets missed: %.3f calls/job (want <= 0.1), mean delay %s (want <= 50ms)", calls, res.realDelay.mean())
	}
}

// schedStubClient answers status calls in-process for the 10k benchmark:
// a third of the requests are processing, the rest queued with long waits,
// so together they want far more calls than the budget. It checks every
// call against the per-request and global limits as it goes.
type schedStubClient struct {
	clock  clockwork.Clock
	limit  int // calls allowed in any 1 s window
	mu     sync.Mutex
	jobs   map[string]*schedStubJob
	tally  *schedCallTally
	window []int64 // the last limit+1 call times, as a ring
	pos    int
	over   int // calls that broke the global budget
}

type schedStubJob struct {
	processing bool
	wait, pos  int
}

func (c *schedStubClient) TextStatus(_ context.Context, _ hordeapi.Caller, id string) (*hordeapi.TextStatus, error) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.jobs[id]
	c.tally.add(id, now)
	if prev := c.window[c.pos]; prev != 0 && now.UnixNano()-prev < int64(time.Second) {
		c.over++
	}
	c.window[c.pos] = now.UnixNano()
	c.pos = (c.pos + 1) % len(c.window)
	st := &hordeapi.TextStatus{IsPossible: true, WaitTime: j.wait, QueuePosition: j.pos, Waiting: 1}
	if j.processing {
		st.Processing, st.Waiting, st.QueuePosition = 1, 0, 0
	}
	return st, nil
}

// BenchmarkScheduler10k keeps 10,000 watches in flight for 2 simulated
// minutes under the largest budget the configuration allows (100 calls/s)
// and reports the heap in use with all of them open, and the highest
// per-request and global poll rates seen. The status answers come from an
// in-process stub on the fake clock rather than hordetest: the fake's
// queue handling is O(n log n) per call at 10,000 requests, and its own
// state would swamp the heap figure. One iteration is one whole run.
func BenchmarkScheduler10k(b *testing.B) {
	const n = 10000
	cfg := SchedulerConfig{CallsPerSecond: 100}
	for b.Loop() {
		clock := clockwork.NewFakeClockAt(hordetest.DefaultStart)
		burst := max(1, int(cfg.CallsPerSecond/10))
		limit := int(cfg.CallsPerSecond) + burst - 1
		stub := &schedStubClient{clock: clock, limit: limit, jobs: make(map[string]*schedStubJob, n),
			tally: newSchedCallTally(), window: make([]int64, limit+1)}
		ids := make([]string, n)
		rng := rand.New(rand.NewPCG(10, 10000))
		for i := range ids {
			ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
			stub.jobs[ids[i]] = &schedStubJob{processing: i%3 == 0, wait: 60 + rng.IntN(540), pos: 1 + i}
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)

		s := NewScheduler(stub, clock, cfg, nil)
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() {
			defer close(ran)
			_ = s.Run(ctx)
		}()
		watches := make([]*Watch, n)
		var statuses sync.Map
		for i, id := range ids {
			watches[i] = s.Watch(id, hordeapi.Caller{APIKey: "key-" + strconv.Itoa(i%50), ProxiedFor: "fd00::1"}, WatchOptions{
				N:        1,
				OnStatus: func(st *hordeapi.TextStatus) { statuses.Store(i%64, st.QueuePosition) },
				OnRetry:  func(error) {},
			})
		}
		end := clock.Now().Add(2 * time.Minute)
		for {
			wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
			next, err := s.waitSettled(wctx)
			wcancel()
			if err != nil {
				b.Fatal(err)
			}
			now := clock.Now()
			if !now.Before(end) {
				break
			}
			step := end
			if !next.IsZero() && next.Before(step) {
				step = next
			}
			clock.Advance(step.Sub(now))
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		open := 0
		for _, w := range watches {
			if !schedIsDone(w) {
				open++
			}
		}
		cancel()
		<-ran

		stub.mu.Lock()
		tally, over := stub.tally, stub.over
		stub.mu.Unlock()
		b.ReportMetric(float64(after.HeapInuse)/1e6, "heap-MB")
		b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/1e6, "sched-heap-MB")
		b.ReportMetric(1/tally.minGap.Seconds(), "max-job-calls/s")
		b.ReportMetric(float64(tally.peak), "max-calls/s")
		b.Logf("%d open watches; heap in use %.1f MB (scheduler and watches %.1f MB); %d calls in 2 min, shortest per-request gap %s, at most %d calls in any 1 s (budget %d)",
			open, float64(after.HeapInuse)/1e6, (float64(after.HeapAlloc)-float64(before.HeapAlloc))/1e6, tally.calls, tally.minGap, tally.peak, limit)
		switch {
		case open != n:
			b.Errorf("%d watches open, want %d", open, n)
		case after.HeapInuse > 100e6:
			b.Errorf("heap in use %d bytes, want at most 100 MB", after.HeapInuse)
		case tally.minGap < time.Second:
			b.Errorf("a request was polled twice within %s", tally.minGap)
		case over > 0 || tally.peak > limit:
			b.Errorf("global budget broken: %d calls in a 1 s window, budget %d", tally.peak, limit)
		case tally.calls < int(cfg.CallsPerSecond*120*0.95):
			b.Errorf("only %d calls: the budget should be used up", tally.calls)
		}
	}
}
