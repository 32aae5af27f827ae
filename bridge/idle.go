package bridge

import (
	"context"
	"time"
)

// parkedWait is what a job parked in await waits for. The waitIdle test
// hook counts a parked job as busy again as soon as one of these has
// happened, before its goroutine has run: otherwise a test on a fake clock
// could move the clock on between a wake-up (a finished watch, a fired
// deadline, a cancel) and the job acting on it.
type parkedWait struct {
	ctx        context.Context
	watch      *Watch
	deadline   time.Time
	impossible <-chan struct{}
}

// ready reports whether the job has something to act on at now.
func (p *parkedWait) ready(now time.Time) bool {
	if p.ctx.Err() != nil || !now.Before(p.deadline) {
		return true
	}
	select {
	case <-p.watch.Done():
		return true
	case <-p.impossible:
		return true
	default:
		return false
	}
}

// park marks j as waiting for p: it no longer counts as busy.
func (s *Service) park(j *job, p *parkedWait) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.park = p
	s.busy--
	if s.busy == 0 {
		s.idle.Broadcast()
	}
}

// unpark counts j as busy again once it woke up.
func (s *Service) unpark(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.park = nil
	s.busy++
}

// wakePendingLocked reports whether a parked job has been woken but has
// not run yet, or a cancel retry is due (cancels.go).
func (s *Service) wakePendingLocked() bool {
	now := s.clock.Now()
	for _, j := range s.jobs {
		if p := j.park; p != nil && p.ready(now) {
			return true
		}
	}
	return s.cancelWakePendingLocked(now)
}
