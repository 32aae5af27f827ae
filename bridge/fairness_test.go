package bridge

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bridge/prompt"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// Fair share of the status-poll budget between principals: one person with
// many jobs in flight must not slow everyone else's answers down. The
// figures are measured on what the fake Horde saw (status GETs per
// Proxied-For identity), in simulated time.

// jainIndex is Jain's fairness index of xs: 1 when all are equal, 1/n when
// one takes everything.
func jainIndex(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// pollsByIdentity counts the status GETs the fake received per identity.
func pollsByIdentity(fake *hordetest.Server) map[string]int {
	out := map[string]int{}
	for _, rec := range fake.RequestsTo(http.MethodGet, "/v2/generate/text/status/") {
		out[rec.Identity]++
	}
	return out
}

// quantile is the q-quantile of ds (sorted in place).
func quantile(ds []time.Duration, q float64) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(math.Ceil(q*float64(len(ds))))-1)]
}

func TestSchedulerSharesBudgetByPrincipal(t *testing.T) {
	// 50 people with one long job each and one with 200, all processing,
	// so every job wants a poll a second; the budget gives 10. A fair
	// share is a 51st of the polls per person, not a 250th per job.
	const light, heavyJobs, rate = 50, 200, 10
	r := newSchedRig(t, SchedulerConfig{CallsPerSecond: rate},
		hordetest.WithoutRateLimits(), hordetest.WithWorkers(schedWorker("slow", 1000, 1)))
	heavy := hordeapi.Caller{APIKey: schedTestKey, ProxiedFor: "fd00:0:0:ffff::1"}
	lights := make([]hordeapi.Caller, light)
	for i := range lights {
		lights[i] = hordeapi.Caller{APIKey: schedTestKey, ProxiedFor: fmt.Sprintf("fd00:0:0:%x::1", i+1)}
	}
	watch := func(who hordeapi.Caller, prompt string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := r.client.SubmitText(ctx, who, &hordeapi.TextRequest{Prompt: prompt,
			Params: &hordeapi.TextParams{MaxLength: hordeapi.Ptr(140), MaxContextLength: hordeapi.Ptr(2048)}})
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		r.sched.Watch(res.ID, who, WatchOptions{})
	}
	// The heavy user comes first: under earliest-due-first its 200 polls
	// would all go before anyone else's.
	for i := range heavyJobs {
		watch(heavy, fmt.Sprint("heavy ", i))
	}
	for i, c := range lights {
		watch(c, fmt.Sprint("light ", i))
	}
	r.horde.ResetRequests()
	const span = 60 * time.Second
	r.advance(span)

	polls := pollsByIdentity(r.horde)
	var shares []float64
	lo, hi := math.MaxInt, 0
	for _, c := range lights {
		n := polls[c.ProxiedFor]
		shares = append(shares, float64(n))
		lo, hi = min(lo, n), max(hi, n)
	}
	total := 0
	for _, n := range polls {
		total += n
	}
	fair := float64(total) / (light + 1)
	jain := jainIndex(append(slices.Clone(shares), float64(polls[heavy.ProxiedFor])))
	t.Logf("%d polls in %s; per light user %d..%d, heavy user %d (fair share %.1f); Jain's index over all %d people %.3f",
		total, span, lo, hi, polls[heavy.ProxiedFor], fair, light+1, jain)
	if total < rate*int(span.Seconds())*9/10 {
		t.Errorf("only %d polls: the budget should be used up", total)
	}
	if h := float64(polls[heavy.ProxiedFor]); h > 1.5*fair {
		t.Errorf("the user with %d jobs got %.0f polls, more than 1.5 fair shares (%.1f)", heavyJobs, h, fair)
	}
	if float64(lo) < 0.7*fair || jain < 0.95 {
		t.Errorf("light users got %d..%d polls (fair share %.1f), Jain's index %.3f: want an even share", lo, hi, fair, jain)
	}
}

