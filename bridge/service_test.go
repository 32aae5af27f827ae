package bridge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bridge/prompt"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// svcRig runs a Service against the fake Horde on one fake clock.
type svcRig struct {
	t     *testing.T
	fake  *hordetest.Server
	clock *clockwork.FakeClock
	svc   *Service
	store *memStore
	hooks bool // flush the fake's webhooks at every step
}

type rigOptions struct {
	cfg         Config
	store       *memStore
	operatorKey string
	fake        *hordetest.Server
	deliverers  map[string]Deliverer
	horde       []hordetest.Option
}

func newSvcRig(t *testing.T, o rigOptions) *svcRig {
	t.Helper()
	if o.cfg.MaxTokens == 0 {
		o.cfg = DefaultConfig()
	}
	if o.store == nil {
		o.store = newMemStore()
	}
	fake := o.fake
	if fake == nil {
		fake = hordetest.New(t, append([]hordetest.Option{hordetest.WithPasskey(testPasskey)}, o.horde...)...)
	}
	svc, err := New(o.cfg, Deps{
		Client: newTestClient(t, fake, o.operatorKey, 0), Store: o.store,
		IdentitySecret: testSecret, Clock: fake.Clock(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, d := range o.deliverers {
		svc.RegisterDeliverer(p, d)
	}
	if err := svc.RefreshModels(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	// Start refreshes the models once more in the background; a test that
	// changes the fake's workers must not race with it.
	select {
	case <-svc.loaded:
	case <-time.After(time.Minute): // hang guard only
		t.Fatal("the first model refresh did not end")
	}
	return &svcRig{t: t, fake: fake, clock: fake.FakeClock(), svc: svc, store: o.store}
}

// settle waits until neither the jobs nor the scheduler can do anything
// more before the clock moves.
func (r *svcRig) settle() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 2 { // a job may hand work to the scheduler and back
		if err := r.svc.waitIdle(ctx); err != nil {
			r.t.Fatalf("jobs did not settle: %v", err)
		}
		if _, err := r.svc.sched.waitSettled(ctx); err != nil {
			r.t.Fatalf("scheduler did not settle: %v", err)
		}
	}
}

// until moves the clock in steps of at most one second until cond holds,
// by at most limit of simulated time.
func (r *svcRig) until(limit time.Duration, cond func() bool) bool {
	r.t.Helper()
	end := r.clock.Now().Add(limit)
	for {
		r.settle()
		if r.hooks {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			if err := r.fake.FlushWebhooks(ctx); err != nil {
				r.t.Fatal(err)
			}
			cancel()
			r.settle()
		}
		if cond() {
			return true
		}
		if !r.clock.Now().Before(end) {
			return false
		}
		r.fake.Advance(min(time.Second, end.Sub(r.clock.Now())))
	}
}

// goComplete runs Complete in a goroutine that counts as busy from now
// on, so the clock cannot move before the job is in the scheduler's view.
func (r *svcRig) goComplete(ctx context.Context, req Request, progress ProgressFunc, done func(*Result, error)) {
	r.svc.busyAdd(1)
	go func() { done(r.svc.completeBusy(ctx, req, progress)) }()
}

// complete runs Complete in the background and drives the clock until it returns.
func (r *svcRig) complete(ctx context.Context, req Request, progress ProgressFunc) (*Result, error) {
	r.t.Helper()
	type out struct {
		res *Result
		err error
	}
	ch := make(chan out, 1)
	r.goComplete(ctx, req, progress, func(res *Result, err error) { ch <- out{res, err} })
	var got out
	if !r.until(30*time.Minute, func() bool {
		select {
		case got = <-ch:
			return true
		default:
			return false
		}
	}) {
		r.t.Fatal("Complete did not return within 30 simulated minutes")
	}
	return got.res, got.err
}

func (r *svcRig) submits() []hordetest.RecordedRequest {
	return r.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")
}

func (r *svcRig) deletes() []hordetest.RecordedRequest {
	return r.fake.RequestsTo(http.MethodDelete, "/api/v2/generate/text/status/")
}

// longAnswers makes every job run its full max_length (the default fake
// echoes the template's last line, whose "###" ends Alpaca answers early).
var longAnswers = hordetest.WithResponder(func(j hordetest.Job) string { return strings.Repeat("word ", j.MaxLength) })

var discordUser = Principal{Platform: "discord", UserID: "42", StoreUserID: 7}

func chat(s string) Request {
	return Request{Principal: discordUser, Models: []string{"Fimbulvetr-11B-v2"}, Messages: []prompt.Message{{Role: "user", Content: s}}}
}

func TestCompleteReturnsAnswer(t *testing.T) {
	r := newSvcRig(t, rigOptions{})
	var mu sync.Mutex
	stages := map[Stage]bool{}
	res, err := r.complete(context.Background(), chat("Hello there"), func(p Progress) {
		mu.Lock()
		stages[p.Stage] = true
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 1 || res.Choices[0].Text == "" || res.Model != "koboldcpp/Fimbulvetr-11B-v2" || res.HordeID == "" || res.PromptTokens == 0 || res.CompletionTokens == 0 {
		t.Fatalf("result = %+v", res)
	}
	if strings.Contains(res.Choices[0].Text, "###") {
		t.Errorf("template markers left in the answer: %q", res.Choices[0].Text)
	}
	mu.Lock()
	if !stages[StageDone] {
		t.Errorf("stages = %v", stages)
	}
	mu.Unlock()
	subs := r.submits()
	if len(subs) != 1 {
		t.Fatalf("submits = %d", len(subs))
	}
	want := r.svc.ids.PseudoAddress("discord:42").String()
	if h := subs[0].Header; h.Get("Proxied-For") != want || h.Get("Proxy-Authorization") != testPasskey || h.Get("apikey") != hordeapi.AnonymousKey || !strings.HasPrefix(h.Get("Client-Agent"), "hordechat:") {
		t.Errorf("submit headers = %v", h)
	}
	if !subs[0].Proxied || subs[0].Identity != want {
		t.Errorf("the fake did not honour the identity: %+v", subs[0])
	}
	for _, st := range r.fake.RequestsTo(http.MethodGet, "/api/v2/generate/text/status/") {
		if st.Header.Get("Proxied-For") != want {
			t.Errorf("status poll without the user's identity: %v", st.Header)
		}
	}
	if got := r.store.states(); got[JobDone] != 1 || len(got) != 1 {
		t.Errorf("journal states = %v", got)
	}
}

func TestKeyResolution(t *testing.T) {
	tests := []struct {
		name        string
		operatorKey string
		linked      string
		principal   Principal
		service     bool
		wantKey     string
		wantAccount string
	}{
		{name: "linked key wins", operatorKey: "op-key-service-01", linked: hordetest.TestAPIKey, principal: discordUser, wantKey: hordetest.TestAPIKey},
		{name: "operator key", operatorKey: "op-key-service-01", principal: discordUser, wantKey: "op-key-service-01"},
		{name: "service account names the user", operatorKey: "op-key-service-01", principal: discordUser, service: true, wantKey: "op-key-service-01", wantAccount: "discord:42"},
		{name: "linked key never sends proxied_account", operatorKey: "op-key-service-01", linked: hordetest.TestAPIKey, principal: discordUser, service: true, wantKey: hordetest.TestAPIKey},
		{name: "anonymous", principal: discordUser, wantKey: hordeapi.AnonymousKey},
		{name: "pass-through key", operatorKey: "op-key-service-01", principal: Principal{Platform: "v1", ClientIP: "203.0.113.9", APIKey: hordetest.TestAPIKey}, wantKey: hordetest.TestAPIKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ServiceAccount = tt.service
			store := newMemStore()
			if tt.linked != "" {
				store.keys[7] = tt.linked
			}
			r := newSvcRig(t, rigOptions{cfg: cfg, store: store, operatorKey: tt.operatorKey, horde: []hordetest.Option{
				hordetest.WithUsers(hordetest.User{APIKey: "op-key-service-01", Username: "operator", Kudos: 100000, Service: true}),
			}})
			req := chat("hi")
			req.Principal = tt.principal
			if _, err := r.complete(context.Background(), req, nil); err != nil {
				t.Fatal(err)
			}
			sub := r.submits()[0]
			if got := sub.Header.Get("apikey"); got != tt.wantKey {
				t.Errorf("apikey = %q, want %q", got, tt.wantKey)
			}
			var body struct {
				ProxiedAccount string `json:"proxied_account"`
			}
			_ = json.Unmarshal(sub.Body, &body)
			if body.ProxiedAccount != tt.wantAccount {
				t.Errorf("proxied_account = %q, want %q", body.ProxiedAccount, tt.wantAccount)
			}
			if tt.principal.ClientIP != "" && sub.Header.Get("Proxied-For") != tt.principal.ClientIP {
				t.Errorf("Proxied-For = %q, want the client IP", sub.Header.Get("Proxied-For"))
			}
		})
	}
}

func TestCancelDeletesHordeRequest(t *testing.T) {
	r := newSvcRig(t, rigOptions{horde: []hordetest.Option{longAnswers, hordetest.WithWorkers(
		hordetest.Worker{Name: "slow", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}, TokensPerSecond: 0.05},
	)}})
	ctx, cancel := context.WithCancel(context.Background())
	submitted := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	r.goComplete(ctx, chat("take your time"), func(p Progress) {
		if p.Stage == StageQueued || p.Stage == StageProcessing {
			once.Do(func() { close(submitted) })
		}
	}, func(_ *Result, err error) { done <- err })
	r.until(time.Minute, func() bool {
		select {
		case <-submitted:
			return true
		default:
			return false
		}
	})
	cancel()
	var err error
	r.until(time.Minute, func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	if e := Classify(err); e == nil || e.Code != CodeCanceled {
		t.Fatalf("err = %v", err)
	}
	if len(r.deletes()) != 1 {
		for _, rq := range r.fake.Requests() {
			t.Logf("%s %s", rq.Method, rq.Path)
		}
		t.Fatalf("deletes = %d, want 1 (err %v)", len(r.deletes()), err)
	}
	if got := r.store.states(); got[JobCancelled] != 1 {
		t.Errorf("journal = %v", got)
	}
}

// deliveries collects what a Deliverer receives.
type deliveries struct {
	mu   sync.Mutex
	got  []Delivery
	fail error
}

func (d *deliveries) Deliver(_ context.Context, dl Delivery) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	d.got = append(d.got, dl)
	return nil
}

func (d *deliveries) all() []Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Delivery(nil), d.got...)
}

func TestSubmitDelivers(t *testing.T) {
	d := &deliveries{}
	r := newSvcRig(t, rigOptions{deliverers: map[string]Deliverer{"discord": d}})
	req := chat("hello")
	req.Target = "discord:chan-1:msg-9"
	id, err := r.svc.Submit(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.until(10*time.Minute, func() bool { return len(d.all()) == 1 && r.store.states()[JobDone] == 1 }) {
		t.Fatalf("not delivered: %v %v", d.all(), r.store.states())
	}
	got := d.all()[0]
	if got.JobID != id || got.Target != req.Target || got.Result == nil || got.Err != nil || got.Resumed {
		t.Errorf("delivery = %+v", got)
	}
	if j := r.store.job(id); len(j.finished) == 0 {
		t.Error("finished job has no stored result")
	}
}

func TestSubmitErrorsAreReturnedNotDelivered(t *testing.T) {
	d := &deliveries{}
	r := newSvcRig(t, rigOptions{deliverers: map[string]Deliverer{"discord": d}})
	r.fake.SetMaintenance(true)
	req := chat("hello")
	req.Target = "discord:chan-1"
	_, err := r.svc.Submit(context.Background(), req, nil)
	if Classify(err).Code != CodeMaintenance {
		t.Fatalf("err = %v", err)
	}
	if len(d.all()) != 0 || r.store.states()[JobFailed] != 1 {
		t.Errorf("deliveries %v, journal %v", d.all(), r.store.states())
	}
	if _, err := r.svc.Submit(context.Background(), Request{Target: "nowhere:1"}, nil); err == nil {
		t.Error("submit to an unregistered platform accepted")
	}
}

// A restart mid-job still delivers, exactly once.
func TestResumeAfterRestart(t *testing.T) {
	store := newMemStore()
	first := &deliveries{}
	r1 := newSvcRig(t, rigOptions{store: store, deliverers: map[string]Deliverer{"discord": first}, horde: []hordetest.Option{longAnswers, hordetest.WithWorkers(
		hordetest.Worker{Name: "w", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}, TokensPerSecond: 5},
	)}})
	req := chat("survive a restart")
	req.Target = "discord:chan-2"
	id, err := r1.svc.Submit(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	r1.fake.Advance(5 * time.Second)
	r1.settle()
	r1.svc.Close() // the process goes away; the Horde keeps working
	if n := r1.store.states()[""]; n != 1 {
		t.Fatalf("job not left in the journal: %v", r1.store.states())
	}
	second := &deliveries{}
	r2 := newSvcRig(t, rigOptions{store: store, fake: r1.fake, deliverers: map[string]Deliverer{"discord": second}})
	if !r2.until(10*time.Minute, func() bool { return len(second.all()) == 1 && store.states()[JobDone] == 1 }) {
		t.Fatalf("not delivered after restart: %v", store.states())
	}
	got := second.all()[0]
	if got.JobID != id || !got.Resumed || got.Result == nil {
		t.Errorf("delivery = %+v", got)
	}
	if len(first.all()) != 0 {
		t.Errorf("the stopped process delivered too: %v", first.all())
	}
	if n := len(r2.submits()); n != 1 {
		t.Errorf("resubmitted a request the Horde still had: %d submits", n)
	}
}

func TestResumeDeliversSavedResultWithoutTheHorde(t *testing.T) {
	store := newMemStore()
	saved, _ := json.Marshal(&Result{JobID: "job-saved", Choices: []Choice{{Text: "kept answer"}}})
	payload, _ := json.Marshal(journalPayload{Prepared: &prepared{Template: "chatml"}, Principal: savePrincipal(discordUser)})
	store.CreateJob(context.Background(), JournalEntry{ID: "job-saved", HordeID: "gone", Target: "discord:c", Payload: payload})
	store.SaveJobResult(context.Background(), "job-saved", saved)
	d := &deliveries{}
	r := newSvcRig(t, rigOptions{store: store, deliverers: map[string]Deliverer{"discord": d}})
	r.settle() // kept answers are delivered after Start, in the background
	got := d.all()
	if len(got) != 1 || got[0].Result.Choices[0].Text != "kept answer" || !got[0].Resumed {
		t.Fatalf("deliveries = %+v", got)
	}
	if store.job("job-saved").state != JobDone {
		t.Errorf("journal = %+v", store.job("job-saved"))
	}
	if n := len(r.fake.RequestsTo("", "/api/v2/generate/text/")); n != 0 {
		t.Errorf("%d horde text calls for a kept answer", n)
	}
}

func TestResumeCancelsOrphanedV1Jobs(t *testing.T) {
	fake := hordetest.New(t, hordetest.WithPasskey(testPasskey))
	c := newTestClient(t, fake, "", 0)
	resp, err := c.SubmitText(context.Background(), hordeapi.Caller{}, &hordeapi.TextRequest{Prompt: "orphan"})
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	payload, _ := json.Marshal(journalPayload{Prepared: &prepared{}, Principal: savedPrincipal{Platform: "v1", ClientIP: "203.0.113.1"}})
	store.CreateJob(context.Background(), JournalEntry{ID: "job-v1", HordeID: resp.ID, Payload: payload})
	newSvcRig(t, rigOptions{store: store, fake: fake})
	if info, _ := fake.Request(resp.ID); !info.Cancelled {
		t.Error("orphaned /v1 job not cancelled at the Horde")
	}
	if store.job("job-v1").state != JobCancelled {
		t.Errorf("journal = %+v", store.job("job-v1"))
	}
}

func TestLostRequestIsResubmittedOnce(t *testing.T) {
	tests := []struct {
		name     string
		resubmit int
		wantErr  Code
		submits  int
	}{
		{name: "resubmitted", resubmit: 1, submits: 2},
		{name: "reported when resubmitting is off", resubmit: 0, wantErr: CodeExpired, submits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ResubmitLost = tt.resubmit
			r := newSvcRig(t, rigOptions{cfg: cfg, horde: []hordetest.Option{longAnswers, hordetest.WithWorkers(
				hordetest.Worker{Name: "w", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}, TokensPerSecond: 5},
			)}})
			vanished := false
			res, err := func() (*Result, error) {
				type out struct {
					res *Result
					err error
				}
				ch := make(chan out, 1)
				r.goComplete(context.Background(), chat("x"), nil, func(res *Result, err error) { ch <- out{res, err} })
				var got out
				r.until(30*time.Minute, func() bool {
					if !vanished {
						if subs := r.submits(); len(subs) == 1 {
							ids := r.fake.RequestIDs()
							if len(ids) == 1 {
								r.fake.Vanish(ids[0])
								vanished = true
							}
						}
					}
					select {
					case got = <-ch:
						return true
					default:
						return false
					}
				})
				return got.res, got.err
			}()
			if tt.wantErr != "" {
				if Classify(err).Code != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
			} else if err != nil || res == nil {
				t.Fatalf("err = %v", err)
			}
			if n := len(r.submits()); n != tt.submits {
				t.Errorf("submits = %d, want %d", n, tt.submits)
			}
		})
	}
}

