package matrix_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/matrix"
	"github.com/hordechat/hordechat/bot/matrix/matrixtest"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// questionID finds the ids ("q07") of the questions in a prompt.
var questionID = regexp.MustCompile(`q\d\d`)

// answerFor answers the newest question of the prompt (the last id in
// it: the history comes first).
func answerFor(j hordetest.Job) string {
	ids := questionID.FindAllString(j.Prompt, -1)
	if len(ids) == 0 {
		return "no question"
	}
	return "Answer for " + ids[len(ids)-1]
}

// passRetries ends each retry wait of the adapter as soon as it starts,
// by moving the fake clock: retries take no real time. It counts the
// waits it ended.
func passRetries(ctx context.Context, clock *clockwork.FakeClock) *atomic.Int64 {
	var n atomic.Int64
	go func() {
		for clock.BlockUntilContext(ctx, 1) == nil {
			clock.Advance(time.Hour) // longer than any wait
			n.Add(1)
		}
	}()
	return &n
}

// question is one message a human posted and where its answer belongs.
type question struct {
	id, room, event, thread string
}

func TestFaultSyncFailsAndRecovers(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(answerFor))
	// Alice has up to four questions waiting at once here; the per-user
	// limit is not what this test is about.
	w.botCfg.UserConcurrency = 20
	clock := clockwork.NewFakeClock()
	w.opts = append(w.opts, matrix.WithClock(clock)) // the production backoff, on a fake clock
	p := w.start()
	ctx := testCtx(t)
	waits := passRetries(ctx, clock)

	dm := w.hs.NewDM(alice)
	room := w.hs.NewRoom(alice, mallory)
	root := w.hs.Message(room, alice, w.mentionBot("q00 start a thread"))
	w.waitBot(ctx, room, "Answer for q00")
	asked := []question{{id: "q00", room: room, event: root, thread: root}}
	ask := func(thread bool) question {
		q := question{id: fmt.Sprintf("q%02d", len(asked)), room: dm}
		if thread {
			q.room, q.thread = room, root
			q.event = w.hs.Message(room, alice, inThread(q.id+" in the thread", root))
		} else {
			q.event = w.hs.Message(dm, alice, text(q.id+" in the DM"))
		}
		asked = append(asked, q)
		return q
	}
	answered := func(qs []question) {
		t.Helper()
		for _, q := range qs {
			w.waitBot(ctx, q.room, "Answer for "+q.id)
		}
	}

	// Each way a homeserver or its proxy fails, as an outage: every sync
	// fails until it is over, while the humans keep writing.
	for _, round := range []struct {
		name     string
		fault    matrixtest.SyncFault
		failures int // failed syncs before the outage ends
	}{
		{"503 from the proxy", matrixtest.SyncFault{Status: http.StatusServiceUnavailable}, 3},
		{"502 from the proxy", matrixtest.SyncFault{Status: http.StatusBadGateway}, 2},
		{"500 from the homeserver", matrixtest.SyncFault{Status: http.StatusInternalServerError}, 2},
		{"429 rate limited", matrixtest.RateLimited(7 * time.Second), 2},
		{"connection reset", matrixtest.ConnReset, 2},
		// Long enough for the backoff to reach its cap many times over.
		{"long outage", matrixtest.SyncFault{Status: http.StatusServiceUnavailable}, 15},
	} {
		_, failed := w.hs.SyncCounts()
		w.hs.SyncDown(round.fault) // the sync in flight fails at once
		qs := []question{ask(false), ask(true), ask(false)}
		if err := w.hs.WaitFailedSyncs(ctx, failed+round.failures); err != nil {
			t.Fatalf("%s: %v", round.name, err)
		}
		qs = append(qs, ask(true)) // still down
		w.hs.SyncUp()
		answered(qs)
	}

	// Failures that end by themselves: the next three syncs fail.
	_, failed := w.hs.SyncCounts()
	w.hs.FailSyncs(2, matrixtest.SyncFault{Status: http.StatusBadGateway})
	w.hs.FailSyncs(1, matrixtest.ConnReset)
	answered([]question{ask(false), ask(true)})
	if err := w.hs.WaitFailedSyncs(ctx, failed+3); err != nil {
		t.Fatal(err)
	}
	answered([]question{ask(false)}) // and it goes on
	p.stop()                         // Run returned nil: it never gave up

	checkAnsweredOnce(t, w, asked)
	if n := len(w.submits()); n != len(asked) {
		t.Errorf("%d Horde submits for %d questions", n, len(asked))
	}
	if waits.Load() == 0 {
		t.Error("the adapter never waited before retrying a failed sync")
	}
	checkSyncFailureLog(t, w.logs.String(), w.hs.Token())
}

