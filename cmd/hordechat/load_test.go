package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	oai "github.com/openai/openai-go"
	"github.com/openai/openai-go/option"

	"github.com/hordechat/hordechat/bot/discord/discordtest"
	"github.com/hordechat/hordechat/bot/matrix/matrixtest"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
	"github.com/hordechat/hordechat/storage"
)

// Load runs: hordechat as its own process (child_test.go) under many
// concurrent chat conversations and /v1 clients, against fakes in this
// process, measured from outside: RSS from /proc, goroutines from
// /metrics, what the fake Horde saw, and latency added to the Horde's own
// time per question.

// loadSpec is the size of a load run.
type loadSpec struct {
	discordChats int // conversations on Discord: one user, one channel each
	matrixChats  int // conversations on Matrix: one user, one direct chat each
	chatTurns    int // questions per conversation, each after the last answer
	v1Clients    int // OpenAI SDK clients, one personal token each
	v1Turns      int // requests per client, one after the other
	jobTokens    int // answer length: each Horde job lasts jobTokens/10 s
}

// loadRun is a hordechat child with its fakes, ready for load.
type loadRun struct {
	spec     loadSpec
	child    *child
	horde    *hordetest.Server
	hordeSrv *countingServer
	dc       *discordtest.Server
	dcSrv    *countingServer
	hs       *matrixtest.Server
	mxRooms  []string
	mxUsers  []string
	book     *answerBook
	guild    string
	channels []string
	users    []*discordgo.User
	tokens   []string
	v1HTTP   *http.Transport
}

// loadEnv is the child's configuration. Limits lifted for the load: the
// poll budget (bridge.status_calls_per_second 100, the maximum), the chat
// rate per user (chat.user_rate 0: two rounds ask more than its burst of
// 3 within a minute) and, in the fake Horde, rate limits and the
// operator's concurrency. /v1 per-caller limits keep their defaults (30 a
// minute, bursts of 10, 3 at once): each client asks one question at a
// time.
func loadEnv(dir, hordeURL, discordURL, discordToken string, hs *matrixtest.Server) []string {
	env := []string{
		"HORDECHAT_STORAGE__PATH=" + filepath.Join(dir, "hordechat.db"),
		"HORDECHAT_HTTP__LISTEN=127.0.0.1:0",
		"HORDECHAT_LOG__LEVEL=info", // startChild waits for the "ready" line
		"HORDECHAT_HORDE__BASE_URL=" + hordeURL,
		"HORDECHAT_HORDE__API_KEY=" + loadOperatorKey,
		"HORDECHAT_HORDE__PROXY_PASSKEY=" + bridgetest.Passkey,
		"HORDECHAT_BRIDGE__STATUS_CALLS_PER_SECOND=100",
		"HORDECHAT_CHAT__USER_RATE=0s",
		"HORDECHAT_DISCORD__TOKEN=" + discordToken,
		"HORDECHAT_DISCORD__API_BASE_URL=" + discordURL + "/api/v10",
	}
	if hs != nil {
		env = append(env, "HORDECHAT_MATRIX__HOMESERVER="+hs.URL(), "HORDECHAT_MATRIX__USER_ID="+hs.BotID(), "HORDECHAT_MATRIX__ACCESS_TOKEN="+hs.Token())
	}
	return env
}

