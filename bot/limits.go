package bot

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// allowed applies the allow/deny lists; it returns a refusal for the
// person, or "" when the message may go on.
func (c Config) allowed(in Incoming) string {
	id := func(v string) []string { return []string{v, in.Platform + ":" + v} }
	has := func(list []string, v string) bool {
		if v == "" {
			return false
		}
		for _, cand := range id(v) {
			if slices.Contains(list, cand) {
				return true
			}
		}
		return false
	}
	switch {
	case has(c.DenyUsers, in.Author.ID):
		return "You are not allowed to use this bot."
	case in.DM && !c.DMs:
		return "Direct messages are turned off here; talk to me in a server channel."
	case has(c.DenyServers, in.Server), has(c.DenyChannels, in.Channel):
		return "I am not allowed to answer here."
	case c.isAdmin(in):
		return ""
	case len(c.AllowServers) > 0 && !in.DM && !has(c.AllowServers, in.Server),
		len(c.AllowChannels) > 0 && !in.DM && !has(c.AllowChannels, in.Channel):
		return "I am not allowed to answer here."
	}
	if len(c.AllowUsers) > 0 || len(c.AllowRoles) > 0 {
		if has(c.AllowUsers, in.Author.ID) {
			return ""
		}
		for _, r := range in.Author.Roles {
			if has(c.AllowRoles, r) {
				return ""
			}
		}
		return "You are not on this bot's list of allowed users. Ask an admin for access."
	}
	return ""
}

// isAdmin: a configured admin, or an administrator of the server or room.
func (c Config) isAdmin(in Incoming) bool {
	if in.Author.Admin {
		return true
	}
	for _, a := range c.Admins {
		if a == in.Author.ID || a == in.Platform+":"+in.Author.ID {
			return true
		}
	}
	return false
}

// userLimiter is a token bucket per user with bounded memory.
type userLimiter struct {
	mu      sync.Mutex
	every   time.Duration
	burst   int
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newUserLimiter(every time.Duration, burst int) *userLimiter {
	return &userLimiter{every: every, burst: burst, buckets: map[string]*bucket{}}
}

// take spends one token for key at now; when empty it returns how long
// until one is back.
func (l *userLimiter) take(key string, now time.Time) (bool, time.Duration) {
	if l.every <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= 100000 {
			l.evict(now)
		}
		b = &bucket{tokens: float64(l.burst), at: now}
		l.buckets[key] = b
	}
	b.tokens = min(float64(l.burst), b.tokens+float64(now.Sub(b.at))/float64(l.every))
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(l.every))
}

// evict drops full buckets: they hold no state worth keeping.
func (l *userLimiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if float64(now.Sub(b.at))/float64(l.every)+b.tokens >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}

// retryIn says when a refused person may try again, rounded up so that
// trying then works: "7 s" for 6.4 s, "2 min" for 61 s.
func retryIn(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d s", max((d+time.Second-1)/time.Second, 1))
	}
	return fmt.Sprintf("%d min", (d+time.Minute-1)/time.Minute)
}

// userSlots bounds each user's chat turns in flight. A slot is taken when
// a message is accepted and given back when its turn ends (answered,
// failed, or the engine closing), so a turn still waiting in a busy
// conversation's queue holds one too, and a burst across conversations
// cannot start more jobs than the limit.
type userSlots struct {
	mu  sync.Mutex
	max int
	n   map[string]int // users at zero are dropped: memory follows the turns in flight
}

func newUserSlots(max int) *userSlots {
	return &userSlots{max: max, n: map[string]int{}}
}

// take reserves a slot for key; when all are taken it returns false and
// how many the user has.
func (s *userSlots) take(key string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.n[key]; n >= s.max {
		return n, false
	}
	s.n[key]++
	return 0, true
}

// hold reserves a slot for key even past the limit: for turns accepted
// before a restart, which count against the user again but are not
// refused twice.
func (s *userSlots) hold(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n[key]++
}

// put gives back a slot take or hold reserved.
func (s *userSlots) put(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[key] <= 1 {
		delete(s.n, key)
		return
	}
	s.n[key]--
}

// sanitizeMentions defuses mass pings in model output, on top of the
// adapters sending with no mentions allowed.
func sanitizeMentions(s string) string {
	r := strings.NewReplacer("@everyone", "@\u200beveryone", "@here", "@\u200bhere", "@room", "@\u200broom")
	return r.Replace(s)
}
