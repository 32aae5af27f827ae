// Package bridge is hordechat's core: it turns OpenAI-style chat requests
// into AI Horde requests fitted to the live workers, submits them with the
// asking person's identity and key, polls politely, journals every job so a
// restart loses nothing, and turns the Horde's answer back into a Result.
// It knows no chat platform.
package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bridge/prompt"
	"github.com/hordechat/hordechat/hordeapi"
)

// Deps are what a Service is built from.
type Deps struct {
	// Client submits, cancels and looks up users.
	Client *hordeapi.Client
	// PollClient polls status; it must not retry on its own, since the
	// scheduler backs off. Nil uses Client without retries.
	PollClient StatusClient
	Store      Store
	// IdentitySecret keys the per-user Proxied-For addresses (16+ bytes).
	IdentitySecret []byte
	// Clock drives timers; nil is the real clock.
	Clock clockwork.Clock
	Log   *slog.Logger
	// Scheduler overrides the scheduler configuration derived from Config.
	Scheduler *SchedulerConfig
}

// Service runs generation jobs. Create it with New, register deliverers,
// then Start it.
type Service struct {
	cfg       Config
	log       *slog.Logger
	clock     clockwork.Clock
	client    *hordeapi.Client
	models    *Models
	templates *prompt.Registry
	ids       *Identities
	store     Store
	sched     *Scheduler
	kudos     *kudosCache
	hooks     *webhooks

	mu         sync.Mutex
	deliverers map[string]Deliverer
	jobs       map[string]*job
	closing    bool
	// busy counts jobs doing work the scheduler does not see (submitting,
	// journaling, delivering), so tests on a fake clock move it only when
	// every job is parked.
	busy int
	idle *sync.Cond
	// cancels are Horde requests whose DELETE failed, retried in the
	// background (cancels.go); cancelArmed is when the retry loop's timer
	// fires, cancelsStopped is set once the loop ended.
	cancels        []*pendingCancel
	cancelArmed    time.Time
	cancelsStopped bool
	cancelWake     chan struct{}
	cancelClient   *hordeapi.Client // no retries: the loop backs off itself
	// loaded is closed once Start's first model refresh ended (tests).
	loaded chan struct{}

	life     context.Context // ends at Close: background jobs stop, journal kept
	stopLife context.CancelFunc
	wg       sync.WaitGroup
}

// New builds a Service; it does no I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Client == nil || deps.Store == nil {
		return nil, errors.New("bridge: Client and Store are required")
	}
	ids, err := NewIdentities(deps.IdentitySecret)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	clock := deps.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "bridge")
	templates := prompt.NewRegistry()
	for _, o := range cfg.TemplateOverrides {
		if err := templates.Override(o.Pattern, o.Template); err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
	}
	pollClient := deps.PollClient
	if pollClient == nil {
		pollClient = deps.Client.WithoutRetries()
	}
	scfg := DefaultSchedulerConfig()
	scfg.CallsPerSecond = cfg.StatusCallsPerSecond
	if deps.Scheduler != nil {
		scfg = *deps.Scheduler
	}
	life, stop := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, log: log, clock: clock, client: deps.Client,
		models:       NewModels(deps.Client, clock),
		templates:    templates,
		ids:          ids,
		store:        deps.Store,
		sched:        NewScheduler(pollClient, clock, scfg, log),
		kudos:        newKudosCache(clock),
		deliverers:   map[string]Deliverer{},
		jobs:         map[string]*job{},
		life:         life,
		stopLife:     stop,
		cancelWake:   make(chan struct{}, 1),
		cancelClient: deps.Client.WithoutRetries(),
		loaded:       make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	if cfg.WebhookURL != "" {
		s.hooks = newWebhooks(cfg.WebhookURL, deps.IdentitySecret, s.sched, s.hordeIDOf, log)
	}
	return s, nil
}

// Models is the live model registry.
func (s *Service) Models() *Models { return s.models }

