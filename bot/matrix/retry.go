package matrix

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/jonboulle/clockwork"
	"go.mau.fi/util/retryafter"
	"maunium.net/go/mautrix"
)

// Defaults of the wait after a failed request to the homeserver: polite
// to a homeserver that is struggling, quick enough once it is back.
const (
	defaultRetryMin = time.Second
	defaultRetryMax = time.Minute
	// maxRetryAfter bounds a rate limit's retry_after_ms, so a bogus
	// value cannot stall the bot for hours.
	maxRetryAfter = 5 * time.Minute
)

// retry is how the adapter waits after a failed /sync (or a failed
// start-up request): exponential backoff from min to max with jitter,
// never shorter than a 429's retry_after_ms. It never gives up: an outage
// of any length ends with the next successful sync.
type retry struct {
	min, max time.Duration
	clock    clockwork.Clock
	jitter   func() float64 // in [0, 1)
}

// WithSyncRetry sets the wait after a failed sync: about min after the
// first failure, doubling with each failure in a row up to max, with
// jitter (default 1 s to 1 min). A rate limit's retry_after_ms is waited
// out in any case (up to 5 min).
func WithSyncRetry(min, max time.Duration) Option {
	return func(a *Adapter) { a.retry.min, a.retry.max = min, max }
}

// WithClock sets the clock the retry waits run on (tests use a fake one
// to let them pass without sleeping).
func WithClock(c clockwork.Clock) Option { return func(a *Adapter) { a.retry.clock = c } }

func defaultRetry() retry {
	return retry{min: defaultRetryMin, max: defaultRetryMax, clock: clockwork.NewRealClock(), jitter: rand.Float64}
}

// delay is the wait after failures (>= 1) failures in a row: min doubled
// per earlier failure, capped at max, between half and all of that
// (jitter spreads many bots' retries apart), and at least retryAfter.
func (r retry) delay(failures int, retryAfter time.Duration) time.Duration {
	d := r.max
	if shift := failures - 1; shift < 62 && r.min > 0 && r.min<<shift > 0 && r.min<<shift < r.max {
		d = r.min << shift
	}
	d = d/2 + time.Duration(r.jitter()*float64(d-d/2))
	return max(d, min(retryAfter, maxRetryAfter))
}

// wait waits d on the retry clock; it reports false when ctx ended first.
func (r retry) wait(ctx context.Context, d time.Duration) bool {
	t := r.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.Chan():
		return true
	}
}

// transient reports whether err is worth retrying (the homeserver or the
// way to it failed: no answer, 429 or 5xx) and how long a 429 asked to
// wait. A 4xx error such as a wrong password is not.
func transient(err error) (retryAfter time.Duration, ok bool) {
	var he mautrix.HTTPError
	if !errors.As(err, &he) {
		return 0, false
	}
	if he.Response == nil {
		return 0, true // no answer: refused, reset, timed out
	}
	switch status := he.Response.StatusCode; {
	case status == http.StatusTooManyRequests:
		return rateLimitWait(he), true
	case status >= 500:
		return 0, true
	}
	return 0, false
}

// rateLimitWait is a 429's retry_after_ms, else its Retry-After header.
func rateLimitWait(he mautrix.HTTPError) time.Duration {
	if he.RespError != nil {
		if ms, ok := he.RespError.ExtraData["retry_after_ms"].(float64); ok && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	if he.Response != nil {
		return retryafter.Parse(he.Response.Header.Get("Retry-After"), 0)
	}
	return 0
}

// syncRetryAfter is how long a failed sync's answer asked to wait.
func syncRetryAfter(err error) time.Duration {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil && he.Response.StatusCode == http.StatusTooManyRequests {
		return rateLimitWait(he)
	}
	return 0
}
