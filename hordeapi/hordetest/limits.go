package hordetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Rate limits as flask-limiter applies them (§3.1): fixed windows that open
// at a key's first hit, on the fake's clock. Every hit counts, also the
// rejected ones.

type rateLimit struct {
	n   int
	per time.Duration
}

// String is flask-limiter's wording, which is also the 429 message.
func (l rateLimit) String() string {
	unit := "second"
	if l.per == time.Minute {
		unit = "minute"
	}
	return fmt.Sprintf("%d per 1 %s", l.n, unit)
}

var (
	perIPMinute      = rateLimit{90, time.Minute}
	perIPSecond      = rateLimit{2, time.Second}
	whitelistMinute  = rateLimit{300, time.Minute}
	whitelistSecond  = rateLimit{10, time.Second}
	perKeySecond     = rateLimit{2, time.Second}
	perKeySecondAnon = rateLimit{60, time.Second}
	statusPerMinute  = rateLimit{60, time.Minute}
	defaultPerMinute = rateLimit{90, time.Minute}
	dynamicWhitelist = 24 * time.Hour
)

type window struct {
	start time.Time
	count int
	per   time.Duration
}

type limiter struct {
	windows map[string]*window
}

// limitCheck is one limit to apply under a key.
type limitCheck struct {
	key   string
	limit rateLimit
}

// limitResult describes the limit reported in the X-RateLimit headers.
type limitResult struct {
	ok        bool
	limit     rateLimit
	remaining int
	reset     time.Time
}

func (l *limiter) hit(c limitCheck, now time.Time) limitResult {
	key := c.key + "/" + c.limit.String()
	w := l.windows[key]
	if w == nil || !now.Before(w.start.Add(c.limit.per)) {
		w = &window{start: now, per: c.limit.per}
		l.windows[key] = w
	}
	w.count++
	return limitResult{
		ok:        w.count <= c.limit.n,
		limit:     c.limit,
		remaining: max(c.limit.n-w.count, 0),
		reset:     w.start.Add(c.limit.per),
	}
}

// apply hits the checks in order and stops at the first one exceeded, like
// stacked flask-limiter decorators. On success it reports the last limit.
func (l *limiter) apply(checks []limitCheck, now time.Time) limitResult {
	var res limitResult
	for _, c := range checks {
		res = l.hit(c, now)
		if !res.ok {
			return res
		}
	}
	return res
}

func (l *limiter) prune(now time.Time) {
	for k, w := range l.windows {
		if !now.Before(w.start.Add(w.per)) {
			delete(l.windows, k)
		}
	}
}

// headers writes X-RateLimit-* and, for a rejection, Retry-After (whole
// seconds, rounded up so a client never sees 0).
func (res limitResult) headers(h http.Header, now time.Time) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(res.limit.n))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(res.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(res.reset.Unix(), 10))
	if !res.ok {
		secs := int(math.Ceil(res.reset.Sub(now).Seconds()))
		h.Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
}

func hashKey(apikey string) string {
	sum := sha256.Sum256([]byte(apikey))
	return hex.EncodeToString(sum[:])
}

// whitelistedLocked reports whether the identity gets the service limits:
// listed in Options.WhitelistedIPs, or dynamically whitelisted for a day
// after a non-proxied request of a trusted, education or service account.
func (s *Server) whitelistedLocked(identity string) bool {
	if until, ok := s.whitelist[identity]; ok && s.now.Before(until) {
		return true
	}
	for _, ip := range s.opts.WhitelistedIPs {
		if ip == identity {
			return true
		}
	}
	return false
}

// submitLimits are the three decorators of TextAsyncGenerate.
func (s *Server) submitLimits(id identity, path, apikey string, hasKey bool) []limitCheck {
	ipKey := id.addr + "@POST@" + path
	wl := s.whitelistedLocked(id.addr)
	checks := []limitCheck{{ipKey, perIPMinute}, {ipKey, perIPSecond}}
	if wl {
		checks = []limitCheck{{ipKey, whitelistMinute}, {ipKey, whitelistSecond}}
	}
	if hasKey {
		kl := perKeySecond
		if apikey == AnonymousKey || wl {
			kl = perKeySecondAnon
		}
		checks = append(checks, limitCheck{hashKey(apikey) + "@POST@" + path, kl})
	}
	return checks
}
