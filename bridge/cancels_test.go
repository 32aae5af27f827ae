package bridge

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// failDeletes makes every DELETE of a request status answer 500 until the
// returned handle is cleared.
func (r *svcRig) failDeletes(count int) *hordetest.FaultHandle {
	return r.fake.Inject(hordetest.Fault{Kind: hordetest.FaultStatus, Method: http.MethodDelete, Path: "/v2/generate/text/status/", Status: http.StatusInternalServerError, Count: count})
}

// deleteOffsets are the times of the DELETEs the fake saw, from the first.
func (r *svcRig) deleteOffsets() []time.Duration {
	dels := r.deletes()
	out := make([]time.Duration, len(dels))
	for i, d := range dels {
		out[i] = d.Time.Sub(dels[0].Time)
	}
	return out
}

// impossibleJob runs a request no worker can serve to its end (not
// possible, then a DELETE) and returns its Horde id.
func (r *svcRig) impossibleJob() string {
	r.t.Helper()
	r.fake.RemoveWorker("fake-koboldcpp-fimbulvetr") // the registry still lists it
	_, err := r.complete(context.Background(), chat("anyone?"), nil)
	if Classify(err).Code != CodeNotPossible {
		r.t.Fatalf("err = %v, want %s", err, CodeNotPossible)
	}
	ids := r.fake.RequestIDs()
	if len(ids) != 1 {
		r.t.Fatalf("%d requests at the Horde, want 1", len(ids))
	}
	return ids[0]
}

func (r *svcRig) cancelledAtHorde(id string) bool {
	info, ok := r.fake.Request(id)
	return ok && info.Cancelled
}

func impossibleCfg() Config {
	cfg := DefaultConfig()
	cfg.NotPossibleTimeout = 30 * time.Second
	return cfg
}

// TestFailedCancelIsRetriedUntilDeleted: every DELETE fails for a while
// after the bridge gave up on a request; it is retried in the background
// with backoff on the service's clock, and once the Horde recovers the
// request is deleted and nothing more is sent.
func TestFailedCancelIsRetriedUntilDeleted(t *testing.T) {
	r := newSvcRig(t, rigOptions{cfg: impossibleCfg()})
	fault := r.failDeletes(0)
	id := r.impossibleJob()
	if r.cancelledAtHorde(id) || r.svc.pendingCancels() != 1 {
		t.Fatalf("after the failed DELETE: cancelled %v, %d pending; want false, 1", r.cancelledAtHorde(id), r.svc.pendingCancels())
	}

	r.until(3*time.Minute, func() bool { return false })
	want := []time.Duration{0, 10 * time.Second, 30 * time.Second, 70 * time.Second, 150 * time.Second}
	if got := r.deleteOffsets(); !slices.Equal(got, want) {
		t.Fatalf("DELETEs at %v, want %v", got, want)
	}

	fault.Clear()
	if !r.until(5*time.Minute, func() bool { return r.cancelledAtHorde(id) }) {
		t.Fatal("the request was not deleted at the Horde after it recovered")
	}
	if got, want := r.deleteOffsets(), append(want, 270*time.Second); !slices.Equal(got, want) {
		t.Errorf("DELETEs at %v, want %v", got, want)
	}
	if n := r.svc.pendingCancels(); n != 0 {
		t.Errorf("%d cancels still pending after the DELETE worked", n)
	}
	r.until(25*time.Minute, func() bool { return false })
	if n := len(r.deletes()); n != 6 {
		t.Errorf("%d DELETEs in all, want 6: none after the one that worked", n)
	}
}

// TestCancelRetryStopsAtNotFound: a request the Horde no longer knows (404)
// is not retried again.
func TestCancelRetryStopsAtNotFound(t *testing.T) {
	r := newSvcRig(t, rigOptions{cfg: impossibleCfg()})
	r.failDeletes(1)
	id := r.impossibleJob()
	if r.svc.pendingCancels() != 1 {
		t.Fatalf("%d cancels pending after the failed DELETE, want 1", r.svc.pendingCancels())
	}
	r.fake.Vanish(id)
	r.until(25*time.Minute, func() bool { return false })
	if got, want := r.deleteOffsets(), []time.Duration{0, 10 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("DELETEs at %v, want %v: one retry, answered 404, then none", got, want)
	}
	if n := r.svc.pendingCancels(); n != 0 {
		t.Errorf("%d cancels pending after a 404", n)
	}
}

