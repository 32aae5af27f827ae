package hordetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestJobLifecycle(t *testing.T) {
	h := newQuiet(t)
	w := h.AddWorker(Worker{Name: "w", Models: []string{"koboldcpp/Test-13B"}, TokensPerSecond: 10})
	id := mustSubmit(t, h, `{"prompt":"hi","models":["koboldcpp/Test-13B"],"params":{"max_length":100}}`)

	st := mustStatus(t, h, id)
	want := Status{Processing: 1, WaitTime: 10, IsPossible: true, Generations: []Generation{}}
	if mustJSON(t, st) != mustJSON(t, want) {
		t.Fatalf("at 0s: %+v", st)
	}
	h.Advance(9 * time.Second)
	if st = mustStatus(t, h, id); st.Processing != 1 || st.WaitTime != 1 || st.Done {
		t.Fatalf("at 9s: %+v", st)
	}
	h.Advance(time.Second)
	st, r := getStatus(t, h, id)
	if !st.Done || st.Finished != 1 || st.Processing != 0 || st.Kudos != 45 || len(st.Generations) != 1 {
		t.Fatalf("at 10s: %+v", st)
	}
	g := st.Generations[0]
	if g.Text != strings.Repeat("x", 400) || g.WorkerID != w.ID || g.WorkerName != "w" ||
		g.Model != "koboldcpp/Test-13B" || g.State != "ok" {
		t.Errorf("generation %+v", g)
	}
	// The exact wire shape, including seed 0 and an empty gen_metadata list.
	var raw map[string]json.RawMessage
	r.decode(t, &raw)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range raw {
			if !yield(k) {
				return
			}
		}
	})
	if got := strings.Join(keys, ","); got != "done,faulted,finished,generations,is_possible,kudos,processing,queue_position,restarted,wait_time,waiting" {
		t.Errorf("status keys %s", got)
	}
	if !bytes.Contains(raw["generations"], []byte(`"seed":0`)) || !bytes.Contains(raw["generations"], []byte(`"gen_metadata":[]`)) {
		t.Errorf("generations %s", raw["generations"])
	}
	// 100 tokens of a 13B model at 2048 context cost 44.2 + 1 tax.
	if u, _ := h.User(TestAPIKey); u.Kudos != 1000-45.2 {
		t.Errorf("user kudos %v", u.Kudos)
	}
}

func TestAnonymousKudosNotTracked(t *testing.T) {
	h := newQuiet(t)
	h.AddWorker(Worker{Name: "w"})
	id := mustSubmitAs(t, h, AnonymousKey, `{"prompt":"hi"}`)
	st, err := h.AdvanceUntilDone(id, time.Minute)
	if err != nil || st.Kudos == 0 {
		t.Fatalf("%v %+v", err, st)
	}
	if u, _ := h.User(AnonymousKey); u.Kudos != 0 {
		t.Errorf("anonymous kudos %v", u.Kudos)
	}
}

// scenario builds a busy horde with slow workers, TTL aborts and faults.
func scenario(t *testing.T) (*Server, []string) {
	h := newQuiet(t, WithUsers(User{APIKey: "rich", Kudos: 1e6, Concurrency: 100}))
	h.AddWorker(Worker{Name: "fast", Models: []string{"m-7B", "m-13B"}, TokensPerSecond: 7, Threads: 2})
	h.AddWorker(Worker{Name: "slow", Models: []string{"m-13B"}, TokensPerSecond: 3, Threads: 1})
	h.FaultJobs(1)
	var ids []string
	for i, body := range []string{
		`{"prompt":"a","models":["m-13B"],"params":{"max_length":500,"n":2}}`,
		`{"prompt":"b","params":{"max_length":120,"n":3}}`,
		`{"prompt":"c","models":["m-7B"],"params":{"max_length":64}}`,
		`{"prompt":"d","models":["m-13B"],"params":{"max_length":300}}`,
	} {
		key := TestAPIKey
		if i%2 == 1 {
			key = "rich"
		}
		ids = append(ids, mustSubmitAs(t, h, key, body))
	}
	return h, ids
}

