package openai

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bridge"
)

// v1Reply is one /v1 answer as a caller saw it.
type v1Reply struct {
	user       string
	status     int
	retryAfter string
	body       []byte
	err        error
}

func TestCrowdOfTokensKeepsPerCallerLimits(t *testing.T) {
	// 1,000 people with personal tokens send two requests each at once,
	// and five flooders a hundred each. The limits: 3 at once then 6 a
	// minute, and 2 running per caller.
	const (
		lightUsers = 1000
		heavyUsers = 5
		heavyBurst = 100
		total      = lightUsers*2 + heavyUsers*heavyBurst
	)
	serverClock := clockwork.NewFakeClock()
	h := newHarness(t, harnessOpts{
		serverClock: serverClock,
		quiet:       true,
		cfg: func(c *Config) {
			c.RateLimitPerMinute, c.RateLimitBurst, c.MaxConcurrent = 6, 3, 2
		},
		// Thousands of jobs at once: a status budget to match, so what is
		// measured is the per-caller limits, not the poll rate.
		sched: &bridge.SchedulerConfig{CallsPerSecond: 500, Concurrency: 16},
	})
	users := map[string]string{} // token -> user id
	h.tokens.mu.Lock()
	for i := range lightUsers + heavyUsers {
		user := fmt.Sprint("light-", i)
		if i >= lightUsers {
			user = fmt.Sprint("heavy-", i-lightUsers)
		}
		tok := fmt.Sprintf("hc_crowd-token-%s-aaaaaaaaaaaaaaaaaaaaaaaa", user)
		h.tokens.users[tok] = TokenUser{Platform: "discord", PlatformUserID: user, StoreUserID: int64(100000 + i)}
		users[tok] = user
	}
	h.tokens.mu.Unlock()
	identity := func(user string) string {
		return h.ids.ProxiedFor(bridge.Principal{Platform: "discord", UserID: user})
	}
	// The workers are away while the crowd arrives, so every admitted job
	// is still open at the Horde when the last request has been judged.
	for _, w := range fastWorkers() {
		h.fake.SetWorkerOnline(w.Name, false)
	}

	client := h.ts.Client()
	post := func(tok string) v1Reply {
		req, err := http.NewRequest(http.MethodPost, h.ts.URL+"/v1/chat/completions", strings.NewReader(chatBody(modelFimbul, "Hello")))
		if err != nil {
			return v1Reply{err: err}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return v1Reply{user: users[tok], err: err}
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		return v1Reply{user: users[tok], status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: raw, err: err}
	}
	replies := make(chan v1Reply, total)
	for tok, user := range users {
		n := 2
		if strings.HasPrefix(user, "heavy-") {
			n = heavyBurst
		}
		for range n {
			go func() { replies <- post(tok) }()
		}
	}

	// Every request is either refused at once or becomes a Horde job.
	var got []v1Reply
	guard := time.NewTimer(5 * time.Minute) // a hang guard only
	defer guard.Stop()
	for {
		next := h.side.await(http.MethodPost, "/api/v2/generate/text/async")
		if len(got)+len(h.submits()) >= total {
			break
		}
		select {
		case r := <-replies:
			got = append(got, r)
		case <-next:
		case <-guard.C:
			t.Fatalf("%d replies and %d submits of %d requests", len(got), len(h.submits()), total)
		}
	}
	// What the Horde holds per identity, all at once.
	open := map[string]int{}
	for _, id := range h.fake.RequestIDs() {
		info, _ := h.fake.Request(id)
		open[info.Identity]++
	}
	maxOpen := 0
	for _, user := range users {
		n := open[identity(user)]
		maxOpen = max(maxOpen, n)
		if n != 2 {
			t.Errorf("the Horde holds %d jobs of %s at once, want exactly 2 (the concurrency limit)", n, user)
		}
	}
	if len(open) != len(users) {
		t.Errorf("the Horde saw %d identities for %d callers", len(open), len(users))
	}

	for _, w := range fastWorkers() {
		h.fake.SetWorkerOnline(w.Name, true)
	}
	for len(got) < total {
		select {
		case r := <-replies:
			got = append(got, r)
		case <-guard.C:
			t.Fatalf("only %d of %d replies", len(got), total)
		}
	}

	answered := map[string]int{}
	rateRefused, concRefused := 0, 0
	for _, r := range got {
		if r.err != nil {
			t.Fatalf("%s: %v", r.user, r.err)
		}
		switch r.status {
		case http.StatusOK:
			if !strings.Contains(string(r.body), defaultAnswer) {
				t.Errorf("%s: answer %s", r.user, r.body)
			}
			answered[r.user]++
			continue
		case http.StatusTooManyRequests:
		default:
			t.Errorf("%s: %d %s", r.user, r.status, r.body)
			continue
		}
		e := apiErr(t, r.body)
		switch e.code() {
		case "rate_limit_exceeded":
			rateRefused++
			// 6 a minute: the next token is exactly 10 s away.
			if r.retryAfter != "10" || !strings.Contains(e.Message, "Try again in 10 s") || e.Type != "rate_limit_error" {
				t.Errorf("%s: Retry-After %q, %+v", r.user, r.retryAfter, e)
			}
		case "too_many_concurrent_requests":
			concRefused++
			if r.retryAfter == "" || e.Type != "rate_limit_error" {
				t.Errorf("%s: Retry-After %q, %+v", r.user, r.retryAfter, e)
			}
		default:
			t.Errorf("%s: %+v", r.user, e)
		}
		if strings.HasPrefix(r.user, "light-") {
			t.Errorf("well-behaved %s was refused: %s", r.user, r.body)
		}
	}
	for _, user := range users {
		if answered[user] != 2 {
			t.Errorf("%s got %d answers, want 2", user, answered[user])
		}
	}
	if want := heavyUsers * (heavyBurst - 3); rateRefused != want {
		t.Errorf("%d rate refusals, want %d", rateRefused, want)
	}
	if concRefused != heavyUsers {
		t.Errorf("%d concurrency refusals, want %d (the third of each flooder's burst)", concRefused, heavyUsers)
	}

	// Identity forwarding held for every call, polls included.
	perID := map[string]int{}
	for _, rec := range h.fake.RequestsTo(http.MethodGet, "/v2/generate/text/status/") {
		perID[rec.Identity]++
	}
	heavyPolls, lightPolls := 0, 0
	for _, user := range users {
		if strings.HasPrefix(user, "heavy-") {
			heavyPolls += perID[identity(user)]
		} else {
			lightPolls += perID[identity(user)]
		}
	}
	if sum := heavyPolls + lightPolls; sum != len(h.fake.RequestsTo(http.MethodGet, "/v2/generate/text/status/")) {
		t.Errorf("%d status polls carried no caller's identity", len(h.fake.RequestsTo(http.MethodGet, "/v2/generate/text/status/"))-sum)
	}

	// 3.6 s on, a flooder has 0.36 of a token: the wait is 6.4 s, told
	// as 7 (rounded up, so obeying it works).
	serverClock.Advance(3600 * time.Millisecond)
	for tok, user := range users {
		if user != "heavy-0" {
			continue
		}
		r := post(tok)
		if r.status != http.StatusTooManyRequests || r.retryAfter != "7" || !strings.Contains(string(r.body), "Try again in 7 s") {
			t.Errorf("retry after 3.6 s: %d, Retry-After %q, %s", r.status, r.retryAfter, r.body)
		}
	}
	t.Logf("%d requests: %d answered, %d refused for rate, %d for concurrency; max jobs at the Horde per identity %d (limit 2); polls per caller: heavy %.1f, light %.1f",
		total, len(got)-rateRefused-concRefused, rateRefused, concRefused, maxOpen,
		float64(heavyPolls)/heavyUsers, float64(lightPolls)/lightUsers)
}