// TestCancelRetryIsBounded: while the Horde keeps failing DELETEs, the
// retries stop after a bounded number of attempts, before the Horde's own
// 20-minute expiry.
func TestCancelRetryIsBounded(t *testing.T) {
	r := newSvcRig(t, rigOptions{cfg: impossibleCfg()})
	r.failDeletes(0)
	r.impossibleJob()
	r.until(40*time.Minute, func() bool { return false })
	got := r.deleteOffsets()
	if len(got) != 1+cancelRetryAttempts {
		t.Errorf("%d DELETEs, want %d (the first and %d retries): %v", len(got), 1+cancelRetryAttempts, cancelRetryAttempts, got)
	}
	if last := got[len(got)-1]; last >= hordeRequestLifetime {
		t.Errorf("last DELETE %s after giving up, want it within the Horde's %s expiry", last, hordeRequestLifetime)
	}
	if n := r.svc.pendingCancels(); n != 0 {
		t.Errorf("%d cancels still pending after the last attempt", n)
	}
}

// TestCallerCancelIsRetried: a /v1 caller that leaves has its request
// deleted at the Horde even when the first DELETE fails.
func TestCallerCancelIsRetried(t *testing.T) {
	// A slow worker: the request is still running when the caller leaves.
	r := newSvcRig(t, rigOptions{horde: []hordetest.Option{longAnswers, hordetest.WithWorkers(
		hordetest.Worker{Name: "slow", Models: []string{fimbulvetr}, TokensPerSecond: 0.05},
	)}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.failDeletes(0)
	errc := make(chan error, 1)
	r.goComplete(ctx, chat("leave early"), nil, func(_ *Result, err error) { errc <- err })
	var err error
	left := false
	if !r.until(10*time.Minute, func() bool {
		if !left && len(r.submits()) == 1 {
			left = true
			cancel()
		}
		select {
		case err = <-errc:
			return true
		default:
			return false
		}
	}) {
		t.Fatal("Complete did not return after the caller left")
	}
	if Classify(err).Code != CodeCanceled {
		t.Fatalf("err = %v, want %s", err, CodeCanceled)
	}
	id := r.fake.RequestIDs()[0]
	if r.cancelledAtHorde(id) || r.svc.pendingCancels() != 1 {
		t.Fatalf("cancelled %v with %d pending, want a pending retry", r.cancelledAtHorde(id), r.svc.pendingCancels())
	}
	r.fake.ClearFaults()
	if !r.until(time.Minute, func() bool { return r.cancelledAtHorde(id) }) {
		t.Fatal("the request of the caller who left is still live at the Horde")
	}
}

// A /v1 job whose cancel the Horde did not take keeps its journal entry
// open while the cancel is retried: the retry closes it once the request
// is deleted, and a restart in between deletes the request too.
func TestPendingCancelKeepsTheJournalEntryOpen(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) {
			store := newMemStore()
			r := newSvcRig(t, rigOptions{store: store, horde: []hordetest.Option{longAnswers, hordetest.WithWorkers(
				hordetest.Worker{Name: "slow", Models: []string{fimbulvetr}, TokensPerSecond: 0.05},
			)}})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r.failDeletes(0)
			errc := make(chan error, 1)
			r.goComplete(ctx, chat("leave early"), nil, func(_ *Result, err error) { errc <- err })
			left := false
			if !r.until(10*time.Minute, func() bool {
				if !left && len(r.submits()) == 1 {
					left = true
					cancel()
				}
				return len(errc) == 1
			}) {
				t.Fatal("Complete did not return after the caller left")
			}
			open, err := store.UnfinishedJobs(context.Background())
			if err != nil || len(open) != 1 || r.svc.pendingCancels() != 1 {
				t.Fatalf("open entries %d (%v), pending cancels %d; want the entry open while the cancel is pending", len(open), err, r.svc.pendingCancels())
			}
			hordeID := open[0].HordeID
			r.fake.ClearFaults()
			if restart {
				r.svc.Close() // the pending cancel dies with the process
				r = newSvcRig(t, rigOptions{store: store, fake: r.fake})
				r.settle()
			}
			if !r.until(time.Minute, func() bool { return r.cancelledAtHorde(hordeID) }) {
				t.Fatal("the request is still live at the Horde")
			}
			r.settle()
			if open, _ := store.UnfinishedJobs(context.Background()); len(open) != 0 {
				t.Fatalf("%d entries still open after the cancel", len(open))
			}
			if j := store.job(open[0].ID); j.state != JobCancelled {
				t.Fatalf("journal state %q, want %q", j.state, JobCancelled)
			}
		})
	}
}
