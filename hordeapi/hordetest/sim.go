package hordetest

import (
	"encoding/json"
	"math"
	"slices"
	"sort"
	"time"
)

// The queue simulation. Everything here runs with s.mu held. Time only moves
// in catchUpLocked, which replays job finishes, TTL aborts, priority ageing
// and cleanup ticks in time order up to the clock's now, handing free worker
// threads the best waiting job after every event. One Advance(90s) therefore
// gives the same result as ninety Advance(1s).

const (
	jobTTL          = 150 * time.Second
	requestLifetime = 20 * time.Minute
	ageingInterval  = 10 * time.Second
	ageingStep      = 50
	cleanupInterval = 60 * time.Second
	possibleCache   = 60 * time.Second
	maxFaultedJobs  = 2 // more than this faults the whole request
)

type jobState int

const (
	jobProcessing jobState = iota
	jobFinished
	jobFaulted // reported as faulted by the worker
	jobAborted // its TTL lapsed
)

type job struct {
	id        string
	seq       uint64
	req       *request
	worker    *worker
	workerID  string
	name      string // worker name at pickup
	model     string
	start     time.Time
	finishAt  time.Time
	deadline  time.Time
	text      string
	state     jobState
	orphaned  bool // its worker dropped out: it will never finish
	willFault bool
	kudos     float64
}

// eventTime is when the job leaves the processing state.
func (j *job) eventTime() time.Time {
	if !j.orphaned && !j.finishAt.After(j.deadline) {
		return j.finishAt
	}
	return j.deadline
}

type request struct {
	id             string
	seq            uint64
	user           *user
	identity       string
	remote         string
	clientAgent    string
	prompt         string
	params         map[string]any
	models         []string
	workerIDs      []string
	blacklist      bool
	trustedOnly    bool
	validatedOnly  bool
	slowOK         bool
	softprompt     string
	webhook        string
	proxiedAccount string
	n              int
	maxLength      int
	maxCtx         int
	stops          []string
	singleline     bool
	created        time.Time
	expiry         time.Time
	priority       int
	waiting        int
	jobs           []*job
	faults         int
	faulted        bool
	cancelled      bool
	consumed       float64
	pickups        int
	possible       bool
	possibleAt     time.Time
	possibleSet    bool
}

func (r *request) count(st jobState) int {
	n := 0
	for _, j := range r.jobs {
		if j.state == st {
			n++
		}
	}
	return n
}

// doneLocked follows horde-api.md: all jobs finished, or the request
// faulted. A cancelled request is done once its in-flight jobs are over.
func (r *request) doneLocked() bool {
	return r.faulted || (r.waiting == 0 && r.count(jobProcessing) == 0)
}

// needsGen reports whether the request is in the queue at now.
func (r *request) needsGen(now time.Time) bool {
	return r.waiting > 0 && !r.faulted && !now.After(r.expiry)
}

// catchUpLocked runs the simulation up to target.
func (s *Server) catchUpLocked(target time.Time) {
	s.dispatchLocked()
	for {
		next := s.nextEventLocked()
		if next.After(target) {
			break
		}
		s.stepLocked(next)
	}
	if target.After(s.now) {
		s.now = target
	}
	for _, w := range s.workers {
		if w.connected {
			w.lastCheckIn = s.now
		}
	}
}

// nextEventLocked is the time of the earliest pending event.
func (s *Server) nextEventLocked() time.Time {
	next := s.nextAgeing
	if s.nextCleanup.Before(next) {
		next = s.nextCleanup
	}
	for _, j := range s.running {
		if t := j.eventTime(); t.Before(next) {
			next = t
		}
	}
	return next
}

// stepLocked processes every event due at t, then dispatches.
func (s *Server) stepLocked(t time.Time) {
	if t.After(s.now) {
		s.now = t
	}
	for _, w := range s.workers {
		if w.connected {
			w.lastCheckIn = s.now
		}
	}
	var due []*job
	for _, j := range s.running {
		if !j.eventTime().After(t) {
			due = append(due, j)
		}
	}
	sort.Slice(due, func(a, b int) bool { return due[a].seq < due[b].seq })
	for _, j := range due {
		switch {
		case j.orphaned || j.finishAt.After(j.deadline):
			s.endJobLocked(j, jobAborted)
		case j.willFault:
			s.endJobLocked(j, jobFaulted)
		default:
			s.finishJobLocked(j)
		}
	}
	if !s.nextAgeing.After(t) {
		for _, r := range s.order {
			if r.needsGen(s.now) {
				r.priority += ageingStep
			}
		}
		s.nextAgeing = s.nextAgeing.Add(ageingInterval)
	}
	if !s.nextCleanup.After(t) {
		s.cleanupLocked()
		s.nextCleanup = s.nextCleanup.Add(cleanupInterval)
	}
	s.dispatchLocked()
}

// queueLocked is the priority-sorted list of requests waiting for a worker:
// extra_priority descending, then creation time.
func (s *Server) queueLocked() []*request {
	var q []*request
	for _, r := range s.order {
		if r.needsGen(s.now) {
			q = append(q, r)
		}
	}
	sort.SliceStable(q, func(a, b int) bool {
		if q[a].priority != q[b].priority {
			return q[a].priority > q[b].priority
		}
		return q[a].seq < q[b].seq
	})
	return q
}

// dispatchLocked hands free worker threads the best job each of them may
// serve, one thread per worker per round, until nothing more fits.
func (s *Server) dispatchLocked() {
	q := s.queueLocked()
	if len(q) == 0 {
		return
	}
	for progress := true; progress; {
		progress = false
		for _, w := range s.workers {
			if !w.connected || w.busy >= w.Threads {
				continue
			}
			for _, r := range q {
				if r.waiting <= 0 {
					continue
				}
				if model, ok := w.fits(r); ok {
					s.startJobLocked(r, w, model)
					progress = true
					break
				}
			}
		}
	}
}

