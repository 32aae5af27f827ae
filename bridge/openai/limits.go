package openai

import (
	"math"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// rateLimiter is a token bucket per key with bounded memory: a bucket that
// has refilled completely is the same as no bucket, so those are dropped
// first when the table is full.
type rateLimiter struct {
	clock clockwork.Clock
	rate  float64 // tokens per second
	burst float64
	max   int

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

const maxLimiterKeys = 100000

func newRateLimiter(clock clockwork.Clock, perMinute, burst int) *rateLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &rateLimiter{clock: clock, rate: float64(perMinute) / 60, burst: float64(burst), max: maxLimiterKeys, buckets: map[string]*bucket{}}
}

// allow takes a token for key. When none is left it returns false and how
// long until one is.
func (l *rateLimiter) allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	} else {
		b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// evict drops refilled buckets, then, if the table is still full (a flood
// of distinct callers), any half of it: those callers get a fresh burst,
// which is the price of bounded memory.
func (l *rateLimiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.max/2 {
			break
		}
		delete(l.buckets, k)
	}
}

func (l *rateLimiter) size() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// concurrency counts jobs running per key; keys at zero are removed, so
// memory follows the jobs in flight.
type concurrency struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func newConcurrency(max int) *concurrency {
	return &concurrency{max: max, n: map[string]int{}}
}

// acquire takes a slot for key; release must be called once when it
// returns true.
func (c *concurrency) acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.n[key] >= c.max {
		return false
	}
	c.n[key]++
	return true
}

func (c *concurrency) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] <= 1 {
		delete(c.n, key)
		return
	}
	c.n[key]--
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1, for the
// Retry-After header.
func retryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	return max(s, 1)
}
