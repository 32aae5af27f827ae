package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/bottest"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// Per-user limits with a crowd: 1,000 people and a few flooders hit the
// engine at once. What counts is what the fake Horde saw per Proxied-For
// identity, and what each person was told.

// hordeLedger sits in front of the fake Horde and keeps, per Proxied-For
// identity, the requests the Horde holds that the bridge has not yet seen
// end. It books each answer before passing it on, so the bot cannot act on
// an answer the ledger has not counted.
type hordeLedger struct {
	next http.Handler

	mu      sync.Mutex
	owner   map[string]string // open Horde request id -> identity
	live    map[string]int    // identity -> open requests
	maxLive map[string]int
	submits map[string]int
	polls   map[string]int
}

func newHordeLedger(next http.Handler) *hordeLedger {
	return &hordeLedger{next: next, owner: map[string]string{}, live: map[string]int{},
		maxLive: map[string]int{}, submits: map[string]int{}, polls: map[string]int{}}
}

func (l *hordeLedger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	l.next.ServeHTTP(rec, r)
	who := r.Header.Get("Proxied-For")
	const status = "/api/v2/generate/text/status/"
	l.mu.Lock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v2/generate/text/async" && rec.Code == http.StatusAccepted:
		var sub struct{ ID string }
		if json.Unmarshal(rec.Body.Bytes(), &sub) == nil && sub.ID != "" {
			l.owner[sub.ID] = who
			l.live[who]++
			l.maxLive[who] = max(l.maxLive[who], l.live[who])
			l.submits[who]++
		}
	case strings.HasPrefix(r.URL.Path, status):
		id := strings.TrimPrefix(r.URL.Path, status)
		var st struct{ Done, Faulted bool }
		_ = json.Unmarshal(rec.Body.Bytes(), &st)
		if r.Method == http.MethodGet {
			l.polls[who]++
		}
		if owner, open := l.owner[id]; open && (r.Method == http.MethodDelete || st.Done || st.Faulted) {
			delete(l.owner, id)
			l.live[owner]--
		}
	}
	l.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// crowdPlatform counts, per reply target, the answers and the refusals.
type crowdPlatform struct {
	mu       sync.Mutex
	n        int
	answers  map[string]int
	refusals map[string][]string
	notify   chan struct{}
}

func newCrowdPlatform() *crowdPlatform {
	return &crowdPlatform{answers: map[string]int{}, refusals: map[string][]string{}, notify: make(chan struct{}, 1)}
}

func (c *crowdPlatform) Name() string          { return "test" }
func (c *crowdPlatform) MaxMessageLength() int { return 2000 }

func (c *crowdPlatform) Send(_ context.Context, target string, out bot.Outgoing) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if out.Ephemeral {
		c.refusals[target] = append(c.refusals[target], out.Text)
	}
	c.record(target, out)
	return "m" + strconv.Itoa(c.n), nil
}

func (c *crowdPlatform) Edit(_ context.Context, target, _ string, out bot.Outgoing) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record(target, out)
	return nil
}

