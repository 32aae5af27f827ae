package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	oai "github.com/openai/openai-go"
	"github.com/openai/openai-go/option"

	"github.com/hordechat/hordechat/hordeapi/hordetest"
	"github.com/hordechat/hordechat/storage"
)

// k9Scenario is where the jobs stand when the process dies.
type k9Scenario struct {
	name string
	// held: the first batch of answers is finished at the Horde but no
	// status call gets through, so nothing is delivered before the kill.
	held bool
	// refused: the homeserver refuses the bot's sends, so Matrix answers
	// are kept in the journal undelivered until the kill; it accepts them
	// again before the restart.
	refused bool
	// Otherwise the kill comes right after some answers were posted, with
	// others between the post and the journal update.
}

// TestFaultKill9With100JobsInFlight kills hordechat with SIGKILL while 100
// jobs are in flight (Discord mentions, thread replies, DMs and /chat; /v1
// streaming and not), restarts it on the same data and lets the Horde
// finish: every chat answer arrives exactly once where it was asked, the
// history has every turn once, linked keys still work, and the /v1 jobs
// whose callers are gone are cancelled at the Horde and delivered nowhere.
func TestFaultKill9With100JobsInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("runs hordechat twice with 100 jobs in flight")
	}
	for _, sc := range []k9Scenario{
		{name: "answers held at the Horde", held: true},
		{name: "kill while answers are posted"},
		{name: "matrix answers kept undelivered", refused: true},
	} {
		t.Run(sc.name, func(t *testing.T) { runK9(t, sc) })
	}
}

// The mix of the 100 jobs in flight: Discord 50, Matrix 20, /v1 30.
const (
	k9Users      = 12 // Discord
	k9Channels   = 10
	k9Linked     = 3
	k9Mentions   = 18 // new Discord threads
	k9MxUsers    = 6
	k9MxRooms    = 2
	k9MxLinked   = 1
	k9MxThreads  = 5 // Matrix threads with history
	k9MxMentions = 10
	k9MxDMs      = 5
	k9V1Jobs     = 30 // half of them streaming
	k9V1Callers  = 3
)