func TestAdvanceInOneStepEqualsManySteps(t *testing.T) {
	one, ids := scenario(t)
	many, ids2 := scenario(t)
	if !slices.Equal(ids, ids2) {
		t.Fatal("ids are not reproducible")
	}
	compare := func(at string) {
		t.Helper()
		for _, id := range ids {
			a, b := mustJSON(t, mustStatus(t, one, id)), mustJSON(t, mustStatus(t, many, id))
			if a != b {
				t.Fatalf("%s: request %s differs:\none  %s\nmany %s", at, id, a, b)
			}
		}
	}
	one.Advance(90 * time.Second)
	for range 90 {
		many.Advance(time.Second)
	}
	compare("90s")
	one.Advance(410 * time.Second)
	for range 41 {
		many.Advance(10 * time.Second)
	}
	compare("500s")
	if st := mustStatus(t, one, ids[0]); st.Restarted == 0 || st.Finished == 0 {
		t.Errorf("scenario did not exercise restarts: %+v", st)
	}
}

func TestWorkerMatching(t *testing.T) {
	type wk = Worker
	plain := wk{Name: "plain", Models: []string{"m-7B"}, MaxLength: 256, MaxContextLength: 4096, TokensPerSecond: 10}
	tests := []struct {
		name      string
		workers   []Worker
		body      string // may use {id:NAME}
		wantBy    string // "" means nobody can serve it
		wantModel string
	}{
		{name: "model matches", workers: []Worker{plain}, body: `{"models":["m-7B"]}`, wantBy: "plain", wantModel: "m-7B"},
		{name: "model differs", workers: []Worker{plain}, body: `{"models":["other-7B"]}`},
		{name: "no models means any", workers: []Worker{plain}, body: `{}`, wantBy: "plain", wantModel: "m-7B"},
		{name: "one of several models", workers: []Worker{plain}, body: `{"models":["other-7B","m-7B"]}`, wantBy: "plain", wantModel: "m-7B"},
		{name: "max_length too long", workers: []Worker{plain}, body: `{"params":{"max_length":300}}`},
		{name: "context too long", workers: []Worker{plain}, body: `{"params":{"max_context_length":8192}}`},
		{name: "trusted only", workers: []Worker{plain}, body: `{"trusted_workers":true}`},
		{name: "trusted worker", workers: []Worker{plain, {Name: "trusted", Trusted: true}}, body: `{"trusted_workers":true}`, wantBy: "trusted"},
		{name: "whitelist", workers: []Worker{plain, {Name: "other"}}, body: `{"workers":["{id:other}"]}`, wantBy: "other"},
		{name: "blacklist", workers: []Worker{plain, {Name: "other"}}, body: `{"workers":["{id:plain}"],"worker_blacklist":true}`, wantBy: "other"},
		{name: "blacklist of the only worker", workers: []Worker{plain}, body: `{"workers":["{id:plain}"],"worker_blacklist":true}`},
		{name: "unvalidated backend", workers: []Worker{{Name: "old", BridgeAgent: "KoboldAI Horde Bridge:20:https://x"}}, body: `{"validated_backends":true}`},
		{name: "unvalidated backend allowed", workers: []Worker{{Name: "old", BridgeAgent: "KoboldAI Horde Bridge:20:https://x"}}, body: `{"validated_backends":false}`, wantBy: "old"},
		{name: "validated aphrodite", workers: []Worker{{Name: "aph", BridgeAgent: "AI Horde Worker~aphrodite~oai/kai:5:https://x"}}, body: `{"validated_backends":true}`, wantBy: "aph"},
		{name: "slow worker excluded for 7B", workers: []Worker{{Name: "s", Models: []string{"m-7B"}, TokensPerSecond: 4.9}}, body: `{"slow_workers":false}`},
		{name: "4 t/s is enough for 13B", workers: []Worker{{Name: "s", Models: []string{"m-13B"}, TokensPerSecond: 4}}, body: `{"slow_workers":false}`, wantBy: "s"},
		{name: "3 t/s is enough for 20B", workers: []Worker{{Name: "s", Models: []string{"m-20B"}, TokensPerSecond: 3}}, body: `{"slow_workers":false}`, wantBy: "s"},
		{name: "slow worker with slow_workers true", workers: []Worker{{Name: "s", Models: []string{"m-7B"}, TokensPerSecond: 1}}, body: `{}`, wantBy: "s"},
		{name: "softprompt held", workers: []Worker{plain, {Name: "sp", Softprompts: []string{"fantasy"}}}, body: `{"softprompt":"fantasy"}`, wantBy: "sp"},
		{name: "softprompt missing", workers: []Worker{plain}, body: `{"softprompt":"fantasy"}`},
		{name: "offline worker", workers: []Worker{{Name: "off", Offline: true}}, body: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newQuiet(t, WithWorkers(tt.workers...))
			body := tt.body
			for _, w := range h.Workers() {
				body = strings.ReplaceAll(body, "{id:"+w.Name+"}", w.ID)
			}
			body = `{"prompt":"hi",` + strings.TrimPrefix(body, "{")
			if body == `{"prompt":"hi",}` {
				body = `{"prompt":"hi"}`
			}
			r := submitAs(t, h, TestAPIKey, body)
			if r.status != http.StatusAccepted {
				t.Fatalf("submit %s: %d %s", body, r.status, r.body)
			}
			var out asyncBody
			r.decode(t, &out)
			st, err := h.AdvanceUntilDone(out.ID, 5*time.Minute)
			if tt.wantBy == "" {
				if err == nil || st.IsPossible || out.Message != msgNoWorkers {
					t.Fatalf("served or possible: %v %+v %q", err, st, out.Message)
				}
				return
			}
			if err != nil || out.Message != "" {
				t.Fatalf("%v %q", err, out.Message)
			}
			g := st.Generations[0]
			if g.WorkerName != tt.wantBy || (tt.wantModel != "" && g.Model != tt.wantModel) {
				t.Errorf("served by %s with %s", g.WorkerName, g.Model)
			}
		})
	}
}