// Templates is the instruct template registry.
func (s *Service) Templates() *prompt.Registry { return s.templates }

// RefreshModels fetches the model and worker lists; run it periodically.
func (s *Service) RefreshModels(ctx context.Context) error { return s.models.Refresh(ctx) }

// RegisterDeliverer routes answers of jobs whose Target starts with
// "platform:" to d. Register before Start so resumed jobs find it.
func (s *Service) RegisterDeliverer(platform string, d Deliverer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliverers[platform] = d
}

// WebhookHandler serves the Horde's result posts under WebhookPath; nil
// when no webhook_url is configured.
func (s *Service) WebhookHandler() http.Handler {
	if s.hooks == nil {
		return nil
	}
	return s.hooks
}

// Start runs the scheduler, starts loading the models and resumes
// journaled jobs.
func (s *Service) Start(ctx context.Context) error {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.sched.Run(s.life); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("scheduler stopped", "err", err)
		}
	}()
	// Load the models in the background: an unreachable Horde must not
	// delay start-up; requests meanwhile get a clear "not loaded yet".
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.loaded)
		if err := s.models.Refresh(s.life); err != nil && s.life.Err() == nil {
			s.log.Warn("could not load models; will retry on the next refresh", "err", err)
		}
	}()
	// Before resume, which may cancel orphaned requests.
	s.wg.Add(1)
	go s.retryCancels()
	return s.resume(ctx)
}

// Close stops background work. Chat jobs stay journaled and resume on the
// next Start; nothing is cancelled at the Horde.
func (s *Service) Close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.stopLife()
	s.wg.Wait()
}

// job is one generation in flight.
type job struct {
	id        string
	principal Principal
	target    string
	prep      *prepared
	caller    hordeapi.Caller
	progress  ProgressFunc
	hordeID   string
	attempts  int
	created   time.Time
	// noWorkers: the Horde warned at submit that no worker can serve it
	// now, so no webhook may come soon; poll normally.
	noWorkers bool
	// resumed: picked up from the journal; webhooks sent while the
	// process was down are lost, so poll at once.
	resumed bool
	// deadline is when the job gives up (JobTimeout after created).
	deadline time.Time
	// park is set while the job waits in await; guarded by Service.mu.
	park *parkedWait

	cancel context.CancelFunc
	done   chan struct{}
	result *Result
	err    *Error
}

// journalPayload is what the journal keeps of a job to finish it later.
type journalPayload struct {
	Prepared  *prepared      `json:"prepared"`
	Principal savedPrincipal `json:"principal"`
}

// savedPrincipal is a Principal without its key.
type savedPrincipal struct {
	Platform    string `json:"platform"`
	UserID      string `json:"user_id,omitempty"`
	StoreUserID int64  `json:"store_user_id,omitempty"`
	ClientIP    string `json:"client_ip,omitempty"`
}

// Complete runs a request to the end and returns its result. Cancelling
// ctx cancels the Horde request, so no kudos are wasted.
func (s *Service) Complete(ctx context.Context, req Request, progress ProgressFunc) (*Result, error) {
	s.busyAdd(1)
	return s.completeBusy(ctx, req, progress)
}

// completeBusy is Complete for a caller that already counted it as busy
// (tests start it in a goroutine and must not move the clock before).
func (s *Service) completeBusy(ctx context.Context, req Request, progress ProgressFunc) (*Result, error) {
	defer s.busyAdd(-1)
	req.Target = ""
	j, err := s.begin(ctx, req, progress)
	if err != nil {
		return nil, err
	}
	s.run(ctx, j)
	if j.err != nil {
		return nil, j.err
	}
	return j.result, nil
}