func TestImpossibleRequestIsCancelled(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NotPossibleTimeout = 30 * time.Second
	r := newSvcRig(t, rigOptions{cfg: cfg})
	r.fake.RemoveWorker("fake-koboldcpp-fimbulvetr") // the registry still lists it
	_, err := r.complete(context.Background(), chat("anyone?"), nil)
	e := Classify(err)
	if e.Code != CodeNotPossible || !strings.Contains(e.Message, "Try again in a few minutes") {
		t.Fatalf("err = %#v", e)
	}
	if len(r.deletes()) != 1 {
		t.Errorf("impossible request not cancelled at the Horde")
	}
}

func TestJobTimeout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.JobTimeout = 2 * time.Minute
	r := newSvcRig(t, rigOptions{cfg: cfg, horde: []hordetest.Option{longAnswers, hordetest.WithWorkers(
		hordetest.Worker{Name: "busy", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}, TokensPerSecond: 0.05},
	)}})
	_, err := r.complete(context.Background(), chat("slow"), nil)
	if Classify(err).Code != CodeTimeout {
		t.Fatalf("err = %v", err)
	}
	if len(r.deletes()) != 1 {
		t.Error("timed-out request not cancelled at the Horde")
	}
}

func TestFaultedRequest(t *testing.T) {
	r := newSvcRig(t, rigOptions{})
	r.fake.FaultJobs(-1)
	_, err := r.complete(context.Background(), chat("fail me"), nil)
	if Classify(err).Code != CodeFaulted {
		t.Fatalf("err = %v", err)
	}
	if r.store.states()[JobFailed] != 1 {
		t.Errorf("journal = %v", r.store.states())
	}
}

