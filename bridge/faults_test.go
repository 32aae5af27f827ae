package bridge

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hordechat/hordechat/bridge/prompt"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// 1,000 jobs through the Service while the fake Horde fails in every way it
// can: 5xx, 429 with Retry-After, connection resets and slow answers on
// submit, status and cancel; faulted jobs, lost (404) requests, workers
// dropping out (one long enough for its requests to become impossible), an
// IP timeout and maintenance. Time is simulated; see faults_harness_test.go.

const (
	faultJobCount = 1000
	// faultGap separates job starts; with 32 principals each starts one job
	// every 3.2 s, inside the Horde's submit limits (2/s and 90/min per
	// identity and per key) with room for a retry or a resubmit.
	faultGap = 100 * time.Millisecond
	// faultMargin is how long after its JobTimeout a job may still end: the
	// DELETE that follows a deadline is retried by the client on a 5xx,
	// reset or 429 (3 retries of at most 0.5 s, 1 s and 2 s, or the fake's
	// Retry-After of 2 s each).
	faultMargin = 10 * time.Second
)

// Model names the scenario's workers serve.
const (
	modelAlpha = "koboldcpp/Alpha-7B"         // two workers; one drops out for a while
	modelBeta  = "koboldcpp/Beta-13B"         // one worker; drops out for a while
	modelGamma = "koboldcpp/Gamma-8B"         // one worker, away for 400 s: requests become impossible
	modelDelta = "koboldcpp/Delta-20B"        // two slow threads: most requests time out
	modelEps   = "koboldcpp/Epsilon-7B-Anon"  // for the anonymous /v1 callers
	faultKey   = "fault-test-key-%02d-abcdef" // per-principal Horde keys
)

func faultWorkers() []hordetest.Worker {
	return []hordetest.Worker{
		{Name: "alpha-a", Models: []string{modelAlpha}, TokensPerSecond: 25, Threads: 6},
		{Name: "alpha-b", Models: []string{modelAlpha}, TokensPerSecond: 25, Threads: 6},
		{Name: "beta-1", Models: []string{modelBeta}, TokensPerSecond: 20, Threads: 8},
		{Name: "gamma-solo", Models: []string{modelGamma}, TokensPerSecond: 25, Threads: 4},
		{Name: "delta-slow", Models: []string{modelDelta}, TokensPerSecond: 0.5, Threads: 2},
		{Name: "eps-anon", Models: []string{modelEps}, TokensPerSecond: 25, Threads: 6},
	}
}

// faultPrincipal is one person or /v1 caller of the scenario.
type faultPrincipal struct {
	p      Principal
	submit bool // chat: Submit with a target, then Await; else /v1 Complete
	anon   bool // anonymous /v1 caller: its own model, the anonymous key
}

// faultPrincipals: 12 Discord and 8 Matrix users with linked keys, 8 /v1
// callers bringing their own key, 4 anonymous /v1 callers. It returns them,
// their Horde accounts and the linked keys by storage user id.
func faultPrincipals() ([]faultPrincipal, []hordetest.User, map[int64]string) {
	var ps []faultPrincipal
	var users []hordetest.User
	linked := map[int64]string{}
	key := func(i int) string {
		k := fmt.Sprintf(faultKey, i)
		users = append(users, hordetest.User{APIKey: k, Username: fmt.Sprintf("fault%02d", i), Kudos: 1e7, Concurrency: 500})
		return k
	}
	for i := range 12 {
		uid := int64(100 + i)
		linked[uid] = key(len(users))
		ps = append(ps, faultPrincipal{p: Principal{Platform: "discord", UserID: fmt.Sprint(9000 + i), StoreUserID: uid}, submit: true})
	}
	for i := range 8 {
		uid := int64(200 + i)
		linked[uid] = key(len(users))
		ps = append(ps, faultPrincipal{p: Principal{Platform: "matrix", UserID: fmt.Sprintf("@u%d:example.org", i), StoreUserID: uid}, submit: true})
	}
	for i := range 8 {
		ps = append(ps, faultPrincipal{p: Principal{Platform: "v1", ClientIP: fmt.Sprintf("198.51.100.%d", 10+i), APIKey: key(len(users))}})
	}
	for i := range 4 {
		ps = append(ps, faultPrincipal{p: Principal{Platform: "v1", ClientIP: fmt.Sprintf("203.0.113.%d", 20+i)}, anon: true})
	}
	return ps, users, linked
}