func runK9(t *testing.T, sc k9Scenario) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*k9Timeout)
	defer cancel()
	w := newK9World(t, k9Users, k9Channels, k9Linked, k9V1Callers)
	w.addMatrix(k9MxUsers, k9MxRooms, k9MxLinked)
	first := w.start(ctx, true)

	// Before: some people link their Horde keys, and every kind of
	// conversation gets one finished turn of history.
	for i := range k9Linked {
		w.link(ctx, i)
	}
	for i := range k9MxLinked {
		w.mxLink(ctx, i)
	}
	var history []k9Turn
	threads := make([]k9Turn, k9Channels)
	for c := range k9Channels {
		threads[c] = w.mention(c, c%k9Users, fmt.Sprintf("H%03d", c))
		history = append(history, threads[c])
	}
	for u := range k9Users / 2 {
		history = append(history, w.dm(u, fmt.Sprintf("H%03d", 100+u)))
	}
	for c := range 3 {
		history = append(history, w.slashChat(c, 6+c, fmt.Sprintf("H%03d", 200+c)))
	}
	mxThreads := make([]k9Turn, k9MxThreads)
	for i := range k9MxThreads {
		mxThreads[i] = w.mxMention(i%k9MxRooms, i%k9MxUsers, fmt.Sprintf("H%03d", 300+i))
		history = append(history, mxThreads[i])
	}
	for u := range 3 {
		history = append(history, w.mxDM(u, fmt.Sprintf("H%03d", 400+u)))
	}
	w.waitSubmitted(ctx, first, tagsOf(history))
	w.finishAll()
	for _, tu := range history {
		if err := w.waitAnswer(ctx, tu); err != nil {
			t.Fatalf("history turn %s not answered: %v\n%s", tu.tag, err, first.stderr.String())
		}
	}

	// 100 jobs in flight.
	var flight []k9Turn
	for c := range k9Channels {
		flight = append(flight, w.inThread(threads[c], c%k9Users, fmt.Sprintf("T%03d", c)))
	}
	for i := range k9Mentions {
		flight = append(flight, w.mention(i%k9Channels, i%k9Users, fmt.Sprintf("M%03d", i)))
	}
	for u := range k9Users {
		flight = append(flight, w.dm(u, fmt.Sprintf("P%03d", u)))
	}
	for c := range k9Channels {
		flight = append(flight, w.slashChat(c, (c+3)%k9Users, fmt.Sprintf("S%03d", c)))
	}
	for i, th := range mxThreads {
		flight = append(flight, w.mxInThread(th, (i+1)%k9MxUsers, fmt.Sprintf("U%03d", i)))
	}
	for i := range k9MxMentions {
		flight = append(flight, w.mxMention(i%k9MxRooms, i%k9MxUsers, fmt.Sprintf("R%03d", i)))
	}
	for u := range k9MxDMs {
		flight = append(flight, w.mxDM(u, fmt.Sprintf("D%03d", u)))
	}
	v1 := startK9V1(ctx, first.url(), w.v1Keys, k9V1Jobs)
	v1Tags := make([]string, k9V1Jobs)
	for i := range v1Tags {
		v1Tags[i] = k9V1Tag(i)
	}
	inFlight := append(tagsOf(flight), v1Tags...)
	if len(inFlight) != 100 {
		t.Fatalf("%d jobs planned, want 100", len(inFlight))
	}
	w.waitSubmitted(ctx, first, inFlight)

	// Where the kill finds them.
	if sc.held {
		// Every status call hangs from now on; once the scheduler's
		// calls in flight all hang, none can see what finishes next.
		hang := w.horde.Inject(hordetest.Fault{Kind: hordetest.FaultHang, Method: http.MethodGet, Path: "/v2/generate/text/status/"})
		if err := hang.WaitHits(ctx, 8); err != nil {
			t.Fatalf("status calls never hung: %v", err)
		}
		w.horde.Advance(k9JobTime) // the first batch finishes at the Horde
	} else if sc.refused {
		for _, room := range w.mx.allRooms() {
			w.mx.hs.Leave(room, w.mx.hs.BotID())
		}
		// Finish a Matrix job (and others with it) and wait until its
		// answer could not be sent: the process keeps it in the journal.
		w.finish(w.idsOf(w.mx.firstTag(flight)))
		if err := k9Poll(ctx, "a refused Matrix delivery", func() bool {
			return k9LogHas(first.stderr.String(), `"msg":"deliver","component":"bridge"`, `"platform":"matrix"`)
		}); err != nil {
			t.Fatalf("%v\n%s", err, first.stderr.String())
		}
	} else {
		w.horde.Advance(k9JobTime)
		if err := k9Poll(ctx, "answers posted", func() bool { return len(w.answered(flight)) >= 5 }); err != nil {
			t.Fatalf("%v\n%s", err, first.stderr.String())
		}
	}
	first.kill9()
	killedAt := time.Now()
	w.track()
	postedBeforeKill := len(w.answered(flight))
	doneAtKill := map[string]bool{}
	for id := range w.tags {
		if st, ok := w.horde.Status(id); ok && st.Done {
			doneAtKill[id] = true
		}
	}
	if sc.held && postedBeforeKill != 0 {
		t.Errorf("%d answers were posted though no status call got through", postedBeforeKill)
	}
	mark := len(w.horde.Requests())

	// The /v1 callers lose their connections: an error each, no hang.
	v1Answered := map[string]bool{}
	for range k9V1Jobs {
		var r k9V1Result
		select {
		case r = <-v1:
		case <-ctx.Done():
			t.Fatal("a /v1 caller hangs after the kill")
		}
		switch {
		case r.err == nil && strings.Contains(r.content, "Answer to "+r.tag+":"):
			v1Answered[r.tag] = true
		case r.err == nil:
			t.Errorf("/v1 %s (stream %v) ended without an error nor its answer: %q", r.tag, r.stream, r.content)
		}
	}
	if sc.held && len(v1Answered) > 0 {
		t.Errorf("/v1 answers came though no status call got through: %v", v1Answered)
	}

	// Restart on the same data; the Horde lets go of the held calls, the
	// homeserver takes the bot back.
	w.horde.ClearFaults()
	if sc.refused {
		for _, room := range w.mx.allRooms() {
			w.mx.hs.Join(room, w.mx.hs.BotID())
		}
	}
	second := w.start(ctx, false)
	restartedIn := time.Since(killedAt)

	// Linked users ask again after the restart. The Matrix question is
	// asked in a DM whose resumed job is still with the Horde: it waits
	// in the DM's queue until that answer is in, so the Horde finishes
	// what it has first.
	after := []k9Turn{w.mention(0, 0, "X000"), w.mxDM(0, "Y000")}
	w.finishAll()
	w.waitSubmitted(ctx, second, tagsOf(after))
	w.finishAll()
	all := slices.Concat(history, flight, after)
	for _, tu := range all {
		if err := w.waitAnswer(ctx, tu); err != nil {
			t.Fatalf("turn %s (%s) never answered after the restart: %v\n%s", tu.tag, tu.conv, err, second.stderr.String())
		}
	}
	recoveredIn := time.Since(killedAt)
	// A clean stop waits for deliveries in progress: nothing can be posted
	// after this, so the counts below are final.
	second.stop()
	w.track()

	var discordTurns, matrixTurns []k9Turn
	for _, tu := range all {
		if tu.platform == "matrix" {
			matrixTurns = append(matrixTurns, tu)
		} else {
			discordTurns = append(discordTurns, tu)
		}
	}
	duplicates, losses := w.checkChat(t, discordTurns, v1Tags)
	mxDups, mxLosses := w.mxCheckChat(t, matrixTurns, v1Tags)
	duplicates, losses = duplicates+mxDups, losses+mxLosses
	storedDups, storedLosses := w.checkHistory(t, ctx, all, nil)
	w.checkHorde(t, sc, mark, flight, after, v1Tags, v1Answered, doneAtKill)
	if errs := k9LogErrors(second.stderr.String()); len(errs) > 0 {
		t.Errorf("the restarted process logged errors:\n%s", strings.Join(errs, "\n"))
	}
	for _, secret := range slices.Concat(w.hordeKeys, w.mx.keys, w.v1Keys) {
		if strings.Contains(first.stderr.String()+second.stderr.String(), secret) {
			t.Errorf("a Horde key is in the logs")
		}
	}
	t.Logf("jobs in flight at the kill: discord %d (threads %d, new threads %d, DMs %d, /chat %d), matrix %d (threads %d, new threads %d, DMs %d), /v1 %d (%d streaming)",
		k9Channels+k9Mentions+k9Users+k9Channels, k9Channels, k9Mentions, k9Users, k9Channels,
		k9MxThreads+k9MxMentions+k9MxDMs, k9MxThreads, k9MxMentions, k9MxDMs, k9V1Jobs, (k9V1Jobs+1)/2)
	t.Logf("at the kill: %d Horde requests finished, %d chat answers posted, %d Matrix answers kept undelivered, %d /v1 answers returned",
		len(doneAtKill), postedBeforeKill, strings.Count(first.stderr.String(), `"msg":"deliver","component":"bridge"`), len(v1Answered))
	t.Logf("duplicates %d in chat, %d in the history; losses %d in chat, %d in the history; restart to ready %s, kill to every answer delivered %s",
		duplicates, storedDups, losses, storedLosses, restartedIn.Round(time.Millisecond), recoveredIn.Round(time.Millisecond))
}