// checkAnsweredOnce checks that each question got exactly one answer, in
// its room and thread, on a placeholder replying to it.
func checkAnsweredOnce(t *testing.T, w *world, asked []question) {
	t.Helper()
	bot := w.hs.BotMessages("")
	placeholders := 0
	for _, e := range bot {
		if strings.Contains(e.Shown(), "Asking the Horde") && e.Replaces() == "" {
			placeholders++
		}
	}
	if placeholders != len(asked) {
		t.Errorf("%d placeholders for %d questions\n%s", placeholders, len(asked), w.hs.Dump())
	}
	for _, q := range asked {
		var answers []matrixtest.Event
		for _, e := range bot {
			if strings.Contains(e.Shown(), "Answer for "+q.id) {
				answers = append(answers, e)
			}
		}
		if len(answers) != 1 {
			t.Errorf("%s: %d answers, want 1", q.id, len(answers))
			continue
		}
		ans := answers[0]
		ph, ok := w.hs.Event(ans.Replaces())
		switch {
		case ans.Room != q.room || !ok || ph.Room != q.room:
			t.Errorf("%s: answered in %s (placeholder %s), want %s", q.id, ans.Room, ans.Replaces(), q.room)
		case ph.ThreadRoot() != q.thread:
			t.Errorf("%s: answered in thread %q, want %q", q.id, ph.ThreadRoot(), q.thread)
		case q.thread != "" && ph.ReplyTo() != q.event:
			t.Errorf("%s: the placeholder replies to %s, want the question %s", q.id, ph.ReplyTo(), q.event)
		case w.hs.CurrentText(ph.ID) != ans.Shown():
			t.Errorf("%s: the placeholder shows %q, want the answer", q.id, w.hs.CurrentText(ph.ID))
		}
	}
}

// retryIn finds the waits the sync failure warnings announced.
var retryIn = regexp.MustCompile(`level=(\w+) msg="matrix sync failed; retrying".* retry_in=(\S+)`)

// checkSyncFailureLog checks the warnings: one per failed sync saying
// what failed and when the next try is, a rate limit's wait honoured,
// the backoff capped, and never the access token.
func checkSyncFailureLog(t *testing.T, logs, token string) {
	t.Helper()
	if strings.Contains(logs, token) {
		t.Error("the access token is in the logs")
	}
	for _, want := range []string{"HTTP 503", "HTTP 502", "M_UNKNOWN (HTTP 500)", "M_LIMIT_EXCEEDED (HTTP 429)", "retry_in=7s",
		`msg="matrix sync recovered"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not mention %q", want)
		}
	}
	var longest time.Duration
	lines := 0
	for _, m := range retryIn.FindAllStringSubmatch(logs, -1) {
		if m[1] != "WARN" {
			t.Errorf("not a warning: %s", m[0])
		}
		d, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatalf("retry_in=%s: %v", m[2], err)
		}
		longest = max(longest, d)
		lines++
	}
	// The long outage's 15 failures in a row double the wait from 1 s
	// past the 1 min cap; jitter keeps it above half the cap.
	if longest < 30*time.Second || longest > time.Minute {
		t.Errorf("the longest retry wait is %v, want between 30s and the 1m cap", longest)
	}
	if lines < 26 {
		t.Errorf("%d sync failure warnings, want one per failed sync (26 or more)", lines)
	}
}

// refusedAtStart makes the first whoami requests fail as when the
// homeserver is not up yet (nothing listens).
// refusedAtStart refuses the connection of the first left requests to a
// path ending in path (default /account/whoami), as a homeserver that is
// not up yet would.
type refusedAtStart struct {
	path string
	left atomic.Int32
	next http.RoundTripper
}

func (r *refusedAtStart) RoundTrip(req *http.Request) (*http.Response, error) {
	path := r.path
	if path == "" {
		path = "/account/whoami"
	}
	if strings.HasSuffix(req.URL.Path, path) && r.left.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return r.next.RoundTrip(req)
}

func TestFaultHomeserverDownAtStartIsWaitedFor(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(answerFor))
	clock := clockwork.NewFakeClock()
	tr := &refusedAtStart{next: http.DefaultTransport}
	tr.left.Store(3)
	w.opts = append(w.opts, matrix.WithClock(clock), matrix.WithHTTPClient(&http.Client{Transport: tr}))
	ctx := testCtx(t)
	waits := passRetries(ctx, clock)
	w.start() // Ready: it logged in after all
	dm := w.hs.NewDM(alice)
	w.hs.Message(dm, alice, text("q01 are you there?"))
	w.waitBot(ctx, dm, "Answer for q01")
	logs := w.logs.String()
	if n := strings.Count(logs, `level=WARN msg="matrix homeserver unavailable at start; retrying"`); n != 3 {
		t.Errorf("%d start-up retry warnings, want 3\n%s", n, logs)
	}
	if n := waits.Load(); n < 3 {
		t.Errorf("%d retry waits, want 3", n)
	}
}

func TestFaultRevokedTokenAtStartIsNotRetried(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mcfg.AccessToken = "syt_revoked_token_0123"
	// The clock never moves: a retry would wait forever.
	w.opts = append(w.opts, matrix.WithClock(clockwork.NewFakeClock()))
	var a *matrix.Adapter
	bridgetest.Service(t, w.bridgeCfg, w.horde, w.journal, func(svc *bridge.Service) {
		e, err := bot.NewEngine(w.botCfg, bot.Deps{Store: w.store, Bridge: svc, Log: w.log})
		if err != nil {
			t.Fatal(err)
		}
		if a, err = matrix.New(w.mcfg, e, w.log, w.opts...); err != nil {
			t.Fatal(err)
		}
		e.AddPlatform(a)
	})
	err := a.Run(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "M_UNKNOWN_TOKEN") {
		t.Fatalf("Run = %v, want the refused token", err)
	}
	if strings.Contains(err.Error(), w.mcfg.AccessToken) || strings.Contains(w.logs.String(), w.mcfg.AccessToken) {
		t.Error("the token is in the error or the logs")
	}
}