// faultJob is one job of the scenario and how it ended for its caller.
type faultJob struct {
	tag       string
	principal int
	submit    bool
	model     string
	cancel    context.CancelFunc // Complete jobs

	// Guarded by faultRun.mu.
	submitErr error // Submit refused the job
	res       *Result
	err       error
	awaitRes  *Result
	awaitErr  error
	cancelled bool // the scenario cancelled it while it was in flight
}

// faultRun collects what the callers and the deliverer saw.
type faultRun struct {
	wg         sync.WaitGroup // the callers' goroutines
	mu         sync.Mutex
	jobs       []*faultJob
	deliveries map[string][]Delivery // by bridge job id
	stages     [5]atomic.Int64
}

func (fr *faultRun) Deliver(_ context.Context, d Delivery) error {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	fr.deliveries[d.JobID] = append(fr.deliveries[d.JobID], d)
	return nil
}

func (fr *faultRun) progress(p Progress) {
	i := slices.Index([]Stage{StageQueued, StageProcessing, StageRetrying, StageDone, StageFailed}, p.Stage)
	if i >= 0 {
		fr.stages[i].Add(1)
	}
}

func TestFault1000JobsUnderHordeFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 jobs; skipped with -short")
	}
	realStart := time.Now()
	cfg := DefaultConfig()
	cfg.StatusCallsPerSecond = 30
	cfg.JobTimeout = 8 * time.Minute
	cfg.NotPossibleTimeout = 30 * time.Second
	cfg.ResubmitLost = 1

	principals, users, linked := faultPrincipals()
	// Answers run to max_length (the default responder's echo would stop at
	// the template's first stop sequence), so job times follow the length.
	fullLength := hordetest.WithResponder(func(j hordetest.Job) string { return "Answer: " + strings.Repeat("word ", j.MaxLength) })
	rig := newFaultRig(t, cfg, hordetest.WithWorkers(faultWorkers()...), hordetest.WithUsers(users...), fullLength)
	for uid, key := range linked {
		rig.journal.keys[uid] = key
	}
	fr := &faultRun{deliveries: map[string][]Delivery{}}
	rig.start(map[string]Deliverer{"discord": fr, "matrix": fr})

	t0 := rig.clock.Now().Add(time.Second)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var acts []faultAction
	for i := range faultJobCount {
		j := &faultJob{tag: fmt.Sprintf("%04d", i), principal: i % len(principals)}
		pr := principals[j.principal]
		j.submit = pr.submit
		switch {
		case pr.anon:
			j.model = modelEps
		case i%20 < 13:
			j.model = modelAlpha
		case i%20 == 17:
			j.model = modelGamma
		case i%40 == 18:
			j.model = modelDelta
		default:
			j.model = modelBeta
		}
		fr.jobs = append(fr.jobs, j)
		start := at(time.Duration(i) * faultGap)
		acts = append(acts, faultAction{at: start, do: func() { rig.launch(fr, j, pr) }})
		switch {
		case !j.submit && i%29 == 3: // the /v1 client hangs up
			acts = append(acts, faultAction{at: start.Add(6 * time.Second), do: func() {
				rec, ok := rig.journal.record(j.tag)
				fr.mu.Lock()
				j.cancelled = ok && rec.Finished.IsZero()
				fr.mu.Unlock()
				j.cancel()
			}})
		case j.submit && i%31 == 5: // the person cancels
			acts = append(acts, faultAction{at: start.Add(5 * time.Second), do: func() { rig.cancelJob(fr, j) }})
		}
	}
	acts = append(acts, rig.faultSchedule(at, principals)...)

	// Once no job is in flight nothing more depends on the clock; the
	// callers' goroutines then only have to hand their outcomes over.
	rig.drive(40*time.Minute, acts, func() bool { return rig.svc.InFlight() == 0 })
	end := rig.clock.Now()
	ended := make(chan struct{})
	go func() {
		fr.wg.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(2 * time.Minute): // hang guard only
		t.Fatal("callers still waiting after every job ended")
	}

	rig.checkFaultRun(fr)
	st := rig.figures(fr)
	t.Logf("fault run: %s", st)
	// The scenario reaches every way a job can end.
	for _, want := range []Code{CodeTimeout, CodeNotPossible, CodeFaulted, CodeExpired, CodeCanceled, CodeUnavailable, CodeMaintenance, CodeIPTimeout} {
		if st.outcomes[string(want)] == 0 {
			t.Errorf("no job ended with %s", want)
		}
	}
	if st.outcomes["answer"] < faultJobCount/2 {
		t.Errorf("only %d answers", st.outcomes["answer"])
	}
	t.Logf("fake-time span %s from the first start to the last end (clock stopped at %s); real time %s",
		st.lastEnd.Sub(t0).Round(time.Second), end.Sub(t0).Round(time.Second), time.Since(realStart).Round(time.Millisecond))
}