// Submit starts a request whose answer goes to the Deliverer of
// req.Target's platform, also after a restart. Errors that happen before
// the Horde took the request are returned here and not delivered.
func (s *Service) Submit(ctx context.Context, req Request, progress ProgressFunc) (string, error) {
	platform, _, ok := strings.Cut(req.Target, ":")
	if !ok || platform == "" {
		return "", errors.New("bridge: submit needs a target of the form platform:rest")
	}
	s.mu.Lock()
	_, known := s.deliverers[platform]
	s.mu.Unlock()
	if !known {
		return "", fmt.Errorf("bridge: no deliverer registered for platform %q", platform)
	}
	s.busyAdd(1)
	defer s.busyAdd(-1)
	j, err := s.begin(ctx, req, progress)
	if err != nil {
		return "", err
	}
	s.background(j, false)
	return j.id, nil
}

// busyAdd counts work outside the scheduler's view; see Service.busy.
func (s *Service) busyAdd(d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy += d
	if s.busy == 0 {
		s.idle.Broadcast()
	}
}

// waitIdle is a test hook: it returns once no job is busy outside the
// scheduler and no parked job has a wake-up it has not acted on yet.
func (s *Service) waitIdle(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.idle.Broadcast()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.busy > 0 || s.wakePendingLocked() {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.idle.Wait()
	}
	return nil
}

// Await waits for a submitted job still in this process and returns its
// result. The Deliverer gets the answer too.
func (s *Service) Await(ctx context.Context, jobID string) (*Result, error) {
	s.mu.Lock()
	j, ok := s.jobs[jobID]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("bridge: job %s is not in flight", jobID)
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if j.err != nil {
		return nil, j.err
	}
	return j.result, nil
}

// Cancel cancels a job in flight: the Horde request is deleted and the
// job's deliverer gets a cancelled error. It reports whether the job was
// found.
func (s *Service) Cancel(jobID string) bool {
	s.mu.Lock()
	j, ok := s.jobs[jobID]
	s.mu.Unlock()
	if ok {
		j.cancel()
	}
	return ok
}

// hordeIDOf returns the Horde request id of a job in flight.
func (s *Service) hordeIDOf(jobID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[jobID]
	if !ok {
		return "", false
	}
	return j.hordeID, true
}

// InFlight is the number of jobs this process is running.
func (s *Service) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)
}

// begin prepares, journals and submits a job. On error nothing is left in
// flight.
func (s *Service) begin(ctx context.Context, req Request, progress ProgressFunc) (*job, error) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil, newError(CodeUnavailable, http.StatusServiceUnavailable, nil, "hordechat is shutting down. Try again in a moment.")
	}
	id, err := req.jobID()
	if err != nil {
		return nil, err
	}
	caller, kind, err := s.callerFor(ctx, req.Principal)
	if err != nil {
		return nil, Classify(err)
	}
	kudos := s.kudos.balance(ctx, s.client, caller, kind)
	prep, err := s.prepare(req, kudos)
	if err != nil {
		return nil, Classify(err)
	}
	if kind == keyOperator && s.cfg.ServiceAccount {
		prep.Horde.ProxiedAccount = req.Principal.Account()
	}
	j := &job{
		id:        id,
		principal: req.Principal,
		target:    req.Target,
		prep:      prep,
		caller:    caller,
		progress:  progress,
		created:   s.clock.Now(),
		done:      make(chan struct{}),
	}
	payload, err := json.Marshal(journalPayload{Prepared: prep, Principal: savePrincipal(req.Principal)})
	if err != nil {
		return nil, Classify(fmt.Errorf("encode journal entry: %w", err))
	}
	if err := s.store.CreateJob(ctx, JournalEntry{ID: j.id, Principal: req.Principal.String(), Target: j.target, Payload: payload, CreatedAt: j.created}); err != nil {
		return nil, Classify(fmt.Errorf("journal job: %w", err))
	}
	if err := s.submit(ctx, j); err != nil {
		s.finishJournal(j.id, JobFailed, nil, err)
		return nil, err
	}
	return j, nil
}