func (s *Server) startJobLocked(r *request, w *worker, model string) {
	r.waiting--
	s.seq++
	j := &job{
		id: s.newUUIDLocked(), seq: s.seq, req: r, worker: w, workerID: w.ID, name: w.Name,
		model: model, start: s.now, deadline: s.now.Add(jobTTL),
	}
	raw := s.responder(Job{
		RequestID: r.id, JobID: j.id, Index: r.pickups, Prompt: r.prompt,
		Params: cloneJSON(r.params), Models: slices.Clone(r.models), Model: model,
		WorkerID: w.ID, WorkerName: w.Name, MaxLength: r.maxLength, MaxContextLength: r.maxCtx,
		StopSequences: slices.Clone(r.stops), Username: r.user.Alias(),
	})
	r.pickups++
	j.text = finishText(raw, r.stops, r.singleline, r.maxLength)
	secs := float64(tokenCount(j.text)) / w.TokensPerSecond
	j.finishAt = s.now.Add(time.Duration(math.Round(secs * float64(time.Second))))
	if s.jobFaults != 0 {
		j.willFault = true
		if s.jobFaults > 0 {
			s.jobFaults--
		}
	}
	w.busy++
	r.jobs = append(r.jobs, j)
	s.running = append(s.running, j)
}

func (s *Server) releaseLocked(j *job) {
	s.running = slices.DeleteFunc(s.running, func(x *job) bool { return x == j })
	if !j.orphaned && j.worker.busy > 0 {
		j.worker.busy--
	}
}

func (s *Server) finishJobLocked(j *job) {
	s.releaseLocked(j)
	r := j.req
	j.state = jobFinished
	j.kudos = jobKudos(j.text, j.model, r.maxCtx)
	r.consumed = round2(r.consumed + j.kudos)
	r.expiry = s.now.Add(requestLifetime)
	if !r.user.anonymous() {
		r.user.Kudos = round2(r.user.Kudos - j.kudos)
	}
	r.user.usedTokens += float64(tokenCount(j.text))
	j.worker.fulfilled++
	j.worker.kudos = round2(j.worker.kudos + j.kudos)
	s.tokenLog = append(s.tokenLog, tokenEvent{at: s.now, tokens: tokenCount(j.text)})
	if r.webhook != "" {
		body, _ := json.Marshal(webhookBody{
			Text: j.text, WorkerID: j.workerID, WorkerName: j.name, Model: j.model,
			ID: j.id, GenMetadata: []any{}, Request: r.id, Kudos: j.kudos,
		})
		s.hooks.enqueue(webhookItem{url: r.webhook, body: body, requestID: r.id, jobID: j.id, at: s.now})
	}
}

// endJobLocked ends a job that did not deliver: a fault report or a TTL
// abort. The job goes back to the queue unless the request has now faulted
// (more than 2 such jobs) or was cancelled.
func (s *Server) endJobLocked(j *job, st jobState) {
	s.releaseLocked(j)
	r := j.req
	j.state = st
	j.worker.uncompleted++
	r.faults++
	if r.faults > maxFaultedJobs {
		r.faulted = true
		return
	}
	if !r.cancelled {
		r.waiting++
	}
}

// orphanJobsLocked marks the jobs a dropped-out worker holds: they will never
// finish and only their TTL ends them.
func (s *Server) orphanJobsLocked(w *worker) {
	for _, j := range s.running {
		if j.worker == w && !j.orphaned {
			j.orphaned = true
			if w.busy > 0 {
				w.busy--
			}
		}
	}
}

// cleanupLocked deletes expired requests, like the Horde's 60 s cleaner.
func (s *Server) cleanupLocked() {
	for _, r := range slices.Clone(s.order) {
		if s.now.After(r.expiry) {
			s.deleteRequestLocked(r)
		}
	}
	cut := s.now.Add(-time.Minute)
	s.tokenLog = slices.DeleteFunc(s.tokenLog, func(e tokenEvent) bool { return e.at.Before(cut) })
	s.limits.prune(s.now)
	for k, c := range s.userCache {
		if !s.now.Before(c.until) {
			delete(s.userCache, k)
		}
	}
	for k, c := range s.statusCache {
		if !s.now.Before(c.until) {
			delete(s.statusCache, k)
		}
	}
}

func (s *Server) deleteRequestLocked(r *request) {
	for _, j := range r.jobs {
		if j.state == jobProcessing {
			s.releaseLocked(j)
		}
	}
	delete(s.requests, r.id)
	s.order = slices.DeleteFunc(s.order, func(x *request) bool { return x == r })
	delete(s.statusCache, r.id)
}

// activeThreadsLocked sums the threads of online workers and averages their
// speed (the fake's stand-in for the Horde's recent request average).
func (s *Server) activeThreadsLocked() (threads int, avgSpeed float64) {
	n := 0
	for _, w := range s.workers {
		if w.activeLocked(s.now) {
			threads += w.Threads
			avgSpeed += w.TokensPerSecond
			n++
		}
	}
	if n > 0 {
		avgSpeed /= float64(n)
	}
	return threads, avgSpeed
}

// queuedTotalsLocked counts jobs not finished yet (waiting plus processing)
// over live requests, and their tokens: the Horde's queued_text_requests and
// queued_tokens.
func (s *Server) queuedTotalsLocked() (jobs int, tokens float64) {
	for _, r := range s.order {
		if r.faulted {
			continue
		}
		n := r.waiting + r.count(jobProcessing)
		jobs += n
		tokens += float64(n * r.maxLength)
	}
	return jobs, tokens
}

type tokenEvent struct {
	at     time.Time
	tokens int
}