// launch starts one job at the current simulated time. The Service counts
// it busy from now on, so the clock waits for it to reach the Horde.
func (r *faultRig) launch(fr *faultRun, j *faultJob, pr faultPrincipal) {
	tokens := 40 + 10*(int(j.tag[3]-'0')%5)
	if j.model == modelDelta {
		tokens = 60 // 120 s on a slow thread
	}
	req := Request{Principal: pr.p, Models: []string{j.model}, Params: Params{MaxTokens: &tokens}}
	text := fmt.Sprintf("Question number %s, please answer briefly [job-%s]", j.tag, j.tag)
	if !pr.submit && j.tag[3]%2 == 0 {
		req.Prompt = text // a raw /v1 completion
	} else {
		req.Messages = []prompt.Message{{Role: "user", Content: text}}
	}
	if !j.submit {
		ctx, cancel := context.WithCancel(context.Background())
		j.cancel = cancel
		r.svc.busyAdd(1) // taken over by completeBusy
		fr.wg.Add(1)
		go func() {
			defer fr.wg.Done()
			res, err := r.svc.completeBusy(ctx, req, fr.progress)
			fr.mu.Lock()
			j.res, j.err = res, err
			fr.mu.Unlock()
		}()
		return
	}
	req.Target = fmt.Sprintf("%s:chan-%d:job-%s", pr.p.Platform, j.principal, j.tag)
	// Busy until the job is journaled (Submit then counts itself) or Submit
	// returned, whichever comes first.
	r.svc.busyAdd(1)
	release := sync.OnceFunc(func() { r.svc.busyAdd(-1) })
	r.journal.setOnCreate(j.tag, release)
	fr.wg.Add(1)
	go func() {
		defer fr.wg.Done()
		id, err := r.svc.Submit(context.Background(), req, fr.progress)
		release()
		if err != nil {
			fr.mu.Lock()
			j.submitErr = err
			fr.mu.Unlock()
			return
		}
		res, aerr := r.svc.Await(context.Background(), id)
		fr.mu.Lock()
		j.awaitRes, j.awaitErr = res, aerr
		fr.mu.Unlock()
	}()
}

// jobIDOf is the bridge job id of a test job, once journaled.
func (r *faultRig) jobIDOf(tag string) string {
	rec, _ := r.journal.record(tag)
	return rec.ID
}

// cancelJob cancels a submitted job through the Service, as /cancel does.
func (r *faultRig) cancelJob(fr *faultRun, j *faultJob) {
	id := r.jobIDOf(j.tag)
	if id == "" || !r.svc.Cancel(id) {
		return // refused at submit, or already over
	}
	fr.mu.Lock()
	j.cancelled = true
	fr.mu.Unlock()
}