func TestPriorityAndAgeing(t *testing.T) {
	h := newQuiet(t, WithUsers(User{APIKey: "hi", Kudos: 80}, User{APIKey: "top", Kudos: 500}))
	h.AddWorker(Worker{Name: "w", MaxLength: 1024, TokensPerSecond: 10})
	mustSubmit(t, h, `{"prompt":"blocker","params":{"max_length":1000}}`) // busy for 100 s
	a := mustSubmitAs(t, h, AnonymousKey, `{"prompt":"a"}`)
	if info, _ := h.Request(a); info.Priority != 0 {
		t.Fatalf("anonymous priority %d", info.Priority)
	}
	h.Advance(25 * time.Second) // a aged twice: 100
	b := mustSubmitAs(t, h, "hi", `{"prompt":"b"}`)
	if pa, pb := mustStatus(t, h, a).QueuePosition, mustStatus(t, h, b).QueuePosition; pa != 1 || pb != 2 {
		t.Fatalf("aged anonymous should lead: a=%d b=%d", pa, pb)
	}
	c := mustSubmitAs(t, h, "top", `{"prompt":"c"}`)
	if pc := mustStatus(t, h, c).QueuePosition; pc != 1 {
		t.Fatalf("500 kudos should lead, got %d", pc)
	}
	h.Advance(75 * time.Second) // the blocker finishes at 100 s
	if st := mustStatus(t, h, c); st.Processing != 1 {
		t.Fatalf("c should be picked first: %+v", st)
	}
	if ia, _ := h.Request(a); ia.Priority != 500 {
		t.Errorf("a priority after 100 s = %d, want 500", ia.Priority)
	}
}

