package bridge

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/hordeapi"
)

// A Horde request the bridge gave up on stays queued until it is deleted or
// expires, spending the person's kudos and one of their concurrent-request
// slots. When the DELETE fails (the Horde answers 5xx, resets, rate limits),
// it is retried in the background with backoff on the service's clock until
// it works, the Horde no longer knows the request, or the Horde has expired
// it anyway. Pending cancels live in memory only: the journal has no state
// for "finished but not cancelled" (that would need a migration), so a
// restart drops them and the Horde's expiry cleans up.
const (
	cancelRetryFirst = 10 * time.Second
	cancelRetryMax   = 2 * time.Minute
	// cancelRetryAttempts bounds the background attempts per request; with
	// the backoff above they span about 18 minutes.
	cancelRetryAttempts = 12
	// hordeRequestLifetime is how long the Horde keeps a request after its
	// last activity; a cancel is pointless after it.
	hordeRequestLifetime = 20 * time.Minute
	// maxPendingCancels bounds memory during a long Horde outage.
	maxPendingCancels = 1000
	// cancelAttemptTimeout guards one background DELETE against a hang.
	cancelAttemptTimeout = 15 * time.Second
)

// pendingCancel is a Horde request still to be deleted. Guarded by
// Service.mu.
type pendingCancel struct {
	job      string
	hordeID  string
	caller   hordeapi.Caller
	attempts int       // background attempts made
	next     time.Time // when the next attempt is due
	giveUp   time.Time // the Horde has expired the request by then
	// finish, when set, is the outcome the job's journal entry is finished
	// with once the retries end; until then the entry stays open, so a
	// restart deletes the request again.
	finish *Error
}

// cancelSettled reports whether a DELETE's outcome needs no retry: it
// worked, the request is gone, or the Horde refused it in a way that will
// not change.
func cancelSettled(err error) bool {
	return err == nil || errors.Is(err, hordeapi.ErrNotFound) ||
		errors.Is(err, hordeapi.ErrInvalidRequest) || errors.Is(err, hordeapi.ErrInvalidKey)
}

// queueCancel keeps j's Horde request for background cancel retries after
// the first attempt failed. With journal, the job's entry stays open until
// the retries end; queueCancel reports whether it stays open.
func (s *Service) queueCancel(j *job, journal bool) bool {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelsStopped {
		if journal {
			s.log.Warn("cancel at horde failed while shutting down; the next start retries it", "job", j.id, "horde_id", j.hordeID)
		} else {
			s.log.Warn("cancel at horde failed while shutting down; the horde expires the request", "job", j.id, "horde_id", j.hordeID)
		}
		return journal
	}
	if len(s.cancels) >= maxPendingCancels {
		old := s.cancels[0]
		s.cancels = s.cancels[1:]
		s.log.Warn("too many pending cancels; dropping the oldest", "job", old.job, "horde_id", old.hordeID)
		s.finishCancelledLater(old)
	}
	c := &pendingCancel{
		job: j.id, hordeID: j.hordeID, caller: j.caller,
		next: now.Add(cancelRetryFirst), giveUp: now.Add(hordeRequestLifetime),
	}
	if journal {
		c.finish = j.err
	}
	s.cancels = append(s.cancels, c)
	select {
	case s.cancelWake <- struct{}{}:
	default:
	}
	return journal
}

// finishCancelledLater finishes the journal entry c kept open, if any, in
// the background (s.mu is held).
func (s *Service) finishCancelledLater(c *pendingCancel) {
	if c.finish == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.finishJournal(c.job, failedState(c.finish), nil, c.finish)
	}()
}

// pendingCancels is the number of Horde requests waiting for a cancel retry.
func (s *Service) pendingCancels() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cancels)
}

// retryCancels runs until Close, retrying the pending cancels when due.
func (s *Service) retryCancels() {
	defer s.wg.Done()
	var timer clockwork.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.attemptDueCancels()
		s.mu.Lock()
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		var fire <-chan time.Time
		next, ok := s.earliestCancelLocked()
		if ok {
			d := next.Sub(s.clock.Now())
			if d <= 0 {
				s.mu.Unlock()
				continue
			}
			// Armed under the lock, so the idle hook never sees a due
			// time the timer does not cover.
			timer = s.clock.NewTimer(d)
			fire = timer.Chan()
		}
		s.cancelArmed = next
		s.idle.Broadcast()
		s.mu.Unlock()
		select {
		case <-s.life.Done():
			s.mu.Lock()
			if n := len(s.cancels); n > 0 {
				s.log.Warn("shutting down with cancels pending; the horde expires those requests", "pending", n)
			}
			s.cancels, s.cancelsStopped, s.cancelArmed = nil, true, time.Time{}
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		case <-s.cancelWake:
		case <-fire:
		}
	}
}

// attemptDueCancels tries each due cancel once and reschedules or drops it.
func (s *Service) attemptDueCancels() {
	now := s.clock.Now()
	s.mu.Lock()
	var due []*pendingCancel
	for _, c := range s.cancels {
		if !c.next.After(now) {
			due = append(due, c)
		}
	}
	s.mu.Unlock()
	for _, c := range due {
		if s.life.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(s.life, cancelAttemptTimeout)
		_, err := s.cancelClient.CancelText(ctx, c.caller, c.hordeID)
		cancel()
		if s.life.Err() != nil {
			return // cut by Close, not the Horde's answer
		}
		now := s.clock.Now()
		s.mu.Lock()
		c.attempts++
		wait := cancelBackoff(c.attempts)
		var api *hordeapi.APIError
		if errors.As(err, &api) && api.RetryAfter > wait {
			wait = api.RetryAfter
		}
		c.next = now.Add(wait)
		ended := true
		switch {
		case cancelSettled(err):
			s.log.Info("cancelled at horde after retrying", "job", c.job, "horde_id", c.hordeID, "attempts", c.attempts, "err", err)
			s.dropCancelLocked(c)
		case c.attempts >= cancelRetryAttempts || !c.next.Before(c.giveUp):
			s.log.Warn("gave up cancelling at horde; the horde expires the request", "job", c.job, "horde_id", c.hordeID, "attempts", c.attempts, "err", err)
			s.dropCancelLocked(c)
		default:
			ended = false
			s.log.Debug("cancel at horde failed; will retry", "job", c.job, "horde_id", c.hordeID, "attempts", c.attempts, "err", err)
		}
		s.mu.Unlock()
		if ended && c.finish != nil {
			s.finishJournal(c.job, failedState(c.finish), nil, c.finish)
		}
	}
}

// cancelBackoff is the wait after the n-th failed background attempt.
func cancelBackoff(n int) time.Duration {
	return min(cancelRetryFirst<<min(n, 10), cancelRetryMax)
}

func (s *Service) dropCancelLocked(c *pendingCancel) {
	if i := slices.Index(s.cancels, c); i >= 0 {
		s.cancels = slices.Delete(s.cancels, i, i+1)
	}
}

func (s *Service) earliestCancelLocked() (time.Time, bool) {
	var next time.Time
	for _, c := range s.cancels {
		if next.IsZero() || c.next.Before(next) {
			next = c.next
		}
	}
	return next, !next.IsZero()
}

// cancelWakePendingLocked is the idle hook's view of the retry loop: a
// cancel is due, or the loop has not armed its timer for the earliest one
// yet.
func (s *Service) cancelWakePendingLocked(now time.Time) bool {
	next, ok := s.earliestCancelLocked()
	if !ok {
		return false
	}
	return !next.After(now) || !next.Equal(s.cancelArmed)
}