func tagsOf(turns []k9Turn) []string {
	out := make([]string, len(turns))
	for i, tu := range turns {
		out[i] = tu.tag
	}
	return out
}

func k9V1Tag(i int) string { return fmt.Sprintf("V%03d", i) }

// waitSubmitted waits until the Horde took a request for every tag and
// was polled for it, which means the process journaled its id.
func (w *k9World) waitSubmitted(ctx context.Context, c *child, tags []string) {
	w.t.Helper()
	err := k9Poll(ctx, fmt.Sprintf("%d jobs submitted", len(tags)), func() bool {
		w.track()
		polled := w.polled()
		for _, tag := range tags {
			if !slices.ContainsFunc(w.idsOf(tag), func(id string) bool { return polled[id] }) {
				return false
			}
		}
		return true
	})
	if err != nil {
		w.t.Fatalf("%v\n%s", err, c.stderr.String())
	}
}

// finishAll moves the Horde's clock until every live request is done.
func (w *k9World) finishAll() {
	w.t.Helper()
	w.finish(w.horde.RequestIDs())
}

// finish moves the Horde's clock until these requests are done.
func (w *k9World) finish(ids []string) {
	w.t.Helper()
	for _, id := range ids {
		if _, err := w.horde.AdvanceUntilDone(id, 10*time.Minute); err != nil {
			w.t.Fatal(err)
		}
	}
}