func TestQueuePositionAndWaitTime(t *testing.T) {
	h := newQuiet(t)
	h.AddWorker(Worker{Name: "w", TokensPerSecond: 10})
	r1 := mustSubmit(t, h, `{"prompt":"1","params":{"max_length":100}}`)
	r2 := mustSubmit(t, h, `{"prompt":"2","params":{"max_length":100,"n":2}}`)
	r3 := mustSubmit(t, h, `{"prompt":"3","params":{"max_length":50}}`)
	type qw struct{ pos, wait int }
	steps := []struct {
		advance time.Duration
		want    [3]qw
	}{
		{0, [3]qw{{0, 10}, {1, 20}, {2, 25}}},
		{4 * time.Second, [3]qw{{0, 6}, {1, 20}, {2, 25}}},
		{6 * time.Second, [3]qw{{0, 0}, {1, 20}, {2, 15}}}, // r2's first job runs
		{10 * time.Second, [3]qw{{0, 0}, {0, 10}, {1, 5}}}, // r2's second job runs
		{10 * time.Second, [3]qw{{0, 0}, {0, 0}, {0, 5}}},  // r3 runs
		{5 * time.Second, [3]qw{{0, 0}, {0, 0}, {0, 0}}},   // all done
	}
	for i, s := range steps {
		h.Advance(s.advance)
		for j, id := range []string{r1, r2, r3} {
			st, _ := getStatus(t, h, id)
			if got := (qw{st.QueuePosition, st.WaitTime}); got != s.want[j] {
				t.Errorf("step %d r%d: (queue_position, wait_time) = %v, want %v", i, j+1, got, s.want[j])
			}
		}
	}
	if !mustStatus(t, h, r3).Done {
		t.Error("r3 not done")
	}
}

func TestWaitTimeUsesAtMostQueuedThreads(t *testing.T) {
	h := newQuiet(t)
	h.AddWorker(Worker{Name: "w", TokensPerSecond: 10, Threads: 3, MaxLength: 1024})
	mustSubmit(t, h, `{"prompt":"busy","params":{"max_length":1000,"n":3}}`) // 100 s on every thread
	id := mustSubmit(t, h, `{"prompt":"waits","params":{"max_length":100}}`)
	// One queued job can use one of the three threads: 100 tokens / 10 t/s.
	if st := mustStatus(t, h, id); st.QueuePosition != 1 || st.WaitTime != 10 {
		t.Fatalf("%+v", st)
	}
}

func TestTTLRestartThenFaulted(t *testing.T) {
	h := newQuiet(t)
	h.AddWorker(Worker{Name: "crawler", TokensPerSecond: 0.5}) // 100 tokens take 200 s
	id := mustSubmit(t, h, `{"prompt":"hi","params":{"max_length":100}}`)
	steps := []struct {
		advance                        time.Duration
		processing, restarted, waiting int
		done, faulted                  bool
	}{
		{149 * time.Second, 1, 0, 0, false, false},
		{time.Second, 1, 1, 0, false, false}, // aborted at 150 s and picked up again
		{150 * time.Second, 1, 2, 0, false, false},
		{149 * time.Second, 1, 2, 0, false, false},
		{time.Second, 0, 3, 0, true, true}, // the third failure faults the request
		{10 * time.Minute, 0, 3, 0, true, true},
	}
	for i, s := range steps {
		h.Advance(s.advance)
		st := mustStatus(t, h, id)
		if st.Processing != s.processing || st.Restarted != s.restarted || st.Waiting != s.waiting ||
			st.Done != s.done || st.Faulted != s.faulted || st.Finished != 0 {
			t.Fatalf("step %d: %+v", i, st)
		}
	}
	var ws []workerBody
	call(t, h, http.MethodGet, "/v2/workers?type=text", "", nil).decode(t, &ws)
	if len(ws) != 1 || ws[0].UncompletedJobs != 3 {
		t.Errorf("workers %+v", ws)
	}
}

func TestFaultJobs(t *testing.T) {
	tests := []struct {
		name          string
		faults        int
		wantFinished  int
		wantRestarted int
		wantFaulted   bool
		wantDoneAt    time.Duration
	}{
		{"one fault restarts", 1, 1, 1, false, 20 * time.Second},
		{"two faults restart twice", 2, 1, 2, false, 30 * time.Second},
		{"three faults fault the request", 3, 0, 3, true, 30 * time.Second},
		{"until cleared", -1, 0, 3, true, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newQuiet(t)
			h.AddWorker(Worker{Name: "w", TokensPerSecond: 10})
			h.FaultJobs(tt.faults)
			start := h.Now()
			id := mustSubmit(t, h, `{"prompt":"hi","params":{"max_length":100}}`)
			st, err := h.AdvanceUntilDone(id, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if st.Finished != tt.wantFinished || st.Restarted != tt.wantRestarted || st.Faulted != tt.wantFaulted {
				t.Errorf("%+v", st)
			}
			if got := h.Now().Sub(start); got != tt.wantDoneAt {
				t.Errorf("done after %s, want %s", got, tt.wantDoneAt)
			}
		})
	}
}