// submit sends the job's request to the Horde and records the id.
func (s *Service) submit(ctx context.Context, j *job) *Error {
	hreq := j.prep.Horde
	if s.hooks != nil {
		hreq.Webhook = s.hooks.url(j.id)
	}
	// The submit is not tied to the caller: cut mid-flight, the Horde may
	// have queued a request whose id we would never learn to delete.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), submitTimeout)
	resp, err := s.client.SubmitText(sctx, j.caller, &hreq)
	cancel()
	if err != nil {
		e := Classify(err)
		s.log.Info("submit refused", "job", j.id, "principal", j.principal.String(), "code", e.Code, "err", err)
		return e
	}
	j.hordeID, j.noWorkers = resp.ID, resp.NoWorkersWarning()
	if ctx.Err() != nil {
		s.cancelAtHorde(j, false) // the caller left while the submit was in flight
		return Classify(ctx.Err())
	}
	if err := s.store.MarkJobSubmitted(context.WithoutCancel(ctx), j.id, resp.ID); err != nil {
		// The Horde has it; polling still works, a restart would resubmit.
		s.log.Error("journal submit", "job", j.id, "err", err)
	}
	s.log.Debug("submitted", "job", j.id, "horde_id", resp.ID, "request", j.prep.String(), "no_workers_warning", resp.NoWorkersWarning())
	return nil
}

// background runs a submitted job until it ends or the service closes,
// then delivers it.
func (s *Service) background(j *job, resumed bool) {
	// Track the job before Submit returns its id, so a Cancel pressed at
	// once finds it.
	ctx := s.track(s.life, j)
	s.wg.Add(1)
	s.busyAdd(1)
	go func() {
		defer s.wg.Done()
		defer s.busyAdd(-1)
		s.run(ctx, j)
		if s.life.Err() != nil && j.err != nil && j.err.Code == CodeCanceled {
			return // shutting down: the journal keeps it for the next start
		}
		s.deliver(j, resumed)
	}()
}

// track makes j cancellable and findable by Cancel until run ends; it
// returns the job's context.
func (s *Service) track(parent context.Context, j *job) context.Context {
	ctx, cancel := context.WithCancel(parent)
	j.cancel = cancel
	s.mu.Lock()
	s.jobs[j.id] = j
	s.mu.Unlock()
	return ctx
}

// run polls a submitted job to its end, resubmitting a request the Horde
// lost, and records the outcome in j and the journal. A cancelled ctx
// deletes the Horde request, unless the service is closing.
func (s *Service) run(ctx context.Context, j *job) {
	if j.cancel == nil {
		ctx = s.track(ctx, j)
	}
	defer j.cancel()
	defer func() {
		s.mu.Lock()
		delete(s.jobs, j.id)
		s.mu.Unlock()
		close(j.done)
	}()

	timeout := max(s.cfg.JobTimeout-s.clock.Since(j.created), time.Second)
	j.deadline = s.clock.Now().Add(timeout)
	deadline := s.clock.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if j.hordeID == "" {
			if e := s.submit(ctx, j); e != nil {
				j.err = e
				s.endJournal(ctx, j)
				return
			}
		}
		st, err := s.await(ctx, j, deadline.Chan())
		if err == nil {
			j.result, j.err = s.buildResult(j, st)
			if j.err != nil {
				s.endJournal(ctx, j)
			} else if j.target != "" {
				if raw, mErr := json.Marshal(j.result); mErr == nil {
					if sErr := s.store.SaveJobResult(context.WithoutCancel(ctx), j.id, raw); sErr != nil {
						s.log.Error("journal result", "job", j.id, "err", sErr)
					}
				}
			} else {
				s.finishJournal(j.id, JobDone, nil, nil)
			}
			s.report(j, Progress{Stage: StageDone})
			return
		}
		if errors.Is(err, hordeapi.ErrNotFound) && j.attempts < s.cfg.ResubmitLost {
			j.attempts++
			if _, aErr := s.store.IncrementJobAttempts(context.WithoutCancel(ctx), j.id); aErr != nil {
				s.log.Error("journal attempts", "job", j.id, "err", aErr)
			}
			s.log.Info("the horde lost the request; resubmitting", "job", j.id, "horde_id", j.hordeID, "attempt", j.attempts)
			j.hordeID = ""
			s.report(j, Progress{Stage: StageRetrying, Err: Classify(err)})
			continue
		}
		if s.life.Err() != nil {
			// Closing: whatever ended the wait (the context, or the watch
			// stopped with the scheduler), the Horde request and the
			// journal entry are kept for the next start.
			j.err = Classify(context.Canceled)
			return
		}
		j.err = Classify(err)
		open := false
		if errors.Is(err, context.Canceled) || errors.Is(err, errDeadline) || errors.Is(err, errNotPossible) {
			// A /v1 job's entry stays open while its cancel is retried,
			// so a restart still deletes the request (resume).
			open = s.cancelAtHorde(j, j.target == "")
		}
		if !open {
			s.endJournal(ctx, j)
		}
		s.report(j, Progress{Stage: StageFailed, Err: j.err})
		return
	}
}

