package discord_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/bottest"
	"github.com/hordechat/hordechat/bot/discord"
)

// holdFirstThread holds the first thread creation that goes through it
// until release is closed; entered is closed once it holds one.
type holdFirstThread struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
	freed   sync.Once
}

func (h *holdFirstThread) free() { h.freed.Do(func() { close(h.release) }) }

func (h *holdFirstThread) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/threads") {
		held := false
		h.once.Do(func() { held = true })
		if held {
			close(h.entered)
			<-h.release
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// Opening one conversation's thread does not hold up another's: with a
// thread creation stuck at Discord, a second mention is still answered in
// its own thread. (Under load, an adapter-wide lock made a thousand
// mentions wait for each other's round trip.)
func TestThreadCreationDoesNotWaitForOtherThreads(t *testing.T) {
	w := newWorld(t)
	hold := &holdFirstThread{entered: make(chan struct{}), release: make(chan struct{})}
	bw := &bottest.World{Horde: w.horde, Journal: w.journal, Store: w.store, Log: w.log, BotCfg: w.botCfg, BridgeCfg: w.bridgeCfg}
	var a *discord.Adapter
	bw.Start(t, func(e *bot.Engine) (bottest.Adapter, error) {
		var err error
		a, err = discord.New(w.dcfg, e, w.log, discord.WithClock(w.fake.Clock()), discord.WithTransport(hold))
		return a, err
	})
	t.Cleanup(hold.free) // before the adapter stops, even when the test fails
	ctx := testCtx(t)
	select {
	case <-a.Ready():
	case <-ctx.Done():
		t.Fatal("the adapter never got ready")
	}

	first := w.mention("first question")
	select {
	case <-hold.entered:
	case <-ctx.Done():
		t.Fatalf("no thread creation for the first mention: %s", w.dump())
	}
	second := w.mention("second question")
	w.waitBot(second.ID, "Echo") // in its own thread, while the first is stuck
	hold.free()
	w.waitBot(first.ID, "Echo")
}
