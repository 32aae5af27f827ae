package bot_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/bottest"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// An accepted chat turn is kept in the inbox until it ends, so a crash
// loses none: these tests run an engine, stop it the way a crash leaves
// things, and start another on the same stores.

// inboxWorld is what outlives a process: the fake Horde, the bridge's
// journal, the chat store and the platform (its messages stay).
type inboxWorld struct {
	fake    *hordetest.Server
	journal *bridgetest.MemStore
	store   *bottest.MemStore
	plat    *fakePlatform
	cfg     bot.Config
}

// inboxTagOf is the tag of the latest question in a prompt: "Q:A2" -> "A2".
func inboxTagOf(prompt string) string {
	i := strings.LastIndex(prompt, "Q:")
	if i < 0 || len(prompt) < i+4 {
		return ""
	}
	return prompt[i+2 : i+4]
}

func newInboxWorld(t *testing.T) *inboxWorld {
	t.Helper()
	w := &inboxWorld{journal: bridgetest.NewMemStore(), store: bottest.NewMemStore(), plat: newFakePlatform(2000), cfg: bot.DefaultConfig()}
	w.store.Journal = w.journal
	w.cfg.UserRate, w.cfg.UserConcurrency = 0, 20
	w.fake = bridgetest.FastHorde(t, hordetest.WithResponder(func(j hordetest.Job) string {
		return "Answer to " + inboxTagOf(j.Prompt)
	}))
	return w
}

// inboxProc is one process: bridge and engine.
type inboxProc struct {
	svc       *bridge.Service
	engine    *bot.Engine
	submitted chan string // job ids, once the Horde has them
}