// submitTimeout bounds one submit, retries included.
const submitTimeout = 2 * time.Minute

var (
	errDeadline    = errors.New("job deadline passed")
	errNotPossible = errors.New("no worker can serve the request")
)

// await watches the job's Horde request until it ends, the deadline
// passes, it stays impossible too long, or ctx ends.
func (s *Service) await(ctx context.Context, j *job, deadline <-chan time.Time) (*hordeapi.TextStatus, error) {
	impossible := make(chan struct{})
	var impossibleOnce sync.Once
	var impossibleSince time.Time
	w := s.sched.Watch(j.hordeID, j.caller, WatchOptions{
		N:       max(1, derefInt(j.prep.Horde.Params.N)),
		Webhook: s.hooks != nil && !j.noWorkers,
		OnStatus: func(st *hordeapi.TextStatus) {
			if !st.IsPossible && st.Processing == 0 && !st.Done {
				now := s.clock.Now()
				if impossibleSince.IsZero() {
					impossibleSince = now
				} else if now.Sub(impossibleSince) >= s.cfg.NotPossibleTimeout {
					impossibleOnce.Do(func() { close(impossible) })
				}
			} else {
				impossibleSince = time.Time{}
			}
			if p, ok := statusProgress(st); ok {
				s.report(j, p)
			}
		},
		OnRetry: func(err error) {
			s.report(j, Progress{Stage: StageRetrying, Err: Classify(err)})
		},
	})
	defer w.Stop()
	if j.resumed {
		w.Poke()
	}
	// Parked: the scheduler, the clock or a cancel wakes it.
	s.park(j, &parkedWait{ctx: ctx, watch: w, deadline: j.deadline, impossible: impossible})
	defer s.unpark(j)
	select {
	case <-w.Done():
		st, err := w.Result()
		if err != nil {
			return nil, err
		}
		if st.Faulted {
			return nil, newError(CodeFaulted, http.StatusBadGateway, nil, "The Horde's workers failed this request several times. Try again, or pick another model.")
		}
		return st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-deadline:
		e := newError(CodeTimeout, http.StatusGatewayTimeout, errDeadline, "The Horde did not finish within %s. Try again, ask for fewer tokens, or pick a model with a shorter queue.", humanDuration(s.cfg.JobTimeout))
		return nil, e
	case <-impossible:
		return nil, s.notPossibleError(j)
	}
}

// statusProgress reports where an unfinished request is; a finished one
// is reported by the job itself once its result is built.
func statusProgress(st *hordeapi.TextStatus) (Progress, bool) {
	if st.Done || st.Faulted {
		return Progress{}, false
	}
	p := Progress{Stage: StageQueued, ETA: time.Duration(st.WaitTime) * time.Second, Restarted: st.Restarted, QueuePosition: st.QueuePosition}
	if st.Processing > 0 || st.Waiting == 0 {
		p.Stage = StageProcessing
	}
	return p, true
}