// faultSchedule is every fault the fake injects over the run, at times
// relative to the first job start.
func (r *faultRig) faultSchedule(at func(time.Duration) time.Time, principals []faultPrincipal) []faultAction {
	const (
		status = "/v2/generate/text/status/"
		submit = "/v2/generate/text/async"
	)
	injectAt := func(d time.Duration, f hordetest.Fault) faultAction {
		switch f.Kind {
		case hordetest.FaultStatus:
			if f.Status == 0 {
				f.Status = http.StatusInternalServerError
			}
			f.Body = fmt.Sprintf(`{"message": "%s%s"}`, injectedMark, http.StatusText(f.Status))
		case hordetest.FaultRateLimit:
			f.Body = `{"message": "` + injectedMark + `2 per 1 second"}`
		}
		return faultAction{at: at(d), do: func() { r.fake.Inject(f) }}
	}
	get, post, del := http.MethodGet, http.MethodPost, http.MethodDelete
	acts := []faultAction{
		// The only worker of Gamma goes away long enough for its requests
		// to become impossible (listed for 300 s, is_possible cached 60 s).
		{at: at(5 * time.Second), do: func() { r.fake.SetWorkerOnline("gamma-solo", false) }},
		{at: at(405 * time.Second), do: func() { r.fake.SetWorkerOnline("gamma-solo", true) }},
		injectAt(8*time.Second, hordetest.Fault{Kind: hordetest.FaultStatus, Method: get, Path: status, Count: 25}),
		injectAt(12*time.Second, hordetest.Fault{Kind: hordetest.FaultStatus, Status: http.StatusServiceUnavailable, Method: post, Path: submit, Count: 4}),
		injectAt(16*time.Second, hordetest.Fault{Kind: hordetest.FaultRateLimit, Method: get, Path: status, Count: 20, RetryAfter: 3 * time.Second}),
		injectAt(20*time.Second, hordetest.Fault{Kind: hordetest.FaultRateLimit, Method: post, Path: submit, Count: 6, RetryAfter: 2 * time.Second}),
		injectAt(24*time.Second, hordetest.Fault{Kind: hordetest.FaultReset, Method: get, Path: status, Count: 15}),
		injectAt(26*time.Second, hordetest.Fault{Kind: hordetest.FaultReset, Method: post, Path: submit, Count: 3}),
		injectAt(28*time.Second, hordetest.Fault{Kind: hordetest.FaultStatus, Status: http.StatusBadGateway, Method: del, Path: status, Count: 3}),
		injectAt(28*time.Second, hordetest.Fault{Kind: hordetest.FaultReset, Method: del, Path: status, Count: 2}),
		injectAt(28*time.Second, hordetest.Fault{Kind: hordetest.FaultRateLimit, Method: del, Path: status, Count: 2, RetryAfter: 2 * time.Second}),
		// Slow answers: real time only, the simulation waits for them.
		injectAt(30*time.Second, hordetest.Fault{Kind: hordetest.FaultDelay, Method: get, Path: status, Count: 30, Delay: 20 * time.Millisecond}),
		injectAt(30*time.Second, hordetest.Fault{Kind: hordetest.FaultDelay, Method: post, Path: submit, Count: 5, Delay: 20 * time.Millisecond}),
		{at: at(32 * time.Second), do: func() { r.fake.FaultJobs(30) }},
		{at: at(36 * time.Second), do: func() { r.fake.TimeoutIP(r.svc.ids.ProxiedFor(principals[3].p), 40*time.Second) }},
		{at: at(40 * time.Second), do: func() { r.vanish(25, false) }},
		{at: at(45 * time.Second), do: func() { r.fake.SetWorkerOnline("alpha-a", false) }},
		{at: at(55 * time.Second), do: func() { r.fake.FaultJobs(-1) }},
		{at: at(68 * time.Second), do: func() { r.fake.FaultJobs(0) }},
		{at: at(70 * time.Second), do: func() { r.fake.SetMaintenance(true) }},
		{at: at(74 * time.Second), do: func() { r.fake.SetMaintenance(false) }},
		{at: at(75 * time.Second), do: func() { r.vanish(25, true) }},
		injectAt(85*time.Second, hordetest.Fault{Kind: hordetest.FaultStatus, Status: http.StatusBadGateway, Method: get, Path: status, Count: 20}),
		injectAt(85*time.Second, hordetest.Fault{Kind: hordetest.FaultRateLimit, Method: get, Path: status, Count: 10, RetryAfter: time.Second}),
		{at: at(100 * time.Second), do: func() { r.fake.SetWorkerOnline("alpha-a", true) }},
		{at: at(110 * time.Second), do: func() { r.fake.SetWorkerOnline("beta-1", false) }},
		{at: at(170 * time.Second), do: func() { r.fake.SetWorkerOnline("beta-1", true) }},
		{at: at(180 * time.Second), do: func() { r.vanish(10, true) }},
	}
	return acts
}

// vanish makes the Horde lose n live requests, oldest first; resubmitted
// ones (a job's second request) first when resubmitted is set.
func (r *faultRig) vanish(n int, resubmitted bool) {
	var first, second []string
	seen := map[string]bool{}
	for _, c := range r.wire.all() {
		if c.HordeID == "" {
			continue
		}
		if seen[c.Tag] {
			second = append(second, c.HordeID)
		} else {
			first = append(first, c.HordeID)
		}
		seen[c.Tag] = true
	}
	ids := append(first, second...)
	if resubmitted {
		ids = append(second, first...)
	}
	for _, id := range ids {
		if n == 0 {
			return
		}
		if st, ok := r.fake.Status(id); ok && !st.Done && r.fake.Vanish(id) {
			n--
		}
	}
}