func TestCompleteRefusedWhileClosing(t *testing.T) {
	r := newSvcRig(t, rigOptions{})
	r.svc.Close()
	_, err := r.svc.Complete(context.Background(), chat("late"), nil)
	if Classify(err).Code != CodeUnavailable {
		t.Fatalf("err = %v", err)
	}
}

func TestWebhooks(t *testing.T) {
	var svc *Service
	var mu sync.Mutex
	receiver := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		s := svc
		mu.Unlock()
		s.WebhookHandler().ServeHTTP(w, req)
	}))
	t.Cleanup(receiver.Close)
	cfg := DefaultConfig()
	cfg.WebhookURL = receiver.URL
	r := newSvcRig(t, rigOptions{cfg: cfg, horde: []hordetest.Option{hordetest.WithWebhookClient(receiver.Client())}})
	mu.Lock()
	svc = r.svc
	mu.Unlock()
	r.hooks = true
	res, err := r.complete(context.Background(), chat("call me back"), nil)
	if err != nil || len(res.Choices) != 1 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	var body struct {
		Webhook string `json:"webhook"`
	}
	_ = json.Unmarshal(r.submits()[0].Body, &body)
	if !strings.HasPrefix(body.Webhook, receiver.URL+WebhookPath+res.JobID+"/") {
		t.Fatalf("webhook url = %q", body.Webhook)
	}
	if n := len(r.fake.RequestsTo(http.MethodGet, "/api/v2/generate/text/status/")); n > 1 {
		t.Errorf("%d status polls despite webhooks", n)
	}

	// Forged and replayed posts.
	post := func(url, body string) int {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		resp, err := receiver.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	payload := `{"text":"forged","id":"job-x","request":"` + res.HordeID + `","model":"m"}`
	if code := post(receiver.URL+WebhookPath+res.JobID+"/not-the-mac", payload); code != http.StatusNotFound {
		t.Errorf("forged mac answered %d", code)
	}
	if code := post(body.Webhook, payload); code != http.StatusNoContent {
		t.Errorf("replay to a finished job answered %d, want 204 (ignored)", code)
	}
	if code := post(body.Webhook, "not json"); code != http.StatusBadRequest {
		t.Errorf("garbage answered %d", code)
	}
	_ = tls.VersionTLS12
}