func (s *Service) report(j *job, p Progress) {
	if j.progress == nil {
		return
	}
	p.JobID = j.id
	j.progress(p)
}

// cancelAtHorde deletes the Horde request so no kudos are wasted. If every
// attempt fails, the cancel is retried in the background (cancels.go).
// With journal, the job's journal entry is left open until the retries
// end (they finish it with j.err), or for the next start when shutting
// down; cancelAtHorde reports whether it was left open.
func (s *Service) cancelAtHorde(j *job, journal bool) bool {
	if j.hordeID == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := s.client.CancelText(ctx, j.caller, j.hordeID)
	if cancelSettled(err) {
		if err != nil && !errors.Is(err, hordeapi.ErrNotFound) {
			s.log.Warn("cancel at horde refused", "job", j.id, "horde_id", j.hordeID, "err", err)
		}
		return false
	}
	s.log.Warn("cancel at horde failed; retrying in the background", "job", j.id, "horde_id", j.hordeID, "err", err)
	return s.queueCancel(j, journal)
}

// buildResult turns the final status into a Result.
func (s *Service) buildResult(j *job, st *hordeapi.TextStatus) (*Result, *Error) {
	if len(st.Generations) == 0 {
		return nil, newError(CodeFaulted, http.StatusBadGateway, nil, "The Horde finished the request without an answer. Try again.")
	}
	tpl, ok := s.templates.ByName(j.prep.Template)
	if !ok {
		tpl = prompt.Raw
	}
	res := &Result{
		JobID: j.id, HordeID: j.hordeID, Kudos: st.Kudos,
		PromptTokens: j.prep.PromptTokens, Dropped: j.prep.Dropped, Truncated: j.prep.Truncated,
		MaxTokens: j.prep.MaxTokens, Limited: j.prep.Limited, KudosLimited: j.prep.KudosLimited,
		Template: j.prep.Template, Created: s.clock.Now(),
	}
	for i, g := range st.Generations {
		text, stopped := tpl.CleanOutput(g.Text, j.prep.UserStops)
		reason := FinishStop
		switch {
		case g.Censored():
			reason = FinishFiltered
		case !stopped && prompt.EstimateTokens(g.Text) >= j.prep.MaxTokens*9/10:
			reason = FinishLength
		}
		res.Choices = append(res.Choices, Choice{Index: i, Text: text, FinishReason: reason, Model: g.Model, WorkerID: g.WorkerID, WorkerName: g.WorkerName})
		res.CompletionTokens += prompt.EstimateTokens(text)
	}
	res.Model = res.Choices[0].Model
	if res.Model == "" && len(j.prep.Horde.Models) > 0 {
		res.Model = j.prep.Horde.Models[0]
	}
	return res, nil
}