func TestSchedulerRoundRobinKeepsOrderWithinPrincipal(t *testing.T) {
	// With the pool and the budget for one call at a time, due polls go
	// round-robin across principals and earliest-due first within one:
	// b's only job does not wait behind all of a's.
	stub := &fairStub{}
	clock := clockwork.NewFakeClockAt(hordetest.DefaultStart)
	s := NewScheduler(stub, clock, SchedulerConfig{CallsPerSecond: 1, Concurrency: 1}, nil)
	a := hordeapi.Caller{ProxiedFor: "fd00::a"}
	b := hordeapi.Caller{ProxiedFor: "fd00::b"}
	for i := range 3 {
		s.Watch(fmt.Sprint("a", i), a, WatchOptions{})
		clock.Advance(time.Millisecond)
	}
	s.Watch("b0", b, WatchOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = s.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	for range 4 {
		wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := s.waitSettled(wctx)
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	if got, want := stub.order(), []string{"a0", "b0", "a1", "b0"}; !slices.Equal(got[:min(4, len(got))], want) {
		t.Errorf("poll order %v, want %v", got, want)
	}
}

// fairStub answers every status "processing" and records the order of calls.
type fairStub struct {
	mu    sync.Mutex
	calls []string
}

func (f *fairStub) TextStatus(_ context.Context, _ hordeapi.Caller, id string) (*hordeapi.TextStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, id)
	return &hordeapi.TextStatus{Processing: 1, IsPossible: true}, nil
}

func (f *fairStub) order() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fairUntil moves the clock event by event (the scheduler's next wake-up,
// the fake's next job event, at most a second) until cond holds, by at
// most limit: svcRig.until's whole-second steps would let the scheduler
// spend only one budget token a second.
func fairUntil(r *svcRig, limit time.Duration, cond func() bool) bool {
	r.t.Helper()
	end := r.clock.Now().Add(limit)
	for {
		r.settle()
		if cond() {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		next, err := r.svc.sched.waitSettled(ctx)
		cancel()
		if err != nil {
			r.t.Fatalf("scheduler did not settle: %v", err)
		}
		now := r.clock.Now()
		if !now.Before(end) {
			return false
		}
		step := now.Add(time.Second)
		if end.Before(step) {
			step = end
		}
		if !next.IsZero() && next.Before(step) {
			step = next
		}
		if ev := r.fake.NextEvent(); ev.After(now) && ev.Before(step) {
			step = ev
		}
		r.fake.Advance(step.Sub(now))
	}
}

// fairOperatorKey runs every fairness job: an account with room for
// thousands in parallel, so only hordechat's own scheduling is measured.
const fairOperatorKey = "fair-operator-key-0123456789"

// fairRun is one simulated crowd: light users with one job each, and
// optionally a heavy user with many.
type fairRun struct {
	answered  map[string]time.Duration // light user -> time to answer
	polls     map[string]int           // per identity
	heavyDone int
	heavyAt   time.Duration // when the heavy user's last job was answered
	identity  func(Principal) string
}

func runFairCrowd(t *testing.T, lightUsers, heavyJobs int) fairRun {
	t.Helper()
	r := newSvcRig(t, rigOptions{operatorKey: fairOperatorKey, horde: []hordetest.Option{
		hordetest.WithoutRateLimits(), // the Horde's per-identity limits are not what is measured
		hordetest.WithUsers(hordetest.User{APIKey: fairOperatorKey, Username: "operator", Kudos: 1e9, Concurrency: 1 << 20}),
		hordetest.WithWorkers(hordetest.Worker{Name: "farm", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"},
			MaxLength: 512, MaxContextLength: 8192, TokensPerSecond: 10, Threads: 10000}),
		// Every answer takes 20 s of a worker's time.
		hordetest.WithResponder(func(hordetest.Job) string { return strings.Repeat("word ", 160) }),
	}})
	start := r.clock.Now()
	var mu sync.Mutex
	out := fairRun{answered: map[string]time.Duration{}, identity: func(p Principal) string { return r.svc.ids.ProxiedFor(p) }}
	failed := 0
	over := false // the run is measured; jobs still open end with the rig
	launch := func(p Principal, text string, light bool) {
		req := Request{Principal: p, Models: []string{"Fimbulvetr-11B-v2"}, Messages: []prompt.Message{{Role: "user", Content: text}}}
		var doneAt time.Duration
		progress := func(pr Progress) {
			if pr.Stage == StageDone { // reported while the job still counts as busy
				doneAt = r.clock.Since(start)
			}
		}
		r.goComplete(context.Background(), req, progress, func(_ *Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case over:
			case err != nil:
				failed++
				t.Errorf("%s: %v", p.UserID, err)
			case light:
				out.answered[p.UserID] = doneAt
			default:
				out.heavyDone++
				out.heavyAt = max(out.heavyAt, doneAt)
			}
		})
	}
	heavy := Principal{Platform: "discord", UserID: "heavy"}
	for i := range heavyJobs {
		launch(heavy, fmt.Sprint("heavy question ", i), false)
	}
	for i := range lightUsers {
		launch(Principal{Platform: "discord", UserID: fmt.Sprint("light-", i)}, fmt.Sprint("question of ", i), true)
	}
	if !fairUntil(r, time.Hour, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(out.answered) == lightUsers || failed > 0
	}) {
		t.Fatalf("only %d of %d light users answered within a simulated hour", len(out.answered), lightUsers)
	}
	out.polls = pollsByIdentity(r.fake)
	// Fair is not starved: the heavy user's jobs all finish too.
	if !fairUntil(r, time.Hour, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return out.heavyDone == heavyJobs || failed > 0
	}) {
		t.Errorf("only %d of the heavy user's %d jobs answered within a simulated hour", out.heavyDone, heavyJobs)
	}
	mu.Lock()
	over = true
	mu.Unlock()
	// Every call for a person carried that person's identity.
	for _, rec := range r.submits() {
		if !rec.Proxied || !strings.HasPrefix(rec.Identity, "fd") {
			t.Fatalf("submit without a per-user identity: %+v", rec.Identity)
		}
	}
	return out
}