func TestDeliveryFailureIsRetriedAfterRestart(t *testing.T) {
	store := newMemStore()
	failing := &deliveries{fail: errors.New("discord is down")}
	r1 := newSvcRig(t, rigOptions{store: store, deliverers: map[string]Deliverer{"discord": failing}})
	req := chat("deliver me later")
	req.Target = "discord:c"
	id, err := r1.svc.Submit(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r1.until(10*time.Minute, func() bool { return len(store.job(id).e.Result) > 0 && r1.svc.InFlight() == 0 }) {
		t.Fatal("result never kept")
	}
	r1.svc.Close()
	if store.job(id).state != "" {
		t.Fatalf("undelivered job finished: %+v", store.job(id))
	}
	ok := &deliveries{}
	newSvcRig(t, rigOptions{store: store, fake: r1.fake, deliverers: map[string]Deliverer{"discord": ok}}).settle()
	if got := ok.all(); len(got) != 1 || got[0].JobID != id || store.job(id).state != JobDone {
		t.Fatalf("redelivery = %+v, journal %+v", got, store.job(id))
	}
}

// A chat job's error is an answer too: when its delivery fails (or the
// process dies first), the next start delivers the error, once.
func TestFailureDeliveryIsRetriedAfterRestart(t *testing.T) {
	store := newMemStore()
	failing := &deliveries{fail: errors.New("discord is down")}
	r1 := newSvcRig(t, rigOptions{store: store, deliverers: map[string]Deliverer{"discord": failing}})
	r1.fake.FaultJobs(-1) // every attempt faults: the request fails
	req := chat("fail me later")
	req.Target = "discord:c"
	id, err := r1.svc.Submit(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r1.until(10*time.Minute, func() bool { return len(store.job(id).e.Result) > 0 && r1.svc.InFlight() == 0 }) {
		t.Fatal("failure never kept")
	}
	r1.svc.Close()
	if store.job(id).state != "" {
		t.Fatalf("a failure that was not delivered finished the job: %+v", store.job(id))
	}
	ok := &deliveries{}
	newSvcRig(t, rigOptions{store: store, fake: r1.fake, deliverers: map[string]Deliverer{"discord": ok}}).settle()
	got := ok.all()
	if len(got) != 1 || got[0].JobID != id || got[0].Result != nil || got[0].Err == nil || got[0].Err.Code != CodeFaulted || got[0].Err.Message == "" || !got[0].Resumed {
		t.Fatalf("redelivery = %+v", got)
	}
	if j := store.job(id); j.state != JobFailed || !strings.Contains(j.errMsg, string(CodeFaulted)) {
		t.Fatalf("journal after the redelivery = %+v", j)
	}
	if n := len(r1.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")); n != 1 {
		t.Fatalf("%d submits: a failed job was asked again", n)
	}
}

// Closing the service keeps a job in flight journaled, however the wait for
// it ends (the context, or the watch stopped with the scheduler).
func TestCloseKeepsJobsJournaled(t *testing.T) {
	for i := range 5 {
		store := newMemStore()
		d := &deliveries{}
		r := newSvcRig(t, rigOptions{store: store, deliverers: map[string]Deliverer{"discord": d}, horde: []hordetest.Option{longAnswers, hordetest.WithWorkers(
			hordetest.Worker{Name: "w", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}, TokensPerSecond: 1},
		)}})
		req := chat("keep me")
		req.Target = "discord:c"
		id, err := r.svc.Submit(context.Background(), req, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.fake.Advance(time.Duration(i) * time.Second)
		r.svc.Close()
		if j := store.job(id); j.state != "" {
			t.Fatalf("run %d: job ended %s (%s) on close instead of staying journaled", i, j.state, j.errMsg)
		}
		if len(d.all()) != 0 {
			t.Fatalf("run %d: delivered on close: %+v", i, d.all())
		}
	}
}
