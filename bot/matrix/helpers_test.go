package matrix_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/bottest"
	"github.com/hordechat/hordechat/bot/matrix"
	"github.com/hordechat/hordechat/bot/matrix/matrixtest"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

func testCtx(tb testing.TB) context.Context { return bottest.Context(tb) }

const (
	alice   = "@alice:hs.test"
	mallory = "@mallory:hs.test"
)

// logBuffer collects the slog output of the engine and the adapter.
type logBuffer = bottest.LogBuffer

// world is a fake homeserver, a fast fake Horde, a shared journal and chat
// store: what survives a restart. A proc is one run on it.
type world struct {
	t       *testing.T
	hs      *matrixtest.Server
	horde   *hordetest.Server
	journal *bridgetest.MemStore
	store   *bottest.MemStore
	logs    *logBuffer
	log     *slog.Logger

	botCfg    bot.Config
	bridgeCfg bridge.Config
	mcfg      matrix.Config
	opts      []matrix.Option // more adapter options
}

func newWorld(t *testing.T, horde ...hordetest.Option) *world {
	t.Helper()
	w := &world{t: t, journal: bridgetest.NewMemStore(), store: bottest.NewMemStore(), logs: &logBuffer{}}
	w.log = slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.horde = bridgetest.FastHorde(t, horde...)
	w.hs = matrixtest.New(t)
	w.botCfg = bot.DefaultConfig()
	w.botCfg.UserRate = 0
	w.botCfg.MaxProgressEdits = 0
	w.bridgeCfg = bridge.DefaultConfig()
	w.mcfg = matrix.DefaultConfig()
	w.mcfg.Homeserver = w.hs.URL()
	w.mcfg.UserID = w.hs.BotID()
	w.mcfg.AccessToken = w.hs.Token()
	return w
}

// proc is one process: engine, bridge and adapter.
type proc struct {
	*bottest.Proc
	adapter *matrix.Adapter
}

// start wires a process in the order cmd does: engine, adapter,
// AddPlatform, bridge Start, adapter Run; it returns after the first sync.
func (w *world) start() *proc {
	w.t.Helper()
	bw := &bottest.World{Horde: w.horde, Journal: w.journal, Store: w.store, Log: w.log, BotCfg: w.botCfg, BridgeCfg: w.bridgeCfg}
	var a *matrix.Adapter
	p := bw.Start(w.t, func(e *bot.Engine) (bottest.Adapter, error) {
		var err error
		a, err = matrix.New(w.mcfg, e, w.log, append([]matrix.Option{matrix.WithSyncTimeout(20 * time.Second)}, w.opts...)...)
		return a, err
	})
	return &proc{Proc: p, adapter: a}
}

// stop shuts down in cmd's order: sync (intake), engine, bridge.
func (p *proc) stop() { p.Stop() }

// workers takes the fake Horde's workers off or back on.
func (w *world) workers(online bool) { bridgetest.SetWorkersOnline(w.t, w.horde, online) }

func (w *world) submits() []hordetest.RecordedRequest {
	return w.horde.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")
}

func replyNumber(j hordetest.Job) string {
	return fmt.Sprintf("Reply number %d", strings.Count(j.Prompt, "Reply number")+1)
}

// text is a plain m.text content.
func text(body string) map[string]any { return matrixtest.Text(body) }

// mentionBot is a message in a group room that mentions the bot.
func (w *world) mentionBot(body string) map[string]any { return matrixtest.Mention(w.hs.BotID(), body) }

// inThread is a message in the thread rooted at root.
func inThread(body, root string) map[string]any { return matrixtest.InThread(text(body), root) }

// waitBot waits for a bot message (or edit) in room whose shown text
// contains want.
func (w *world) waitBot(ctx context.Context, room, want string) matrixtest.Event {
	w.t.Helper()
	e, err := w.hs.WaitBotMessage(ctx, room, want)
	if err != nil {
		w.t.Fatal(err)
	}
	return e
}

// waitEvent waits for an event in room that match accepts.
func (w *world) waitEvent(ctx context.Context, room, what string, match func(matrixtest.Event) bool) matrixtest.Event {
	w.t.Helper()
	e, err := w.hs.WaitEvent(ctx, room, what, match)
	if err != nil {
		w.t.Fatal(err)
	}
	return e
}

// wait waits until cond holds; cond may call the fake.
func (w *world) wait(ctx context.Context, what string, cond func() bool) {
	w.t.Helper()
	if err := w.hs.Wait(ctx, what, cond); err != nil {
		w.t.Fatal(err)
	}
}

// noPings asserts the bot's event mentions nobody.
func noPings(t *testing.T, e matrixtest.Event) {
	t.Helper()
	if m := e.Mentions(); m == nil || len(m) != 0 {
		t.Errorf("event %s has m.mentions %v, want {}", e.ID, e.Content["m.mentions"])
	}
}