func TestServiceFairShareWithThousandUsers(t *testing.T) {
	// 1,000 people ask one question each at the same moment, with and
	// without one person who has 1,000 jobs in flight; status polls are
	// the contended budget (10 a second for thousands of jobs).
	const users, heavyJobs = 1000, 1000
	alone := runFairCrowd(t, users, 0)
	crowd := runFairCrowd(t, users, heavyJobs)

	lat := func(run fairRun) []time.Duration {
		var ds []time.Duration
		for _, d := range run.answered {
			ds = append(ds, d)
		}
		return ds
	}
	a, c := lat(alone), lat(crowd)
	medA, medC := quantile(a, 0.5), quantile(c, 0.5)
	p95A, p95C := quantile(a, 0.95), quantile(c, 0.95)
	heavyID := crowd.identity(Principal{Platform: "discord", UserID: "heavy"})
	var lightPolls []float64
	total := 0
	for id, n := range crowd.polls {
		total += n
		if id != heavyID {
			lightPolls = append(lightPolls, float64(n))
		}
	}
	lo, hi := slices.Min(lightPolls), slices.Max(lightPolls)
	t.Logf("light users' time to answer: median %s alone, %s beside the heavy user (x%.2f); p95 %s vs %s (x%.2f)",
		medA, medC, medC.Seconds()/medA.Seconds(), p95A, p95C, p95C.Seconds()/p95A.Seconds())
	t.Logf("polls until the last light answer: %d; heavy user %d (%.1f%%), light users %.0f..%.0f, Jain's index over light users %.3f; all %d heavy jobs done after %s",
		total, crowd.polls[heavyID], 100*float64(crowd.polls[heavyID])/float64(total), lo, hi, jainIndex(lightPolls), crowd.heavyDone, crowd.heavyAt)
	if len(c) != users || len(a) != users {
		t.Fatalf("answered %d and %d of %d", len(a), len(c), users)
	}
	if r := medC.Seconds() / medA.Seconds(); r > 1.25 {
		t.Errorf("the heavy user slows the median light answer down %.2f times (%s vs %s), want at most 1.25", r, medC, medA)
	}
	if r := p95C.Seconds() / p95A.Seconds(); r > 1.25 {
		t.Errorf("the heavy user slows the p95 light answer down %.2f times (%s vs %s), want at most 1.25", r, p95C, p95A)
	}
	if share := float64(crowd.polls[heavyID]) / float64(total); share > 3.0/users {
		t.Errorf("the heavy user took %.1f%% of the polls, a fair share is %.2f%%", 100*share, 100.0/(users+1))
	}
}
