package bottest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// KeyChecker checks Horde keys against a fake Horde's users.
type KeyChecker struct{ Fake *hordetest.Server }

// CheckKey implements bot.KeyChecker.
func (k KeyChecker) CheckKey(_ context.Context, key string) (bot.HordeAccount, error) {
	u, ok := k.Fake.User(key)
	if !ok {
		return bot.HordeAccount{}, &bridge.Error{Code: bridge.CodeInvalidKey, Message: "unknown key"}
	}
	return bot.HordeAccount{Username: u.Alias(), ID: int64(u.ID), Kudos: u.Kudos}, nil
}

// Adapter is a chat platform adapter with a gateway or sync loop.
type Adapter interface {
	bot.Platform
	Run(ctx context.Context) error
	Ready() <-chan struct{}
}

// World is what survives a restart in a test: the fake Horde, the journal
// and the chat store.
type World struct {
	Horde     *hordetest.Server
	Journal   *bridgetest.MemStore
	Store     *MemStore
	Log       *slog.Logger
	BotCfg    bot.Config
	BridgeCfg bridge.Config
}

// Proc is one process: engine, bridge and adapter.
type Proc struct {
	Engine  *bot.Engine
	Service *bridge.Service
	Adapter Adapter
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
	tb      testing.TB
}

// readyTimeout guards against a hang; no test asserts on time.
const readyTimeout = 60 * time.Second

// Start wires a process in the order cmd does (engine, adapter,
// AddPlatform, bridge Start, engine Resume, adapter Run), waits until the
// adapter is ready, and stops it when the test ends.
func (w *World) Start(tb testing.TB, newAdapter func(*bot.Engine) (Adapter, error)) *Proc {
	tb.Helper()
	if w.Store.Journal == nil {
		w.Store.Journal = w.Journal
	}
	p := &Proc{done: make(chan error, 1), tb: tb}
	p.Service = bridgetest.Service(tb, w.BridgeCfg, w.Horde, w.Journal, func(svc *bridge.Service) {
		var err error
		p.Engine, err = bot.NewEngine(w.BotCfg, bot.Deps{Store: w.Store, Bridge: svc, Keys: KeyChecker{w.Horde}, Log: w.Log})
		if err != nil {
			tb.Fatal(err)
		}
		p.Adapter, err = newAdapter(p.Engine)
		if err != nil {
			tb.Fatal(err)
		}
		p.Engine.AddPlatform(p.Adapter)
	})
	if err := p.Engine.Resume(context.Background()); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- p.Adapter.Run(ctx) }()
	tb.Cleanup(p.Stop)
	select {
	case <-p.Adapter.Ready():
	case err := <-p.done:
		tb.Fatalf("Run ended before it was ready: %v", err)
	case <-time.After(readyTimeout):
		tb.Fatal("the adapter did not get ready")
	}
	return p
}

// Stop shuts down in cmd's order: the adapter (intake) first, then the
// engine, then the bridge (journaled jobs stay).
func (p *Proc) Stop() {
	p.once.Do(func() {
		p.cancel()
		if err := <-p.done; err != nil {
			p.tb.Errorf("Run: %v", err)
		}
		p.Engine.Close()
		p.Service.Close()
	})
}