func TestWorkerDropOut(t *testing.T) {
	h := newQuiet(t)
	h.AddWorker(Worker{Name: "w", TokensPerSecond: 10})
	id := mustSubmit(t, h, `{"prompt":"hi","params":{"max_length":100}}`)
	h.Advance(5 * time.Second)
	h.SetWorkerOnline("w", false)
	listed := func() bool {
		var ws []workerBody
		call(t, h, http.MethodGet, "/v2/workers?type=text", "", nil).decode(t, &ws)
		return len(ws) == 1
	}
	h.Advance(10 * time.Second)
	if st := mustStatus(t, h, id); st.Processing != 1 || st.Finished != 0 {
		t.Fatalf("a dropped job must not finish: %+v", st)
	}
	h.Advance(135 * time.Second) // TTL lapses at 150 s
	st, _ := getStatus(t, h, id)
	if st.Processing != 0 || st.Restarted != 1 || st.Waiting != 1 || !st.IsPossible {
		t.Fatalf("after TTL: %+v", st)
	}
	h.Advance(154 * time.Second) // 304 s: last check-in was 299 s ago
	if !listed() {
		t.Error("worker should still be listed 299 s after its last check-in")
	}
	h.Advance(6 * time.Second) // 310 s
	if listed() {
		t.Error("worker listed 305 s after its last check-in")
	}
	if st, _ = getStatus(t, h, id); st.IsPossible {
		t.Errorf("is_possible with no online worker: %+v", st)
	}
	h.SetWorkerOnline("w", true)
	if st = mustStatus(t, h, id); st.Processing != 1 || !st.IsPossible {
		t.Fatalf("reconnected worker should pick the job: %+v", st)
	}
	if st, err := h.AdvanceUntilDone(id, time.Minute); err != nil || st.Finished != 1 {
		t.Fatalf("%v %+v", err, st)
	}
}

func TestIsPossibleCache(t *testing.T) {
	h := newQuiet(t)
	h.AddWorker(Worker{Name: "w", TokensPerSecond: 10})
	blocker := mustSubmit(t, h, `{"prompt":"blocker","params":{"max_length":500}}`) // 50 s
	waiter := mustSubmit(t, h, `{"prompt":"waiter"}`)
	h.Advance(time.Second)
	h.RemoveWorker("w")
	possible := func(id string) bool {
		st, r := getStatus(t, h, id)
		if r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
		return st.IsPossible
	}
	h.Advance(58 * time.Second) // 59 s: the verdict cached at submit still holds
	if !possible(waiter) {
		t.Error("is_possible changed before 60 s")
	}
	h.Advance(time.Second) // 60 s
	if possible(waiter) {
		t.Error("is_possible still true after the cache expired")
	}
	if !possible(blocker) {
		t.Error("a request with a job in flight is always possible")
	}
	h.Advance(90 * time.Second) // the orphaned job's TTL lapsed
	if possible(blocker) {
		t.Error("blocker possible without workers or jobs")
	}
	if r := submitAs(t, h, TestAPIKey, `{"prompt":"x"}`); !strings.Contains(string(r.body), msgNoWorkers) {
		t.Errorf("submit without workers: %s", r.body)
	}
}

func TestExpiryAndCleanup(t *testing.T) {
	h := newQuiet(t)
	id := mustSubmit(t, h, `{"prompt":"nobody serves me"}`)
	h.Advance(20 * time.Minute) // expired exactly now; the tick at 20:00 keeps it
	if _, r := getStatus(t, h, id); r.status != 200 {
		t.Fatalf("at 20:00 status %d", r.status)
	}
	h.Advance(59 * time.Second)
	if _, r := getStatus(t, h, id); r.status != 200 {
		t.Fatalf("at 20:59 status %d", r.status)
	}
	h.Advance(time.Second) // the 21:00 cleanup tick deletes it
	_, r := getStatus(t, h, id)
	msg, rc, _ := r.errBody(t)
	if r.status != 404 || rc != "RequestNotFound" || msg != fmt.Sprintf("Text Waiting Prompt (Status) with ID '%s' not found.", id) {
		t.Fatalf("after cleanup: %d %q %q", r.status, rc, msg)
	}
	r = call(t, h, http.MethodDelete, "/v2/generate/text/status/"+id, "", nil)
	if _, rc, _ := r.errBody(t); r.status != 404 || rc != "RequestNotFound" {
		t.Fatalf("DELETE after cleanup: %d %s", r.status, r.body)
	}
}

