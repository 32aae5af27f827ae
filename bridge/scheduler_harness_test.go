package bridge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// schedRig wires a Scheduler and a real hordeapi.Client to the fake Horde,
// all on one fake clock. Time moves only through advance, which steps from
// event to event (the scheduler's next wake-up, the fake's next job event)
// and lets the scheduler settle at each, so runs are deterministic.
type schedRig struct {
	tb     testing.TB
	clock  *clockwork.FakeClock
	horde  *hordetest.Server
	client *hordeapi.Client
	sched  *Scheduler
	stop   context.CancelFunc
	ran    chan struct{}
	// flush waits for the fake's webhooks after every step.
	flush bool
	// onStep runs after every step, with the scheduler settled.
	onStep func()
}

// schedPasskey is the fake's proxy passkey, so Proxied-For is honoured.
const schedPasskey = "sched-proxy-passkey-0001"

// schedTestKey is an account with room for many parallel requests.
const schedTestKey = "sched-test-key-0123456789"

func newSchedRig(tb testing.TB, cfg SchedulerConfig, opts ...hordetest.Option) *schedRig {
	tb.Helper()
	clock := clockwork.NewFakeClockAt(hordetest.DefaultStart)
	opts = append([]hordetest.Option{
		hordetest.WithClock(clock),
		hordetest.WithPasskey(schedPasskey),
		hordetest.WithUsers(hordetest.User{APIKey: schedTestKey, Username: "sched", Kudos: 1e9, Concurrency: 100000}),
	}, opts...)
	h := hordetest.New(tb, opts...)
	client, err := hordeapi.New(hordeapi.Config{
		BaseURL: h.URL, ProxyPasskey: schedPasskey, Contact: "sched-test",
		Timeout: 30 * time.Second, MaxRetries: 0,
	})
	if err != nil {
		tb.Fatal(err)
	}
	r := &schedRig{tb: tb, clock: clock, horde: h, client: client, ran: make(chan struct{})}
	r.sched = NewScheduler(client, clock, cfg, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() {
		defer close(r.ran)
		if err := r.sched.Run(ctx); err != nil {
			tb.Errorf("scheduler Run: %v", err)
		}
	}()
	tb.Cleanup(r.shutdown)
	r.settle()
	return r
}

// shutdown ends Run and waits for it.
func (r *schedRig) shutdown() {
	r.stop()
	<-r.ran
}

// settle waits until the scheduler has nothing to do before the clock moves
// and returns its next wake-up (zero for none). The timeout only guards
// against a hang; nothing asserts on wall time.
func (r *schedRig) settle() time.Time {
	r.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	next, err := r.sched.waitSettled(ctx)
	if err != nil {
		r.tb.Fatalf("scheduler did not settle: %v", err)
	}
	return next
}

// advance moves the clock by d, event by event.
func (r *schedRig) advance(d time.Duration) { r.advanceUntil(d, nil) }

// advanceUntil moves the clock event by event until cond holds (checked
// after every step) or d has passed; it reports whether cond held.
func (r *schedRig) advanceUntil(d time.Duration, cond func() bool) bool {
	r.tb.Helper()
	end := r.clock.Now().Add(d)
	for {
		r.settle()
		if r.flush {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			err := r.horde.FlushWebhooks(ctx)
			cancel()
			if err != nil {
				r.tb.Fatalf("flush webhooks: %v", err)
			}
		}
		if r.onStep != nil {
			r.onStep()
		}
		// Settle again after anything that may have woken the loop: the
		// clock must only move while the loop is parked.
		next := r.settle()
		if cond != nil && cond() {
			return true
		}
		now := r.clock.Now()
		if !now.Before(end) {
			return false
		}
		step := end
		if !next.IsZero() && next.Before(step) {
			step = next
		}
		if ev := r.horde.NextEvent(); ev.Before(step) {
			step = ev
		}
		r.horde.Advance(step.Sub(now))
	}
}

// untilDone advances until w is done, by at most d.
func (r *schedRig) untilDone(w *Watch, d time.Duration) {
	r.tb.Helper()
	if !r.advanceUntil(d, func() bool { return schedIsDone(w) }) {
		r.tb.Fatalf("watch %s not done after %s", w.ID(), d)
	}
}

func schedIsDone(w *Watch) bool {
	select {
	case <-w.Done():
		return true
	default:
		return false
	}
}

// schedCaller is the identity tests submit and poll as.
var schedCaller = hordeapi.Caller{APIKey: schedTestKey, ProxiedFor: "fd00::5c"}

// submit queues a text request and returns its id. maxLength 0 means 80.
func (r *schedRig) submit(prompt string, maxLength, n int, webhook string) string {
	r.tb.Helper()
	if maxLength == 0 {
		maxLength = 80
	}
	req := &hordeapi.TextRequest{
		Prompt:  prompt,
		Params:  &hordeapi.TextParams{N: hordeapi.Ptr(max(n, 1)), MaxLength: hordeapi.Ptr(maxLength), MaxContextLength: hordeapi.Ptr(2048)},
		Webhook: webhook,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.client.SubmitText(ctx, schedCaller, req)
	if err != nil {
		r.tb.Fatalf("submit: %v", err)
	}
	return res.ID
}

// statusTimes returns when the fake received each status GET, per request id.
func (r *schedRig) statusTimes() map[string][]time.Time {
	out := map[string][]time.Time{}
	for _, rec := range r.horde.RequestsTo(http.MethodGet, "/v2/generate/text/status/") {
		id := rec.Path[strings.LastIndexByte(rec.Path, '/')+1:]
		out[id] = append(out[id], rec.Time)
	}
	return out
}

// statusCalls counts the status GETs for one id.
func (r *schedRig) statusCalls(id string) int { return len(r.statusTimes()[id]) }

// schedMinGap is the shortest gap between consecutive times.
func schedMinGap(ts []time.Time) time.Duration {
	best := time.Duration(1<<63 - 1)
	for i := 1; i < len(ts); i++ {
		best = min(best, ts[i].Sub(ts[i-1]))
	}
	return best
}

// schedMaxInWindow is the most times within any half-open window of d.
func schedMaxInWindow(ts []time.Time, d time.Duration) int {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Before(ts[i].Add(d)) {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// newSchedWebhookServer runs an https server that hands posted webhooks to
// the scheduler, as the bridge's webhook handler does. after, when set, is
// called after each Deliver.
func newSchedWebhookServer(tb testing.TB, sched func() *Scheduler, after func(*http.Request, *hordeapi.WebhookPayload, bool)) *httptest.Server {
	tb.Helper()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		p, err := hordeapi.DecodeWebhook(req.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		ok := sched().Deliver(p)
		if after != nil {
			after(req, p, ok)
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(ts.Close)
	return ts
}

// schedPayload builds a webhook payload for direct Deliver calls.
func schedPayload(req, job, text string, kudos float64) *hordeapi.WebhookPayload {
	var p hordeapi.WebhookPayload
	raw, _ := json.Marshal(map[string]any{
		"text": text, "seed": 0, "worker_id": "w1", "worker_name": "worker", "model": "m",
		"id": job, "request": req, "kudos": kudos, "gen_metadata": []any{},
	})
	_ = json.Unmarshal(raw, &p)
	return &p
}
