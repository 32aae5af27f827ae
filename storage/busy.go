package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrLocked is returned by a write that gave up after storage.busy_retry_for
// because another connection kept the database locked.
var ErrLocked = errors.New("database is locked by another connection")

// Backoff between retries of a locked write. Each attempt already waits up
// to busy_timeout inside SQLite; the backoff keeps a tiny busy_timeout from
// turning into a busy loop.
const (
	busyBackoffMin = 10 * time.Millisecond
	busyBackoffMax = time.Second
)

// busyTracker counts retries of locked writes and logs each locked episode
// once: a warning when the first write finds the lock taken and an info
// line when a write gets through again.
type busyTracker struct {
	retries atomic.Uint64

	mu             sync.Mutex
	since          time.Time // first busy of the current episode; zero when none
	episodeRetries uint64
	next           chan struct{} // closed at the next retry; nil until asked for
}

// BusyRetries returns how many times a write has been retried because
// another connection held the database lock, since Open.
func (s *Store) BusyRetries() uint64 { return s.busy.retries.Load() }

// BusyRetried returns a channel that is closed at the next retry of a
// locked write, so a caller can wait for contention without polling:
// take the channel, check BusyRetries, then wait on the channel.
func (s *Store) BusyRetried() <-chan struct{} {
	s.busy.mu.Lock()
	defer s.busy.mu.Unlock()
	if s.busy.next == nil {
		s.busy.next = make(chan struct{})
	}
	return s.busy.next
}

// isBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED,
// including their extended codes (BUSY_SNAPSHOT, BUSY_RECOVERY, ...): the
// lock was taken, and the same transaction may succeed later.
func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// retryBusy runs attempt, a whole transaction or autocommit statement,
// again while it fails because the database is locked, with jittered,
// capped backoff, until it gets through, ctx ends, or busy_retry_for has
// passed since start (when the write was called).
func (s *Store) retryBusy(ctx context.Context, start time.Time, attempt func() error) error {
	backoff := busyBackoffMin
	for {
		err := attempt()
		if !isBusy(err) {
			if err == nil || ctx.Err() == nil {
				// Got the lock: whatever else went wrong, it was not that.
				s.busyEnded()
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		waited := time.Since(start)
		if waited >= s.busyRetryFor {
			return fmt.Errorf("%w: gave up after retrying for %s (storage.busy_retry_for); end the other process's transaction (an sqlite3 shell or backup, or a second hordechat on the same storage.path) or raise storage.busy_retry_for: %v",
				ErrLocked, s.busyRetryFor, err)
		}
		s.busyRetry(err)
		d := backoff/2 + rand.N(backoff/2+1)
		d = min(d, s.busyRetryFor-waited)
		backoff = min(2*backoff, busyBackoffMax)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// busyRetry counts a retry and starts an episode if none is running.
func (s *Store) busyRetry(err error) {
	s.busy.retries.Add(1)
	s.busy.mu.Lock()
	defer s.busy.mu.Unlock()
	s.busy.episodeRetries++
	if s.busy.next != nil {
		close(s.busy.next)
		s.busy.next = nil
	}
	if s.busy.since.IsZero() {
		s.busy.since = time.Now()
		s.log.Warn("database is locked by another connection; retrying writes until it is released",
			"error", err, "busy_timeout", s.busyTimeout, "busy_retry_for", s.busyRetryFor)
	}
}

// busyEnded closes the current episode, if any.
func (s *Store) busyEnded() {
	s.busy.mu.Lock()
	defer s.busy.mu.Unlock()
	if s.busy.since.IsZero() {
		return
	}
	s.log.Info("database lock released; writes go through again",
		"locked_for", time.Since(s.busy.since).Round(time.Millisecond), "retries", s.busy.episodeRetries)
	s.busy.since, s.busy.episodeRetries = time.Time{}, 0
}