// answered returns the tags of the turns whose answers show in chat now.
func (w *k9World) answered(turns []k9Turn) []string {
	var out []string
	msgs := w.dc.AllMessages()
	mx := w.mxBotMessages()
	for _, tu := range turns {
		want := "Answer to " + tu.tag + ":"
		if slices.ContainsFunc(msgs, func(m discordMessage) bool { return w.isBot(m) && strings.Contains(m.Content, want) }) ||
			slices.ContainsFunc(mx, func(m k9MxMessage) bool { return strings.Contains(m.text, want) }) {
			out = append(out, tu.tag)
		}
	}
	return out
}

// checkChat counts the bot's messages: one per turn, in the turn's place,
// nothing else anywhere (no second copy, no error notice, no /v1 answer).
func (w *k9World) checkChat(t *testing.T, turns []k9Turn, v1Tags []string) (duplicates, losses int) {
	t.Helper()
	var bot []discordMessage
	for _, m := range w.dc.AllMessages() {
		if w.isBot(m) {
			bot = append(bot, m)
		}
	}
	perPlace := map[string]int{}
	for _, tu := range turns {
		perPlace[tu.place]++
		want := "Answer to " + tu.tag + ":"
		var found []discordMessage
		for _, m := range bot {
			if strings.Contains(m.Content, want) {
				found = append(found, m)
			}
		}
		switch {
		case len(found) == 0:
			losses++
			t.Errorf("turn %s: no answer in chat", tu.tag)
		case len(found) > 1:
			duplicates += len(found) - 1
			t.Errorf("turn %s: answered %d times", tu.tag, len(found))
		}
		for _, m := range found {
			if m.ChannelID != tu.place {
				t.Errorf("turn %s: answered in %s, want %s", tu.tag, m.ChannelID, tu.place)
			}
		}
	}
	got := map[string]int{}
	for _, m := range bot {
		got[m.ChannelID]++
		for _, tag := range v1Tags {
			if strings.Contains(m.Content, tag) {
				t.Errorf("the /v1 job %s was delivered in chat (%s)", tag, m.ChannelID)
			}
		}
		if !strings.Contains(m.Content, "Answer to ") {
			t.Errorf("stray bot message in %s: %q", m.ChannelID, m.Content)
		}
	}
	for place, n := range got {
		if n > perPlace[place] {
			duplicates += n - perPlace[place]
			t.Errorf("%d bot messages in %s, want %d", n, place, perPlace[place])
		}
	}
	return duplicates, losses
}

// checkHistory reads the database after the clean stop: every
// conversation holds each of its turns once, question then answer, in
// order.
func (w *k9World) checkHistory(t *testing.T, ctx context.Context, turns []k9Turn, unordered map[string]bool) (duplicates, losses int) {
	t.Helper()
	cfg := storage.DefaultConfig()
	cfg.Path = w.dbPath
	store, err := storage.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var convs []string
	want := map[string][]string{}
	for _, tu := range turns {
		if _, ok := want[tu.conv]; !ok {
			convs = append(convs, tu.conv)
		}
		want[tu.conv] = append(want[tu.conv], tu.tag)
	}
	for _, key := range convs {
		conv, err := store.ActiveConversation(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := store.LastMessages(ctx, conv.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range msgs {
			got = append(got, string(m.Role)+" "+m.Content)
		}
		var exp []string
		for _, tag := range want[key] {
			exp = append(exp, "user "+k9Question(tag), "assistant "+k9Answer(tag))
		}
		// The place of a turn in unordered is not checked, only that it
		// is there once.
		ordered := func(list []string) []string {
			return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return unordered[k9TagIn(s)] })
		}
		if !slices.Equal(ordered(got), ordered(exp)) || len(got) != len(exp) {
			t.Errorf("history of %s:\n got %q\nwant %q", key, got, exp)
		}
		for i := 0; i+1 < len(got); i += 2 {
			q, a := got[i], got[i+1]
			if tag := k9TagOf(q); !strings.HasPrefix(q, "user ") || a != "assistant "+k9Answer(tag) {
				t.Errorf("history of %s: %q is not followed by its answer but by %q", key, q, a)
			}
		}
		for _, e := range exp {
			switch n := k9Count(got, e); {
			case n == 0:
				losses++
			case n > 1:
				duplicates += n - 1
			}
		}
	}
	jobs, err := store.UnfinishedJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 0 {
		t.Errorf("%d jobs still unfinished in the journal after every answer was delivered", len(jobs))
	}
	linked := map[[2]string]string{}
	for i, key := range w.hordeKeys {
		linked[[2]string{"discord", w.users[i].ID}] = key
	}
	for i, key := range w.mx.keys {
		linked[[2]string{"matrix", w.mx.users[i]}] = key
	}
	for who, key := range linked {
		u, err := store.UpsertUser(ctx, who[0], who[1], "")
		if err != nil {
			t.Fatal(err)
		}
		if k, err := store.HordeKey(ctx, u.ID); err != nil || k.Key != key {
			t.Errorf("%s user %s: the linked key does not decrypt to the one linked (err %v)", who[0], who[1], err)
		}
	}
	return duplicates, losses
}