// start runs a process on the world's stores (the chat store may be
// wrapped), in cmd's order: engine, platform, bridge Start, Resume.
func (w *inboxWorld) start(t *testing.T, store bot.Store, resume bool) *inboxProc {
	t.Helper()
	p := &inboxProc{submitted: make(chan string, 100)}
	p.svc = bridgetest.Service(t, bridge.DefaultConfig(), w.fake, w.journal, func(svc *bridge.Service) {
		var err error
		p.engine, err = bot.NewEngine(w.cfg, bot.Deps{Store: store, Bridge: svc, Keys: bottest.KeyChecker{Fake: w.fake}})
		if err != nil {
			t.Fatal(err)
		}
		p.engine.OnSubmittedForTest(func(_, id string) { p.submitted <- id })
		p.engine.AddPlatform(w.plat)
	})
	t.Cleanup(p.engine.Close)
	if resume {
		// The resumed turns outlive the context Resume was called with
		// (cmd's Run context ends at shutdown, turns in progress go on).
		ctx, cancel := context.WithCancel(context.Background())
		err := p.engine.Resume(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// crash leaves the shared state as kill -9 would: the bridge delivers
// nothing more (its jobs stay journaled) and no waiting turn runs.
func (p *inboxProc) crash() {
	p.svc.Close()
	p.engine.Close()
}

// waitSubmitted waits until n more jobs reached the Horde.
func (p *inboxProc) waitSubmitted(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		select {
		case id := <-p.submitted:
			ids = append(ids, id)
		case <-t.Context().Done():
			t.Fatalf("%d of %d jobs submitted", len(ids), n)
		}
	}
	return ids
}

// ask is a question in conversation conv ("A": test:A, posted in chan-A).
func (w *inboxWorld) ask(conv, tag string) bot.Incoming {
	return bot.Incoming{Platform: "test", ConversationID: "test:" + conv, Target: "chan-" + conv, MessageID: "u-" + tag,
		Author: bot.Author{ID: "user-" + conv, DisplayName: "User " + conv}, Text: "Q:" + tag + " please", Server: "srv", Channel: "chan-" + conv}
}

func (w *inboxWorld) pending(t *testing.T) int {
	t.Helper()
	items, err := w.store.PendingInbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}

// submits counts the Horde's submits per tag of their latest question.
func (w *inboxWorld) submits() map[string]int {
	out := map[string]int{}
	for _, r := range w.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async") {
		out[inboxTagOf(string(r.Body))]++
	}
	return out
}

// promptOf is the prompt the Horde got for tag's question.
func (w *inboxWorld) promptOf(tag string) string {
	for _, r := range w.fake.RequestsTo(http.MethodPost, "/api/v2/generate/text/async") {
		if inboxTagOf(string(r.Body)) == tag {
			return string(r.Body)
		}
	}
	return ""
}

// answers counts the platform's messages showing tag's answer, by target.
func (w *inboxWorld) answers(tag string) map[string]int {
	w.plat.mu.Lock()
	defer w.plat.mu.Unlock()
	where := map[string]string{} // message id -> target
	for _, ev := range w.plat.events {
		if ev.Kind == "send" {
			where[ev.ID] = ev.Target
		}
	}
	out := map[string]int{}
	for id, text := range w.plat.msgs {
		if strings.Contains(text, "Answer to "+tag) {
			out[where[id]]++
		}
	}
	return out
}

// Several conversations get three questions each while the first is with
// the Horde, so two wait in each queue; the process dies. The next one
// answers every question once, in its conversation, in order, each asked
// with the answers before it in its history; the jobs the journal had are
// not submitted again, and the inbox ends empty.
func TestAcceptedTurnsSurviveARestartAndAreAnsweredOnceInOrder(t *testing.T) {
	w := newInboxWorld(t)
	bridgetest.SetWorkersOnline(t, w.fake, false)
	first := w.start(t, w.store, true)
	convs := []string{"A", "B", "C"}
	for _, c := range convs {
		for i := 1; i <= 3; i++ {
			first.engine.HandleMessage(context.Background(), w.ask(c, fmt.Sprintf("%s%d", c, i)))
		}
	}
	first.waitSubmitted(t, len(convs)) // the first of each; the others wait
	if n := w.pending(t); n != 9 {
		t.Fatalf("%d turns in the inbox, want all 9 accepted", n)
	}
	first.crash()
	if subs := w.submits(); len(subs) != len(convs) {
		t.Fatalf("submitted before the crash: %v, want the first of each conversation", subs)
	}

	second := w.start(t, w.store, true)
	bridgetest.SetWorkersOnline(t, w.fake, true)
	w.plat.waitFor(t, "every question answered", answered(9))
	second.crash() // waits for the deliveries in progress: the counts below are final

	subs := w.submits()
	for _, c := range convs {
		var want []string
		for i := 1; i <= 3; i++ {
			tag := fmt.Sprintf("%s%d", c, i)
			if subs[tag] != 1 {
				t.Errorf("%s submitted %d times, want once", tag, subs[tag])
			}
			if got := w.answers(tag); len(got) != 1 || got["chan-"+c] != 1 {
				t.Errorf("answers of %s by target: %v, want one in chan-%s", tag, got, c)
			}
			if i > 1 && !strings.Contains(w.promptOf(tag), fmt.Sprintf("Answer to %s%d", c, i-1)) {
				t.Errorf("%s was asked without the answer before it: %q", tag, w.promptOf(tag))
			}
			want = append(want, "user Q:"+tag+" please", "assistant Answer to "+tag)
		}
		var got []string
		for _, m := range w.store.History("test:" + c) {
			got = append(got, m.Role+" "+m.Content)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("history of %s:\n got %q\nwant %q", c, got, want)
		}
	}
	for _, text := range w.plat.texts() {
		if strings.Contains(text, "Asking the Horde") || strings.Contains(text, "⚠️") {
			t.Errorf("left in chat: %q", text)
		}
	}
	if n := w.pending(t); n != 0 {
		t.Errorf("%d turns left in the inbox", n)
	}
	if jobs, _ := w.journal.UnfinishedJobs(context.Background()); len(jobs) != 0 {
		t.Errorf("%d jobs unfinished in the journal", len(jobs))
	}
}

// flakyDeletes is a chat store whose inbox deletes fail while fail is set.
type flakyDeletes struct {
	*bottest.MemStore
	fail atomic.Bool
}

func (f *flakyDeletes) DeleteInbox(ctx context.Context, id int64) error {
	if f.fail.Load() {
		return errors.New("disk I/O error")
	}
	return f.MemStore.DeleteInbox(ctx, id)
}

// A turn whose answer was delivered, but whose inbox item outlived it (the
// delete failed, or the crash came first), is cleared at the next start
// and not asked again.
func TestDeliveredTurnLeftInTheInboxIsNotAskedAgain(t *testing.T) {
	w := newInboxWorld(t)
	store := &flakyDeletes{MemStore: w.store}
	store.fail.Store(true)
	first := w.start(t, store, true)
	first.engine.HandleMessage(context.Background(), w.ask("A", "A1"))
	w.plat.waitFor(t, "the answer", answered(1))
	first.crash()
	if n := w.pending(t); n != 1 {
		t.Fatalf("%d turns in the inbox, want the one whose delete failed", n)
	}

	store.fail.Store(false)
	second := w.start(t, store, true)
	if n := w.pending(t); n != 0 {
		t.Errorf("%d turns in the inbox after Resume, want it cleared", n)
	}
	second.crash()
	if subs := w.submits(); subs["A1"] != 1 {
		t.Errorf("A1 submitted %d times, want once", subs["A1"])
	}
	if got := w.answers("A1"); got["chan-A"] != 1 {
		t.Errorf("A1 answered %v, want once", got)
	}
	if h := w.store.History("test:A"); len(h) != 2 {
		t.Errorf("history has %d messages, want the turn once", len(h))
	}
}

// Resume runs once, and never runs a turn the same engine accepted (and
// queued) itself, even when called after it took messages.
func TestResumeDoesNotRunThisEnginesTurnsAgain(t *testing.T) {
	w := newInboxWorld(t)
	bridgetest.SetWorkersOnline(t, w.fake, false)
	p := w.start(t, w.store, false)
	p.engine.HandleMessage(context.Background(), w.ask("A", "A1"))
	p.engine.HandleMessage(context.Background(), w.ask("A", "A2"))
	p.waitSubmitted(t, 1)
	if err := p.engine.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.engine.Resume(context.Background()); err == nil {
		t.Error("a second Resume was accepted")
	}
	bridgetest.SetWorkersOnline(t, w.fake, true)
	w.plat.waitFor(t, "both answered", answered(2))
	p.crash()
	for _, tag := range []string{"A1", "A2"} {
		if n := w.submits()[tag]; n != 1 {
			t.Errorf("%s submitted %d times, want once", tag, n)
		}
	}
	for _, text := range w.plat.texts() {
		if strings.Contains(text, "⚠️") {
			t.Errorf("error notice: %q", text)
		}
	}
	if n := w.pending(t); n != 0 {
		t.Errorf("%d turns left in the inbox", n)
	}
}

// Every way an accepted turn ends deletes its inbox item; only a turn the
// engine never got to (it closed first) stays for the next start.
func TestEveryEndOfATurnClearsTheInbox(t *testing.T) {
	notice := func(text string) func([]event, map[string]string) bool {
		return func(_ []event, msgs map[string]string) bool {
			for _, m := range msgs {
				if strings.Contains(m, text) {
					return true
				}
			}
			return false
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, w *inboxWorld, p *inboxProc)
		// kept: the items left, of turns never run or whose job the
		// journal has (the bridge resumes it).
		kept int
	}{
		{name: "answered", run: func(t *testing.T, w *inboxWorld, p *inboxProc) {
			p.engine.HandleMessage(context.Background(), w.ask("A", "A1"))
			w.plat.waitFor(t, "the answer", answered(1))
		}},
		{name: "cancelled: an error delivered", run: func(t *testing.T, w *inboxWorld, p *inboxProc) {
			bridgetest.SetWorkersOnline(t, w.fake, false)
			in := w.ask("A", "A1")
			p.engine.HandleMessage(context.Background(), in)
			job := p.waitSubmitted(t, 1)[0]
			p.engine.Button(context.Background(), in, "cancel:"+job)
			w.plat.waitFor(t, "the cancel", notice("Cancelled"))
		}},
		{name: "refused at submit", run: func(t *testing.T, w *inboxWorld, p *inboxProc) {
			w.fake.SetMaintenance(true)
			p.engine.HandleMessage(context.Background(), w.ask("A", "A1"))
			w.plat.waitFor(t, "the error", notice("maintenance"))
		}},
		{name: "refused on the queue: not your answer", run: func(t *testing.T, w *inboxWorld, p *inboxProc) {
			p.engine.HandleMessage(context.Background(), w.ask("A", "A1"))
			w.plat.waitFor(t, "the answer", answered(1))
			other := w.ask("A", "A2")
			other.Author.ID = "someone-else"
			p.engine.Button(context.Background(), other, "regenerate")
			w.plat.waitFor(t, "the refusal", notice("Only the person who asked"))
		}},
		{name: "panic in the turn", run: func(t *testing.T, w *inboxWorld, p *inboxProc) {
			w.plat.mu.Lock()
			w.plat.panicTarget = "chan-A"
			w.plat.mu.Unlock()
			p.engine.HandleMessage(context.Background(), w.ask("A", "A1"))
			w.plat.waitFor(t, "the error notice", notice("Something went wrong on my side"))
		}},
		{name: "closed before their time: kept", kept: 2, run: func(t *testing.T, w *inboxWorld, p *inboxProc) {
			bridgetest.SetWorkersOnline(t, w.fake, false)
			p.engine.HandleMessage(context.Background(), w.ask("A", "A1"))
			p.engine.HandleMessage(context.Background(), w.ask("A", "A2"))
			p.waitSubmitted(t, 1)
			// The engine closes first, then the bridge: A1's job is
			// left to the journal, A2 never runs.
			p.engine.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newInboxWorld(t)
			p := w.start(t, w.store, true)
			tt.run(t, w, p)
			p.engine.Close() // waits for the turns, so their ends are done
			p.svc.Close()    // waits for the deliveries
			if n := w.pending(t); n != tt.kept {
				t.Errorf("%d turns in the inbox, want %d", n, tt.kept)
			}
		})
	}
}

// A turn refused because its conversation's queue is full leaves no item;
// the 65 accepted (one running, 64 waiting) are all kept.
func TestFullQueueRefusalLeavesNoInboxItem(t *testing.T) {
	w := newInboxWorld(t)
	bridgetest.SetWorkersOnline(t, w.fake, false)
	p := w.start(t, w.store, true)
	ask := func(i int) {
		in := w.ask("A", fmt.Sprintf("%02d", i))
		in.Author.ID = fmt.Sprintf("user-%02d", i)
		p.engine.HandleMessage(context.Background(), in)
	}
	ask(0)
	p.waitSubmitted(t, 1)
	for i := 1; i <= 65; i++ {
		ask(i)
	}
	w.plat.waitFor(t, "the refusal", func(_ []event, msgs map[string]string) bool {
		for _, m := range msgs {
			if strings.Contains(m, "questions are already waiting in this conversation") {
				return true
			}
		}
		return false
	})
	if n := w.pending(t); n != 65 {
		t.Errorf("%d turns in the inbox, want the 65 accepted", n)
	}
}

// A job resumed after a restart keeps its Cancel button: someone else's
// press is refused, the asker's stops it at the Horde and tells them.
func TestResumedJobCanBeCancelledByItsAsker(t *testing.T) {
	w := newInboxWorld(t)
	bridgetest.SetWorkersOnline(t, w.fake, false)
	first := w.start(t, w.store, true)
	first.engine.HandleMessage(context.Background(), w.ask("A", "A1"))
	id := first.waitSubmitted(t, 1)[0]
	first.crash()

	second := w.start(t, w.store, true)
	stranger := w.ask("A", "X1")
	stranger.Author = bot.Author{ID: "someone-else", DisplayName: "Someone"}
	second.engine.Button(context.Background(), stranger, "cancel:"+id)
	w.plat.waitFor(t, "the stranger refused", func(evs []event, _ map[string]string) bool {
		for _, ev := range evs {
			if strings.Contains(ev.Out.Text, "Only the person who asked") {
				return true
			}
		}
		return false
	})
	second.engine.Button(context.Background(), w.ask("A", "A1"), "cancel:"+id)
	w.plat.waitFor(t, "the cancel reported", func(_ []event, msgs map[string]string) bool {
		for _, text := range msgs {
			if strings.Contains(text, "Cancelled") {
				return true
			}
		}
		return false
	})
	second.crash()
	if n := len(w.fake.RequestsTo(http.MethodDelete, "/api/v2/generate/text/status/")); n != 1 {
		t.Errorf("%d DELETEs at the Horde, want 1", n)
	}
	for _, text := range w.plat.texts() {
		if strings.Contains(text, "already finished") {
			t.Errorf("the asker was told %q", text)
		}
	}
	if n := w.pending(t); n != 0 {
		t.Errorf("%d turns left in the inbox", n)
	}
}