// startLoad starts the fakes and the child, makes the users, channels,
// rooms and tokens, and waits until the child has its models, its Discord
// commands registered and its first Matrix sync done.
func startLoad(ctx context.Context, tb testing.TB, spec loadSpec) *loadRun {
	tb.Helper()
	l := &loadRun{spec: spec, book: newAnswerBook()}
	l.horde, l.hordeSrv = loadHorde(tb, spec.jobTokens)
	l.dc, l.dcSrv = loadDiscord(tb, l.book)
	g := l.dc.AddGuild(&discordgo.Guild{Name: "load", OwnerID: "100000000000000009"})
	l.guild = g.ID
	for i := range spec.discordChats {
		u := l.dc.AddUser(&discordgo.User{Username: fmt.Sprintf("user%04d", i)})
		ch := l.dc.AddChannel(&discordgo.Channel{GuildID: g.ID, Name: fmt.Sprintf("chat-%04d", i), Type: discordgo.ChannelTypeGuildText})
		l.users = append(l.users, u)
		l.channels = append(l.channels, ch.ID)
	}
	if spec.matrixChats > 0 {
		l.hs = matrixtest.New(tb)
		for i := range spec.matrixChats {
			u := fmt.Sprintf("@load%04d:%s", i, matrixtest.ServerName)
			l.mxUsers = append(l.mxUsers, u)
			l.mxRooms = append(l.mxRooms, l.hs.NewDM(u))
		}
	}
	dir := tb.TempDir()
	l.tokens = makeTokens(ctx, tb, filepath.Join(dir, "hordechat.db"), spec.v1Clients)
	l.child = startChild(tb, loadEnv(dir, l.horde.URL, l.dc.URL, l.dc.Token(), l.hs))
	l.v1HTTP = &http.Transport{MaxIdleConnsPerHost: max(spec.v1Clients, 2)}
	tb.Cleanup(l.v1HTTP.CloseIdleConnections)

	if err := pollUntil(ctx, 20*time.Millisecond, func() (bool, error) { return l.modelsOnHealthz(ctx) }); err != nil {
		tb.Fatalf("models never loaded: %v\n%s", err, l.child.stderr.String())
	}
	if _, err := l.dc.WaitRequest(ctx, func(r discordtest.Request) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.Path, "/commands") && r.Status == http.StatusOK
	}); err != nil {
		tb.Fatalf("discord never got ready: %v\n%s", err, l.child.stderr.String())
	}
	if l.hs != nil { // messages older than the first sync are backlog, not answered
		if err := pollUntil(ctx, 20*time.Millisecond, func() (bool, error) {
			return strings.Contains(l.child.stderr.String(), `"msg":"matrix connected"`), nil
		}); err != nil {
			tb.Fatalf("matrix never connected: %v\n%s", err, l.child.stderr.String())
		}
	}
	return l
}