// k9TagIn returns the tag of a stored question or answer.
func k9TagIn(s string) string {
	if i := strings.Index(s, "Answer to "); i >= 0 && len(s) >= i+14 {
		return s[i+10 : i+14]
	}
	return k9TagOf(s)
}

func k9Count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// checkHorde checks what the Horde saw: one submit per question (resumed,
// not resubmitted), the linked keys used after the restart, and every
// orphaned /v1 job deleted.
func (w *k9World) checkHorde(t *testing.T, sc k9Scenario, mark int, flight, after []k9Turn, v1Tags []string, v1Answered, doneAtKill map[string]bool) {
	t.Helper()
	subs := w.submits()
	for _, tag := range append(tagsOf(flight), v1Tags...) {
		if subs[tag] != 1 {
			t.Errorf("%s was submitted %d times, want once", tag, subs[tag])
		}
	}
	since := w.horde.Requests()[mark:]
	for i, key := range slices.Concat(w.hordeKeys, w.mx.keys) {
		if !slices.ContainsFunc(since, func(r hordetest.RecordedRequest) bool { return r.Header.Get("apikey") == key }) {
			t.Errorf("linked user %d: the Horde never saw their key after the restart", i)
		}
	}
	accounts := map[string]string{"X000": "linked00#", "Y000": "mxlinked00#"}
	for _, tu := range after {
		for _, id := range w.idsOf(tu.tag) {
			info, ok := w.horde.Request(id)
			if !ok || !strings.HasPrefix(info.Username, accounts[tu.tag]) {
				t.Errorf("%s, asked after the restart, ran as %q, want the linked account %s", tu.tag, info.Username, accounts[tu.tag])
			}
		}
	}
	deleted := map[string]bool{}
	for _, r := range since {
		if r.Method == http.MethodDelete {
			deleted[strings.TrimPrefix(r.Path, "/api/v2/generate/text/status/")] = true
		}
	}
	for _, tag := range v1Tags {
		if v1Answered[tag] {
			continue
		}
		for _, id := range w.idsOf(tag) {
			if !deleted[id] && (sc.held || !doneAtKill[id]) {
				t.Errorf("the orphaned /v1 job %s (%s) was not cancelled at the Horde", tag, id)
			}
		}
	}
	for id := range deleted {
		if tag := w.tags[id]; !slices.Contains(v1Tags, tag) {
			t.Errorf("the chat job %s (%s) was cancelled at the Horde", tag, id)
		}
	}
}

// k9V1Result is what one /v1 caller got.
type k9V1Result struct {
	tag     string
	stream  bool
	content string
	err     error
}

// startK9V1 starts n /v1 callers with the OpenAI SDK, every other one
// streaming, spread over the callers' Horde keys.
func startK9V1(ctx context.Context, base string, keys []string, n int) <-chan k9V1Result {
	out := make(chan k9V1Result, n)
	for i := range n {
		r := k9V1Result{tag: k9V1Tag(i), stream: i%2 == 0}
		client := oai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(keys[i%len(keys)]), option.WithMaxRetries(0))
		params := oai.ChatCompletionNewParams{Model: k9Model, Messages: []oai.ChatCompletionMessageParamUnion{oai.UserMessage(k9Question(r.tag))}}
		go func() {
			if r.stream {
				s := client.Chat.Completions.NewStreaming(ctx, params)
				for s.Next() {
					if ch := s.Current(); len(ch.Choices) > 0 {
						r.content += ch.Choices[0].Delta.Content
					}
				}
				r.err = s.Err()
			} else {
				resp, err := client.Chat.Completions.New(ctx, params)
				if r.err = err; err == nil && len(resp.Choices) > 0 {
					r.content = resp.Choices[0].Message.Content
				}
			}
			out <- r
		}()
	}
	return out
}