func TestExpiryPushedByFinishedJob(t *testing.T) {
	h := newQuiet(t)
	id := mustSubmit(t, h, `{"prompt":"late"}`)
	h.Advance(1000 * time.Second)
	h.AddWorker(Worker{Name: "w", TokensPerSecond: 8}) // 80 tokens: done at 1010 s
	h.Advance(10 * time.Second)
	info, _ := h.Request(id)
	if want := DefaultStart.Add(1010 * time.Second).Add(20 * time.Minute); !info.Expiry.Equal(want) {
		t.Fatalf("expiry %s, want %s", info.Expiry, want)
	}
	h.Advance(1209 * time.Second) // 2219 s
	if _, ok := h.Status(id); !ok {
		t.Fatal("deleted before its pushed expiry")
	}
	h.Advance(time.Second) // the 2220 s tick
	if _, ok := h.Status(id); ok {
		t.Fatal("not deleted at the first tick after its expiry")
	}
}

func TestCancel(t *testing.T) {
	t.Run("waiting", func(t *testing.T) {
		h := newQuiet(t)
		id := mustSubmit(t, h, `{"prompt":"hi","params":{"n":2}}`)
		r := call(t, h, http.MethodDelete, "/v2/generate/text/status/"+id, "", nil)
		var st Status
		r.decode(t, &st)
		if r.status != 200 || st.Waiting != 2 || st.Done {
			t.Fatalf("DELETE answers the status before the cancel: %d %+v", r.status, st)
		}
		st, _ = getStatus(t, h, id)
		if st.Waiting != 0 || !st.Done || st.Finished != 0 {
			t.Fatalf("after cancel: %+v", st)
		}
		h.AddWorker(Worker{Name: "w"})
		if st = mustStatus(t, h, id); st.Processing != 0 {
			t.Fatalf("a cancelled request was picked up: %+v", st)
		}
		if info, _ := h.Request(id); !info.Cancelled {
			t.Error("request not marked cancelled")
		}
	})
	t.Run("in flight", func(t *testing.T) {
		h := newQuiet(t)
		h.AddWorker(Worker{Name: "w", TokensPerSecond: 10})
		id := mustSubmit(t, h, `{"prompt":"hi","params":{"n":3,"max_length":100}}`)
		h.Advance(5 * time.Second)
		var st Status
		call(t, h, http.MethodDelete, "/v2/generate/text/status/"+id, "", nil).decode(t, &st)
		if st.Processing != 1 || st.Waiting != 2 {
			t.Fatalf("DELETE answer %+v", st)
		}
		h.Advance(5 * time.Second)
		st = mustStatus(t, h, id)
		if st.Finished != 1 || st.Processing != 0 || st.Waiting != 0 || !st.Done {
			t.Fatalf("the running job must finish normally: %+v", st)
		}
		r := call(t, h, http.MethodDelete, "/v2/generate/text/status/"+id, "", nil)
		r.decode(t, &st)
		if len(st.Generations) != 1 || st.Kudos == 0 {
			t.Errorf("DELETE returns finished generations: %+v", st)
		}
		h.Advance(10 * time.Minute)
		if _, ok := h.Status(id); !ok {
			t.Error("a cancelled request stays until expiry")
		}
	})
	t.Run("in-flight job that fails is not re-queued", func(t *testing.T) {
		h := newQuiet(t)
		h.AddWorker(Worker{Name: "w", TokensPerSecond: 10})
		h.FaultJobs(1)
		id := mustSubmit(t, h, `{"prompt":"hi","params":{"max_length":100}}`)
		call(t, h, http.MethodDelete, "/v2/generate/text/status/"+id, "", nil)
		h.Advance(10 * time.Second)
		st := mustStatus(t, h, id)
		if st.Restarted != 1 || st.Waiting != 0 || st.Processing != 0 || !st.Done || st.Faulted {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		h := newQuiet(t)
		r := call(t, h, http.MethodDelete, "/v2/generate/text/status/nope", "", nil)
		msg, rc, _ := r.errBody(t)
		if r.status != 404 || rc != "RequestNotFound" || msg != "Text Waiting Prompt (Delete) with ID 'nope' not found." {
			t.Fatalf("%d %q %q", r.status, rc, msg)
		}
	})
}

func TestStatusCache(t *testing.T) {
	h := newQuiet(t)
	h.AddWorker(Worker{Name: "w", TokensPerSecond: 10})
	id := mustSubmit(t, h, `{"prompt":"hi","params":{"max_length":20}}`) // 2 s
	_, first := getStatus(t, h, id)
	h.Advance(999 * time.Millisecond)
	_, cached := getStatus(t, h, id)
	if !bytes.Equal(first.body, cached.body) {
		t.Fatalf("body changed within 1 s:\n%s\n%s", first.body, cached.body)
	}
	if fresh := mustStatus(t, h, id); fresh.WaitTime != 1 {
		t.Fatalf("fresh status %+v", fresh)
	}
	h.Advance(time.Millisecond)
	st, _ := getStatus(t, h, id)
	if st.WaitTime != 1 {
		t.Fatalf("cache not refreshed after 1 s: %+v", st)
	}
	h.Advance(time.Second)
	if st, _ = getStatus(t, h, id); !st.Done {
		t.Fatalf("at 2 s: %+v", st)
	}
}

func TestStopSequencesAndTruncation(t *testing.T) {
	tests := []struct {
		name   string
		output string
		params string
		want   string
	}{
		{"cut after the stop string", "Hello\nUser: more", `{"stop_sequence":["\nUser:"]}`, "Hello\nUser:"},
		{"earliest stop wins", "a END b STOP c", `{"stop_sequence":["STOP","END"]}`, "a END"},
		{"no stop present", "plain text", `{"stop_sequence":["###"]}`, "plain text"},
		{"truncated to max_length tokens", strings.Repeat("abcd", 30), `{"max_length":16}`, strings.Repeat("abcd", 16)},
		{"singleline", "first\nsecond", `{"singleline":true}`, "first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newQuiet(t, WithResponder(func(Job) string { return tt.output }))
			h.AddWorker(Worker{Name: "w"})
			id := mustSubmit(t, h, `{"prompt":"hi","params":`+tt.params+`}`)
			st, err := h.AdvanceUntilDone(id, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Generations[0].Text; got != tt.want {
				t.Errorf("text %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaultResponder(t *testing.T) {
	h := New(t, WithoutRateLimits())
	id := mustSubmit(t, h, `{"prompt":"System\n\nUser: ping\nAssistant:","params":{"max_length":64}}`)
	st, err := h.AdvanceUntilDone(id, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	text := st.Generations[0].Text
	if !strings.HasPrefix(text, "Echo: Assistant:") || len(text) > 64*4 || len(text) < 64*2 {
		t.Errorf("default text %q (%d chars)", text, len(text))
	}
}

func TestResponderSeesJob(t *testing.T) {
	var jobs []Job
	h := newQuiet(t, WithResponder(func(j Job) string { jobs = append(jobs, j); return "ok" }))
	h.AddWorker(Worker{Name: "w", Models: []string{"a-7B", "b-7B"}})
	id := mustSubmit(t, h, `{"prompt":"p","models":["b-7B"],"params":{"n":2,"max_length":32,"stop_sequence":["x"],"custom":1}}`)
	if _, err := h.AdvanceUntilDone(id, time.Minute); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[1].Index != 1 || jobs[0].Model != "b-7B" || jobs[0].Prompt != "p" ||
		jobs[0].MaxLength != 32 || jobs[0].MaxContextLength != 2048 || jobs[0].Params["custom"] == nil ||
		jobs[0].Username != "tester#1" || jobs[0].RequestID != id || jobs[0].WorkerName != "w" {
		t.Errorf("jobs %+v", jobs)
	}
	ids := []string{jobs[0].JobID, jobs[1].JobID}
	sort.Strings(ids)
	if ids[0] == ids[1] {
		t.Error("job ids repeat")
	}
}