// deliver hands a finished job to its platform and closes the journal
// entry once that worked.
func (s *Service) deliver(j *job, resumed bool) {
	platform, _, _ := strings.Cut(j.target, ":")
	s.mu.Lock()
	d := s.deliverers[platform]
	s.mu.Unlock()
	if d == nil {
		s.log.Error("no deliverer for job", "job", j.id, "platform", platform)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := d.Deliver(ctx, Delivery{JobID: j.id, Target: j.target, Result: j.result, Err: j.err, Resumed: resumed})
	if err != nil {
		// Left unfinished: the next start delivers it again.
		s.log.Error("deliver", "job", j.id, "platform", platform, "err", err)
		return
	}
	if j.result != nil {
		raw, _ := json.Marshal(j.result)
		s.finishJournal(j.id, JobDone, raw, nil)
	} else if j.err != nil {
		s.finishJournal(j.id, failedState(j.err), nil, j.err)
	}
}

// failedState is the journal state of a job that ended with e.
func failedState(e *Error) JobState {
	if e.Code == CodeCanceled {
		return JobCancelled
	}
	return JobFailed
}

// keptFailure is how a chat job's error waits in the journal's result
// column for its delivery; a Result never has the "failure" key.
type keptFailure struct {
	Failure *savedError `json:"failure"`
}

// savedError is the part of an Error that survives a restart.
type savedError struct {
	Code       Code          `json:"code"`
	Message    string        `json:"message"`
	Status     int           `json:"status"`
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	Param      string        `json:"param,omitempty"`
}

// endJournal records that j failed. A chat job's error is an answer too:
// it is kept, like a result, until it is delivered (deliver finishes the
// entry), so a crash in between still tells the person. A /v1 job's
// caller has the error already.
func (s *Service) endJournal(ctx context.Context, j *job) {
	if j.target == "" {
		s.finishJournal(j.id, failedState(j.err), nil, j.err)
		return
	}
	e := j.err
	raw, err := json.Marshal(keptFailure{Failure: &savedError{Code: e.Code, Message: e.Message, Status: e.Status, RetryAfter: e.RetryAfter, Param: e.Param}})
	if err == nil {
		err = s.store.SaveJobResult(context.WithoutCancel(ctx), j.id, raw)
	}
	if err != nil {
		s.log.Error("journal failure", "job", j.id, "err", err)
		s.finishJournal(j.id, failedState(e), nil, e)
	}
}

func (s *Service) finishJournal(id string, state JobState, result []byte, e *Error) {
	msg := ""
	if e != nil {
		msg = string(e.Code) + ": " + e.Message
	}
	if err := s.store.FinishJob(context.Background(), id, state, result, msg); err != nil {
		s.log.Error("journal finish", "job", id, "state", state, "err", err)
	}
}

// resume picks up the journal after a restart: answers kept but not yet
// delivered are delivered, chat jobs are polled (or resubmitted) to the
// end, and /v1 jobs, whose callers are gone, are cancelled at the Horde.
func (s *Service) resume(ctx context.Context) error {
	entries, err := s.store.UnfinishedJobs(ctx)
	if err != nil {
		return fmt.Errorf("load journal: %w", err)
	}
	for _, e := range entries {
		var p journalPayload
		if err := json.Unmarshal(e.Payload, &p); err != nil || p.Prepared == nil {
			s.log.Error("unreadable journal entry; dropping it", "job", e.ID, "err", err)
			s.finishJournal(e.ID, JobFailed, nil, newError(CodeInternal, 500, err, "unreadable journal entry"))
			continue
		}
		principal := p.Principal.principal()
		j := &job{id: e.ID, principal: principal, target: e.Target, prep: p.Prepared, hordeID: e.HordeID, attempts: e.Attempts, created: e.CreatedAt, resumed: true, done: make(chan struct{})}
		if e.Target == "" {
			j.err = newError(CodeCanceled, 499, nil, "interrupted by a restart")
			open := false
			if e.HordeID != "" {
				j.caller, _, _ = s.callerFor(ctx, principal)
				open = s.cancelAtHorde(j, true)
			}
			if !open {
				s.finishJournal(e.ID, JobCancelled, nil, j.err)
			}
			continue
		}
		platform, _, _ := strings.Cut(e.Target, ":")
		s.mu.Lock()
		_, known := s.deliverers[platform]
		s.mu.Unlock()
		if !known {
			s.log.Warn("journaled job for a platform that is off; keeping it", "job", e.ID, "platform", platform)
			continue
		}
		if len(e.Result) > 0 {
			var kept keptFailure
			var res Result
			if err := json.Unmarshal(e.Result, &kept); err == nil && kept.Failure != nil {
				f := kept.Failure
				j.err = &Error{Code: f.Code, Message: f.Message, Status: f.Status, RetryAfter: f.RetryAfter, Param: f.Param}
				close(j.done)
				s.deliverLater(j)
				continue
			}
			if err := json.Unmarshal(e.Result, &res); err == nil {
				j.result = &res
				close(j.done)
				s.deliverLater(j)
				continue
			}
		}
		caller, _, err := s.callerFor(ctx, principal)
		if err != nil {
			j.err = Classify(err)
			s.endJournal(ctx, j)
			close(j.done)
			s.deliverLater(j)
			continue
		}
		j.caller = caller
		s.log.Info("resuming job", "job", j.id, "horde_id", j.hordeID, "target_platform", platform)
		s.background(j, true)
	}
	return nil
}

// deliverLater delivers a resumed job in the background: Start must not
// wait on a platform, which only runs (and can send) once Start returned.
func (s *Service) deliverLater(j *job) {
	s.wg.Add(1)
	s.busyAdd(1)
	go func() {
		defer s.wg.Done()
		defer s.busyAdd(-1)
		s.deliver(j, true)
	}()
}

func savePrincipal(p Principal) savedPrincipal {
	return savedPrincipal{Platform: p.Platform, UserID: p.UserID, StoreUserID: p.StoreUserID, ClientIP: p.ClientIP}
}

func (sp savedPrincipal) principal() Principal {
	return Principal{Platform: sp.Platform, UserID: sp.UserID, StoreUserID: sp.StoreUserID, ClientIP: sp.ClientIP}
}

// keyKind says whose Horde key a call uses.
type keyKind int

const (
	keyAnonymous keyKind = iota
	keyOperator
	keyUser
)

// callerFor resolves the Horde key (the caller's own, the user's linked
// key, the operator's, or anonymous) and the identity to forward.
func (s *Service) callerFor(ctx context.Context, p Principal) (hordeapi.Caller, keyKind, error) {
	c := hordeapi.Caller{ProxiedFor: s.ids.ProxiedFor(p)}
	switch {
	case p.APIKey != "":
		c.APIKey = p.APIKey
		return c, keyUser, nil
	case p.StoreUserID > 0:
		key, err := s.store.LinkedHordeKey(ctx, p.StoreUserID)
		if err != nil {
			return c, keyAnonymous, fmt.Errorf("load linked key: %w", err)
		}
		if key != "" {
			c.APIKey = key
			return c, keyUser, nil
		}
	}
	if k := s.client.OperatorKey(); k != "" && k != hordeapi.AnonymousKey {
		c.APIKey = k
		return c, keyOperator, nil
	}
	c.APIKey = hordeapi.AnonymousKey
	return c, keyAnonymous, nil
}

// kudosCache remembers account balances for the upfront-kudos rule.
type kudosCache struct {
	clock clockwork.Clock
	mu    sync.Mutex
	byKey map[[32]byte]kudosEntry
}

type kudosEntry struct {
	kudos float64
	at    time.Time
}

const kudosTTL = 5 * time.Minute

func newKudosCache(clock clockwork.Clock) *kudosCache {
	return &kudosCache{clock: clock, byKey: map[[32]byte]kudosEntry{}}
}

// balance returns the caller's kudos, 0 for anonymous, or -1 when unknown.
func (k *kudosCache) balance(ctx context.Context, client *hordeapi.Client, c hordeapi.Caller, kind keyKind) float64 {
	if kind == keyAnonymous {
		return 0
	}
	h := sha256.Sum256([]byte(c.APIKey)) // never keep keys in memory longer than needed
	now := k.clock.Now()
	k.mu.Lock()
	e, ok := k.byKey[h]
	k.mu.Unlock()
	if ok && now.Sub(e.at) < kudosTTL {
		return e.kudos
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u, err := client.FindUser(ctx, hordeapi.Caller{APIKey: c.APIKey})
	if err != nil {
		return -1
	}
	k.mu.Lock()
	if len(k.byKey) > 10000 { // bounded: drop all rather than track ages
		clear(k.byKey)
	}
	k.byKey[h] = kudosEntry{kudos: u.Kudos, at: now}
	k.mu.Unlock()
	return u.Kudos
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
