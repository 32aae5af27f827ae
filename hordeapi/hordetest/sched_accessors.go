package hordetest

import "time"

// Accessors for tests and benchmarks of status polling: they tell when the
// fake really did things, so a poller's notice delay can be measured, and
// let a shared fake clock be advanced from event to event.

// JobTiming is one job of a request: when a worker picked it up and when it
// left the worker.
type JobTiming struct {
	Start    time.Time
	End      time.Time // zero while the job runs
	Finished bool      // it delivered a generation (not faulted, not aborted)
}

// Timeline is what happened to a request, in simulated time.
type Timeline struct {
	Created time.Time
	Jobs    []JobTiming // in pickup order; restarts add jobs
	Done    bool
	// DoneAt is when the request became done: the end of its last job
	// (for a request cancelled before any pickup, its creation). Zero
	// while not done.
	DoneAt time.Time
}

// Timeline returns the request's timeline after catching up to the
// clock's now. ok is false for an unknown or deleted request.
func (s *Server) Timeline(id string) (tl Timeline, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	r, ok := s.requests[id]
	if !ok {
		return Timeline{}, false
	}
	tl.Created = r.created
	tl.Done = r.doneLocked()
	for _, j := range r.jobs {
		jt := JobTiming{Start: j.start, Finished: j.state == jobFinished}
		if j.state != jobProcessing {
			jt.End = j.eventTime()
			if jt.End.After(tl.DoneAt) {
				tl.DoneAt = jt.End
			}
		}
		tl.Jobs = append(tl.Jobs, jt)
	}
	if !tl.Done {
		tl.DoneAt = time.Time{}
	} else if tl.DoneAt.IsZero() {
		tl.DoneAt = r.created
	}
	return tl, true
}

// NextEvent is the simulated time of the fake's next own event: a job
// finishing or timing out, a priority-ageing step or a cleanup tick. Moving
// a shared fake clock to it (and calling Sync) replays events one at a
// time, so webhooks fire at their exact simulated time.
func (s *Server) NextEvent() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	return s.nextEventLocked()
}