// modelsOnHealthz reports whether /healthz counts models.
func (l *loadRun) modelsOnHealthz(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.child.url()+"/healthz", nil)
	if err != nil {
		return false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var body struct {
		Models int `json:"models"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return false, err
	}
	return body.Models > 0, nil
}

// makeTokens creates n chat users with a personal /v1 token each in the
// database the child will open.
func makeTokens(ctx context.Context, tb testing.TB, path string, n int) []string {
	tb.Helper()
	cfg := storage.DefaultConfig()
	cfg.Path = path
	st, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	tokens := make([]string, n)
	for i := range tokens {
		u, err := st.UpsertUser(ctx, "discord", strconv.Itoa(900000+i), fmt.Sprintf("v1user%04d", i))
		if err != nil {
			tb.Fatal(err)
		}
		if tokens[i], _, err = st.CreateAPIToken(ctx, u.ID, "load"); err != nil {
			tb.Fatal(err)
		}
	}
	return tokens
}

// loadFigures is what one round of load measured.
type loadFigures struct {
	round                                    int
	idleRSS, idleGoroutines                  float64 // before the round
	peakRSS, peakGoroutines                  float64 // during it (VmHWM; /metrics samples)
	afterRSS, afterGoroutines, afterHeapGoal float64 // once goroutines settled
	settled                                  bool    // goroutines fell back near idle
	chat, v1                                 addedTimes
	questions                                int // questions asked
	answers                                  int // right answers received
	submits, statusCalls                     int // what the fake Horde saw
	hordeConns, discordConns                 int64
	elapsed                                  time.Duration // first question to last answer
	userErrors                               []string      // what reached users instead of an answer
	childWarnings                            int           // WARN and ERROR lines the child logged so far
}

// addedTimes is the latency hordechat added to questions, sorted: in all,
// before the Horde had the request, and after it was done, split into
// until a status poll saw it done and from there to the answer.
type addedTimes struct{ total, before, after, notice, deliver []time.Duration }

func (a *addedTimes) sort() {
	for _, d := range [][]time.Duration{a.total, a.before, a.after, a.notice, a.deliver} {
		slices.Sort(d)
	}
}

// goroutineSlack is how many goroutines above the idle count still count
// as settled: housekeeping and connections opened after the fakes closed
// theirs.
const goroutineSlack = 16

// run puts a round of load on at once, waits for every answer, and
// measures. Rounds ask new questions (round is in the markers) in new
// Discord threads.
func (l *loadRun) run(ctx context.Context, tb testing.TB, round int) loadFigures {
	tb.Helper()
	f := loadFigures{round: round}
	var err error
	if f.idleGoroutines, err = l.child.metric(ctx, "go_goroutines"); err != nil {
		tb.Fatal(err)
	}
	rss, _, _ := l.child.memory()
	f.idleRSS = float64(rss)
	l.horde.ResetRequests()
	conns0, dcConns0 := l.hordeSrv.conns.Load(), l.dcSrv.conns.Load()

	stopSampling := l.sampleGoroutines(ctx, &f.peakGoroutines)
	lat := &latencies{at: map[string]span{}}
	var errs errorList
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range l.spec.discordChats {
		wg.Go(func() {
			<-gate
			errs.add(l.discordChat(ctx, round, i, lat))
		})
	}
	for i := range l.spec.matrixChats {
		wg.Go(func() {
			<-gate
			errs.add(l.matrixChat(ctx, round, i, lat))
		})
	}
	for i := range l.spec.v1Clients {
		wg.Go(func() {
			<-gate
			errs.add(l.v1Client(ctx, round, i, lat))
		})
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	f.elapsed = time.Since(start)
	stopSampling()
	_, peak, _ := l.child.memory()
	f.peakRSS = float64(peak)

	f.questions = (l.spec.discordChats+l.spec.matrixChats)*l.spec.chatTurns + l.spec.v1Clients*l.spec.v1Turns
	f.answers = len(lat.at)
	f.userErrors = append(l.book.oddMessages(), errs.list()...)
	f.submits = len(l.horde.RequestsTo(http.MethodPost, "/v2/generate/text/async"))
	f.statusCalls = len(l.horde.RequestsTo(http.MethodGet, "/v2/generate/text/status/"))
	f.hordeConns, f.discordConns = l.hordeSrv.conns.Load()-conns0, l.dcSrv.conns.Load()-dcConns0
	f.chat, f.v1 = l.added(tb, lat)

	// Close the keep-alive connections between the child and the fakes
	// (their goroutines would otherwise live until the idle timeouts, 90 s
	// and 2 min; the Discord gateway, hijacked, stays), then wait (bounded)
	// for the child's goroutines to fall back near the idle count.
	l.v1HTTP.CloseIdleConnections()
	l.hordeSrv.CloseClientConnections()
	l.dcSrv.CloseClientConnections()
	limit := f.idleGoroutines + goroutineSlack
	settleCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_ = pollUntil(settleCtx, 100*time.Millisecond, func() (bool, error) {
		n, err := l.child.metric(ctx, "go_goroutines")
		f.afterGoroutines = n
		return err == nil && n <= limit, nil
	})
	f.settled = f.afterGoroutines <= limit
	// The GC's goal is twice the heap that was live after the last GC.
	f.afterHeapGoal, _ = l.child.metric(ctx, "go_memstats_next_gc_bytes")
	rss, _, _ = l.child.memory()
	f.afterRSS = float64(rss)
	logs := l.child.stderr.String()
	f.childWarnings = strings.Count(logs, `"level":"WARN"`) + strings.Count(logs, `"level":"ERROR"`)
	return f
}

// discordChat is one person on Discord: a mention in their channel, then
// the next questions in the thread the bot answered in.
func (l *loadRun) discordChat(ctx context.Context, round, i int, lat *latencies) error {
	channel := l.channels[i]
	for t := range l.spec.chatTurns {
		marker := fmt.Sprintf("LD-d%04d-t%d", i, round*l.spec.chatTurns+t)
		start := time.Now()
		m := l.dc.SendMessage(discordtest.UserMessage{
			ChannelID: channel, GuildID: l.guild, Author: l.users[i],
			Content: "<@" + l.dc.BotUser().ID + "> " + marker + " what is new?",
		})
		if t == 0 {
			channel = m.ID // the bot answers in a thread started from the message
		}
		at, err := l.book.wait(ctx, marker)
		if err != nil {
			return fmt.Errorf("%s: no answer on discord: %w", marker, err)
		}
		lat.add(marker, start, at)
	}
	return nil
}

// matrixChat is one person in a direct chat with the bot on Matrix.
func (l *loadRun) matrixChat(ctx context.Context, round, i int, lat *latencies) error {
	room, user, bot := l.mxRooms[i], l.mxUsers[i], l.hs.BotID()
	for t := range l.spec.chatTurns {
		marker := fmt.Sprintf("LD-m%04d-t%d", i, round*l.spec.chatTurns+t)
		start := time.Now()
		l.hs.Say(room, user, marker+" what is new?")
		e, err := l.hs.WaitEvent(ctx, room, "the answer to "+marker, func(e matrixtest.Event) bool {
			text := e.Shown()
			return e.Sender == bot && e.Type == "m.room.message" && (strings.Contains(text, "Answer "+marker) || unexpected(text))
		})
		if err != nil {
			return fmt.Errorf("%s: no answer on matrix: %w", marker, err)
		}
		if !strings.Contains(e.Shown(), "Answer "+marker) {
			l.book.fail(e.Shown()) // counted once, and the run stops
			return nil
		}
		lat.add(marker, start, time.UnixMilli(e.TS)) // when the homeserver stored it
	}
	return nil
}

// v1Client is one OpenAI SDK user with a personal token.
func (l *loadRun) v1Client(ctx context.Context, round, i int, lat *latencies) error {
	client := oai.NewClient(option.WithBaseURL(l.child.url()+"/v1/"), option.WithAPIKey(l.tokens[i]),
		option.WithHTTPClient(&http.Client{Transport: l.v1HTTP}), option.WithMaxRetries(0))
	for t := range l.spec.v1Turns {
		marker := fmt.Sprintf("LD-v%04d-t%d", i, round*l.spec.v1Turns+t)
		start := time.Now()
		resp, err := client.Chat.Completions.New(ctx, oai.ChatCompletionNewParams{
			Model:    "Fimbulvetr-11B-v2",
			Messages: []oai.ChatCompletionMessageParamUnion{oai.UserMessage(marker + " what is new?")},
		})
		end := time.Now()
		if err != nil {
			return fmt.Errorf("%s: /v1: %w", marker, err)
		}
		if len(resp.Choices) != 1 || !strings.Contains(resp.Choices[0].Message.Content, "Answer "+marker) {
			return fmt.Errorf("%s: /v1 answered %+v", marker, resp.Choices)
		}
		lat.add(marker, start, end)
	}
	return nil
}

// added is each answered question's end-to-end time minus the Horde's own
// time for its request (creation to the end of its last job), split into
// chat and /v1, and into before the Horde had it and after it was done.
func (l *loadRun) added(tb testing.TB, lat *latencies) (chat, v1 addedTimes) {
	tb.Helper()
	type hordeSpan struct {
		first, last time.Time     // creation of the first request, end of the last
		own         time.Duration // the Horde's time, summed over resubmits
		seen        time.Time     // the last status call for the last request
	}
	lastPoll := map[string]time.Time{}
	for _, r := range l.horde.RequestsTo(http.MethodGet, "/v2/generate/text/status/") {
		id := r.Path[strings.LastIndexByte(r.Path, '/')+1:]
		lastPoll[id] = later(lastPoll[id], r.Time)
	}
	horde := map[string]hordeSpan{}
	for _, id := range l.horde.RequestIDs() {
		info, ok := l.horde.Request(id)
		tl, ok2 := l.horde.Timeline(id)
		m := lastMarker(info.Prompt)
		if !ok || !ok2 || !tl.Done || m == "" {
			continue
		}
		h, seen := horde[m]
		if !seen || tl.Created.Before(h.first) {
			h.first = tl.Created
		}
		if tl.DoneAt.After(h.last) {
			h.last, h.seen = tl.DoneAt, lastPoll[id]
		}
		h.own += tl.DoneAt.Sub(tl.Created)
		horde[m] = h
	}
	lat.mu.Lock()
	defer lat.mu.Unlock()
	for m, sp := range lat.at {
		h, ok := horde[m]
		if !ok {
			tb.Errorf("%s was answered without a finished Horde request", m)
			continue
		}
		to := &chat
		if strings.HasPrefix(m, "LD-v") {
			to = &v1
		}
		to.total = append(to.total, sp.end.Sub(sp.start)-h.own)
		to.before = append(to.before, h.first.Sub(sp.start))
		to.after = append(to.after, sp.end.Sub(h.last))
		if !h.seen.Before(h.last) { // a poll saw it done
			to.notice = append(to.notice, h.seen.Sub(h.last))
			to.deliver = append(to.deliver, sp.end.Sub(h.seen))
		}
	}
	chat.sort()
	v1.sort()
	return chat, v1
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sampleGoroutines reads go_goroutines every 100 ms into peak until the
// returned stop is called.
func (l *loadRun) sampleGoroutines(ctx context.Context, peak *float64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if n, err := l.child.metric(ctx, "go_goroutines"); err == nil {
				*peak = max(*peak, n)
			}
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// latencies are when each question was asked and answered, by marker.
type latencies struct {
	mu sync.Mutex
	at map[string]span
}

type span struct{ start, end time.Time }

func (l *latencies) add(marker string, start, end time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at[marker] = span{start, end}
}

// errorList collects errors from many goroutines.
type errorList struct {
	mu   sync.Mutex
	errs []string
}

func (e *errorList) add(err error) {
	if err == nil || errors.Is(err, errTrouble) { // the error is already in the answer book
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, err.Error())
}

func (e *errorList) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.errs...)
}

// pollUntil calls cond every interval until it reports true, returns an
// error, or ctx ends: a bounded wait on a condition only observable by
// asking.
func pollUntil(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil && ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return errors.Join(ctx.Err(), err)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// percentile of sorted durations, nearest rank; 0 for none.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

const mb = 1 << 20

// report puts the first round's figures, and memory after the second, on
// the benchmark line.
func report(b *testing.B, f, f2 loadFigures) {
	b.ReportMetric(f.idleRSS/mb, "idle-RSS-MB")
	b.ReportMetric(f.peakRSS/mb, "peak-RSS-MB")
	b.ReportMetric(f.afterRSS/mb, "after-RSS-MB")
	b.ReportMetric(f2.afterRSS/mb, "after2-RSS-MB")
	b.ReportMetric(f.afterHeapGoal/mb, "after-heap-goal-MB")
	b.ReportMetric(f2.afterHeapGoal/mb, "after2-heap-goal-MB")
	b.ReportMetric(f.idleGoroutines, "idle-goroutines")
	b.ReportMetric(f.peakGoroutines, "peak-goroutines")
	b.ReportMetric(f.afterGoroutines, "after-goroutines")
	b.ReportMetric(ms(percentile(f.chat.total, 0.5)), "chat-p50-added-ms")
	b.ReportMetric(ms(percentile(f.chat.total, 0.99)), "chat-p99-added-ms")
	b.ReportMetric(ms(percentile(f.v1.total, 0.5)), "v1-p50-added-ms")
	b.ReportMetric(ms(percentile(f.v1.total, 0.99)), "v1-p99-added-ms")
	b.ReportMetric(float64(f.statusCalls)/float64(max(f.submits, 1)), "status-calls/job")
	b.ReportMetric(float64(f.answers)/f.elapsed.Seconds(), "answers/s")
}

// String is the figures as a small table.
func (f loadFigures) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "round %d: questions %d, answers %d, errors reaching users %d, child warnings %d, in %s (%.1f answers/s)\n",
		f.round+1, f.questions, f.answers, len(f.userErrors), f.childWarnings, f.elapsed.Round(time.Millisecond), float64(f.answers)/f.elapsed.Seconds())
	fmt.Fprintf(&s, "RSS MB idle %.1f, peak %.1f, after %.1f; heap goal after %.1f MB; goroutines idle %.0f, peak %.0f, after %.0f (settled: %v)\n",
		f.idleRSS/mb, f.peakRSS/mb, f.afterRSS/mb, f.afterHeapGoal/mb, f.idleGoroutines, f.peakGoroutines, f.afterGoroutines, f.settled)
	for _, a := range []struct {
		name string
		t    addedTimes
	}{{"chat", f.chat}, {"/v1", f.v1}} {
		p := func(d []time.Duration) string {
			return fmt.Sprintf("%.0f/%.0f", ms(percentile(d, 0.5)), ms(percentile(d, 0.99)))
		}
		fmt.Fprintf(&s, "%-4s added ms p50/p99 %s (max %.0f, n %d): before submit %s, after done %s = poll %s + deliver %s\n",
			a.name, p(a.t.total), ms(percentile(a.t.total, 1)), len(a.t.total), p(a.t.before), p(a.t.after), p(a.t.notice), p(a.t.deliver))
	}
	fmt.Fprintf(&s, "horde: %d submits, %d status calls (%.2f a job), %d TCP connections opened; discord: %d TCP connections",
		f.submits, f.statusCalls, float64(f.statusCalls)/float64(max(f.submits, 1)), f.hordeConns, f.discordConns)
	for i, e := range f.userErrors {
		if i == 5 {
			fmt.Fprintf(&s, "\n... and %d more errors", len(f.userErrors)-5)
			break
		}
		fmt.Fprintf(&s, "\nerror: %s", e)
	}
	return s.String()
}

// TestLoadHarness runs the load harness small, two rounds on one child:
// every question gets its own answer, nothing but progress and answers
// reaches users, the Horde saw one submit per question and at least one
// status call per job, latencies pair with Horde timelines, sampling saw
// the load, and the child's goroutines fall back near the idle count after
// each round.
func TestLoadHarness(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // a hang guard only
	defer cancel()
	spec := loadSpec{discordChats: 15, matrixChats: 5, chatTurns: 2, v1Clients: 10, v1Turns: 2, jobTokens: 15}
	l := startLoad(ctx, t, spec)
	for round := range 2 {
		f := l.run(ctx, t, round)
		t.Logf("\n%s", f)
		if len(f.userErrors) > 0 || f.answers != f.questions {
			t.Fatalf("%d of %d questions answered, errors: %q\n%s", f.answers, f.questions, f.userErrors, l.child.stderr.String())
		}
		if len(f.chat.total) != 40 || len(f.v1.total) != 20 {
			t.Errorf("latencies paired with the Horde: chat %d, /v1 %d", len(f.chat.total), len(f.v1.total))
		}
		if f.submits != f.questions || f.statusCalls < f.submits {
			t.Errorf("the Horde saw %d submits and %d status calls for %d questions", f.submits, f.statusCalls, f.questions)
		}
		if f.peakGoroutines <= f.idleGoroutines || f.peakRSS < f.idleRSS {
			t.Errorf("sampling saw no load: goroutines %v -> %v, RSS %v -> %v", f.idleGoroutines, f.peakGoroutines, f.idleRSS, f.peakRSS)
		}
		if !f.settled {
			t.Fatalf("goroutines did not fall back: idle %v, after %v (limit +%d)\n%s", f.idleGoroutines, f.afterGoroutines, goroutineSlack, goroutineDump(l.child))
		}
	}
	l.child.stop()
}

// BenchmarkLoad1000ChatsAnd500V1: 1,000 people chatting, 750 on Discord
// (two questions each, the second in the bot's thread) and 250 on Matrix
// (two in their direct chat), and 500 OpenAI SDK clients (two requests
// each), all starting at once, against one hordechat process; each Horde
// job takes 3 s. A second round on the same
// process shows whether memory keeps growing. One run takes a minute or
// two, so the default benchtime runs it once.
func BenchmarkLoad1000ChatsAnd500V1(b *testing.B) {
	spec := loadSpec{discordChats: 750, matrixChats: 250, chatTurns: 2, v1Clients: 500, v1Turns: 2, jobTokens: 30}
	var f, f2 loadFigures
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hang guard only
		b.StopTimer()
		l := startLoad(ctx, b, spec)
		b.StartTimer()
		f = l.run(ctx, b, 0)
		b.StopTimer()
		f2 = l.run(ctx, b, 1)
		b.Logf("%s\n%s", f, f2) // at most 10 lines: the rest of a benchmark's log is cut
		for _, r := range []loadFigures{f, f2} {
			if len(r.userErrors) > 0 || r.answers != r.questions {
				b.Errorf("%d of %d questions answered; %d errors reached users", r.answers, r.questions, len(r.userErrors))
			}
		}
		if f.settled && f2.settled {
			l.child.stop()
		} else {
			b.Errorf("goroutines did not fall back near idle:\n%s", goroutineDump(l.child))
		}
		cancel()
	}
	report(b, f, f2)
}

// goroutineDump ends the child with SIGQUIT, whose Go runtime prints
// every goroutine, and summarises them by state and function, most
// frequent first.
func goroutineDump(c *child) string {
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.exited:
	case <-time.After(childReadyTimeout):
		return "(no dump: the child did not exit on SIGQUIT)"
	}
	out := c.stderr.String()
	i := strings.Index(out, "\ngoroutine ")
	if i < 0 {
		return "(no goroutine dump in the child's output)"
	}
	counts := map[string]int{}
	for _, block := range strings.Split(out[i+1:], "\n\n") {
		lines := strings.SplitN(block, "\n", 3)
		if len(lines) < 2 || !strings.HasPrefix(lines[0], "goroutine ") {
			continue
		}
		state := lines[0][strings.Index(lines[0], "["):]
		if j := strings.Index(state, ","); j > 0 {
			state = state[:j] + "]"
		}
		fn := lines[1]
		if len(lines) == 3 { // the first frame of ours says more than a runtime one
			for _, l := range strings.Split(lines[2], "\n") {
				if strings.Contains(l, "hordechat/") && !strings.HasPrefix(l, "\t") {
					fn += " <- " + l
					break
				}
			}
		}
		counts[state+" "+fn]++
	}
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range counts {
		all = append(all, kv{k, n})
	}
	slices.SortFunc(all, func(a, b kv) int { return b.n - a.n })
	var s strings.Builder
	for i, e := range all {
		if i == 25 {
			break
		}
		fmt.Fprintf(&s, "%5d %s\n", e.n, e.k)
	}
	return s.String()
}