func (c *crowdPlatform) record(target string, out bot.Outgoing) {
	if len(out.Buttons) > 0 && out.Buttons[0].ID == "regenerate" {
		c.answers[target]++
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// waitAnswers blocks until every target has its answers.
func (c *crowdPlatform) waitAnswers(t *testing.T, want map[string]int) {
	t.Helper()
	guard := time.NewTimer(5 * time.Minute) // only a hang guard; nothing asserts on time
	defer guard.Stop()
	for {
		c.mu.Lock()
		missing, example := 0, ""
		for target, n := range want {
			if c.answers[target] < n {
				missing++
				example = target
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-c.notify:
		case <-guard.C:
			t.Fatalf("%d reply targets still lack answers, e.g. %s", missing, example)
		}
	}
}

func TestCrowdPerUserLimits(t *testing.T) {
	const (
		lightUsers   = 1000
		channels     = 200 // shared by 5 users each
		heavyUsers   = 5
		heavyBurst   = 300
		heavyRetries = 50
	)
	cfg := bot.DefaultConfig()
	cfg.UserRate, cfg.UserBurst, cfg.UserConcurrency = 10*time.Second, 3, 2

	// A fake Horde on a real clock whose workers start offline, so the
	// first jobs stay open while the floods arrive.
	fake := hordetest.NewServer(hordetest.Options{
		Clock: clockwork.NewRealClock(), Passkey: bridgetest.Passkey, DisableRateLimits: true, TickInterval: 5 * time.Millisecond,
		Users: []hordetest.User{{APIKey: hordetest.AnonymousKey, Concurrency: 1 << 20}},
		Workers: []hordetest.Worker{
			{Name: bridgetest.FastWorkers[0], Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}, MaxLength: 512, MaxContextLength: 8192, TokensPerSecond: 1e9, Threads: 5000},
			{Name: bridgetest.FastWorkers[1], Models: []string{"aphrodite/NousResearch/Hermes-3-Llama-3.1-8B"}, MaxLength: 1024, MaxContextLength: 16384, TokensPerSecond: 1e9, Threads: 5000},
		},
	})
	ledger := newHordeLedger(fake.Handler())
	ts := httptest.NewServer(ledger)
	t.Cleanup(func() { ts.Close(); _ = fake.Close() })
	fake.URL = ts.URL + "/api"
	bridgetest.SetWorkersOnline(t, fake, false)

	// Thousands of jobs at once: a status budget to match, so the test is
	// about the bot's limits, not the poll rate.
	svc, err := bridge.New(bridge.DefaultConfig(), bridge.Deps{
		Client: bridgetest.Client(t, fake, ""), Store: bridgetest.NewMemStore(), IdentitySecret: bridgetest.Secret,
		Scheduler: &bridge.SchedulerConfig{CallsPerSecond: 5000, Concurrency: 64},
	})
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClock() // the engine's: rate limits and the waits it names
	plat := newCrowdPlatform()
	engine, err := bot.NewEngine(cfg, bot.Deps{Store: bottest.NewMemStore(), Bridge: svc, Keys: bottest.KeyChecker{Fake: fake}, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	engine.AddPlatform(plat)
	if err := svc.RefreshModels(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	t.Cleanup(engine.Close)
	ids, err := bridge.NewIdentities(bridgetest.Secret)
	if err != nil {
		t.Fatal(err)
	}
	identity := func(user string) string { return ids.PseudoAddress("test:" + user).String() }

	send := func(user, conversation, target, text string) {
		engine.HandleMessage(context.Background(), bot.Incoming{
			Platform: "test", ConversationID: "test:" + conversation, Target: target, MessageID: target + "/" + text,
			Author: bot.Author{ID: user, DisplayName: user}, Text: text, Server: "srv", Channel: conversation,
		})
	}
	heavyTarget := func(h, k int) string { return fmt.Sprintf("heavy-%d|conv-%d", h, k) }

	// The flooders fire first, each message in a conversation of its own,
	// so only the per-user limits stand between them and the Horde.
	for h := range heavyUsers {
		for k := range heavyBurst {
			send(fmt.Sprint("heavy-", h), fmt.Sprintf("heavy-%d-conv-%d", h, k), heavyTarget(h, k), fmt.Sprint("flood ", k))
		}
	}
	// 3.6 s later they try again: 0.36 of a token is back, so the next is
	// 6.4 s away, which must be told as 7 s (told "6 s", a person who
	// obeys is refused again).
	clock.Advance(3600 * time.Millisecond)
	for h := range heavyUsers {
		for k := heavyBurst; k < heavyBurst+heavyRetries; k++ {
			send(fmt.Sprint("heavy-", h), fmt.Sprintf("heavy-%d-conv-%d", h, k), heavyTarget(h, k), fmt.Sprint("flood ", k))
		}
	}
	// 1,000 well-behaved people: one question in a DM, one in a channel
	// they share with four others.
	want := map[string]int{}
	for i := range lightUsers {
		user := fmt.Sprint("user-", i)
		dm := fmt.Sprint("dm-", i)
		ch := fmt.Sprintf("chan-%d|%s", i%channels, user)
		send(user, dm, dm, "hello")
		send(user, fmt.Sprint("chan-", i%channels), ch, "hi all")
		want[dm], want[ch] = 1, 1
	}
	bridgetest.SetWorkersOnline(t, fake, true)

	// Refusals: exactly what the limits allow, with the right wait.
	plat.mu.Lock()
	refusals := plat.refusals
	plat.mu.Unlock()
	waitRe := regexp.MustCompile(`Try again in (\d+) s\.`)
	refused, concRefused := 0, 0
	for h := range heavyUsers {
		accepted := 0
		for k := range heavyBurst + heavyRetries {
			got := refusals[heavyTarget(h, k)]
			if len(got) == 0 {
				accepted++
				want[heavyTarget(h, k)] = 1
				continue
			}
			refused++
			msg := got[0]
			switch {
			case k == 2:
				if !strings.Contains(msg, "You already have 2 requests running") {
					t.Errorf("heavy-%d message %d: %q, want the concurrency refusal", h, k, msg)
				}
				concRefused++
			case k < heavyBurst:
				if m := waitRe.FindStringSubmatch(msg); m == nil || m[1] != "10" {
					t.Errorf("heavy-%d message %d: %q, want \"Try again in 10 s.\"", h, k, msg)
				}
			default:
				if m := waitRe.FindStringSubmatch(msg); m == nil || m[1] != "7" {
					t.Errorf("heavy-%d message %d: %q, want \"Try again in 7 s.\"", h, k, msg)
				}
			}
		}
		if accepted != 2 {
			t.Errorf("heavy-%d had %d of %d messages accepted, want 2 (burst 3, concurrency 2)", h, accepted, heavyBurst+heavyRetries)
		}
	}
	for target := range want {
		if strings.HasPrefix(target, "heavy-") {
			continue
		}
		if got := refusals[target]; len(got) > 0 {
			t.Errorf("well-behaved %s was refused: %q", target, got)
		}
	}

	// Every well-behaved person, and each flooder's accepted messages, get
	// answers.
	plat.waitAnswers(t, want)

	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	var submits []float64
	maxSeen, overs := 0, 0
	for i := range lightUsers {
		id := identity(fmt.Sprint("user-", i))
		submits = append(submits, float64(ledger.submits[id]))
		maxSeen = max(maxSeen, ledger.maxLive[id])
		if ledger.maxLive[id] > cfg.UserConcurrency {
			overs++
		}
	}
	heavySubmits, heavyPolls, lightPolls := 0, 0, 0
	for h := range heavyUsers {
		id := identity(fmt.Sprint("heavy-", h))
		submits = append(submits, float64(ledger.submits[id]))
		heavySubmits += ledger.submits[id]
		heavyPolls += ledger.polls[id]
		if n := ledger.maxLive[id]; n > cfg.UserConcurrency {
			t.Errorf("the Horde held %d jobs of heavy-%d at once, the limit is %d", n, h, cfg.UserConcurrency)
		}
		maxSeen = max(maxSeen, ledger.maxLive[id])
	}
	for id, n := range ledger.polls {
		if !strings.HasPrefix(id, "fd") {
			t.Errorf("%d polls without a per-user identity (%q)", n, id)
		}
		lightPolls += n
	}
	lightPolls -= heavyPolls
	if overs > 0 {
		t.Errorf("%d light users had more than %d jobs at the Horde at once", overs, cfg.UserConcurrency)
	}
	var sum, sq float64
	for _, x := range submits {
		sum, sq = sum+x, sq+x*x
	}
	jain := sum * sum / (float64(len(submits)) * sq)
	t.Logf("%d refusals (%d for concurrency); max jobs at the Horde per identity %d (limit %d); submits: heavy users %d for %d messages, Jain's index over all %d users %.3f; polls: heavy %.1f per user, light %.1f per user",
		refused, concRefused, maxSeen, cfg.UserConcurrency, heavySubmits, heavyUsers*(heavyBurst+heavyRetries), len(submits), jain,
		float64(heavyPolls)/heavyUsers, float64(lightPolls)/lightUsers)
	if lo, hi := slices.Min(submits), slices.Max(submits); lo != 2 || hi != 2 {
		t.Errorf("submits per user range %v..%v (Jain's index %.4f): every user asked for at least 2 at once, so each should get exactly 2", lo, hi, jain)
	}
	if n := len(ledger.owner); n != 0 {
		t.Errorf("%d Horde requests still open after every answer came", n)
	}
}
