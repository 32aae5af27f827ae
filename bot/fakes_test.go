package bot_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/bottest"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// event is one thing the fake platform was asked to do.
type event struct {
	Kind   string // send, edit, file, typing
	Target string
	ID     string
	Out    bot.Outgoing
	File   bot.File
}

// fakePlatform records sends and edits and numbers messages.
type fakePlatform struct {
	name   string
	limit  int
	mu     sync.Mutex
	events []event
	keys   map[string]string // idempotency key -> message id
	msgs   map[string]string // id -> current text
	notify chan struct{}
	// panicTarget makes the next Send to that target panic, once.
	panicTarget string
}

func newFakePlatform(limit int) *fakePlatform {
	return &fakePlatform{name: "test", limit: limit, keys: map[string]string{}, msgs: map[string]string{}, notify: make(chan struct{}, 1)}
}

func (f *fakePlatform) Name() string          { return f.name }
func (f *fakePlatform) MaxMessageLength() int { return f.limit }

func (f *fakePlatform) record(ev event) {
	f.events = append(f.events, ev)
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

func (f *fakePlatform) Send(_ context.Context, target string, out bot.Outgoing) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if target == f.panicTarget {
		f.panicTarget = ""
		panic("fake platform: send to " + target)
	}
	if len([]rune(out.Text)) > f.limit {
		return "", fmt.Errorf("message of %d characters over the limit %d", len([]rune(out.Text)), f.limit)
	}
	if id, ok := f.keys[out.Key]; ok && out.Key != "" {
		return id, nil
	}
	id := fmt.Sprintf("m%d", len(f.msgs)+1)
	f.msgs[id] = out.Text
	if out.Key != "" {
		f.keys[out.Key] = id
	}
	f.record(event{Kind: "send", Target: target, ID: id, Out: out})
	return id, nil
}

func (f *fakePlatform) Edit(_ context.Context, target, id string, out bot.Outgoing) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.msgs[id]; !ok {
		return fmt.Errorf("unknown message %s", id)
	}
	if len([]rune(out.Text)) > f.limit {
		return fmt.Errorf("edit over the limit")
	}
	f.msgs[id] = out.Text
	f.record(event{Kind: "edit", Target: target, ID: id, Out: out})
	return nil
}

func (f *fakePlatform) Typing(_ context.Context, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(event{Kind: "typing", Target: target})
	return nil
}

func (f *fakePlatform) SendFile(_ context.Context, target string, file bot.File, out bot.Outgoing) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("m%d", len(f.msgs)+1)
	f.msgs[id] = "[file " + file.Name + "]"
	f.record(event{Kind: "file", Target: target, ID: id, Out: out, File: file})
	return id, nil
}

// waitFor blocks until cond holds over the recorded events.
func (f *fakePlatform) waitFor(t *testing.T, what string, cond func(evs []event, msgs map[string]string) bool) {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second) // guards a hang; nothing asserts on time
	defer timeout.Stop()
	for {
		f.mu.Lock()
		ok := cond(f.events, f.msgs)
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-f.notify:
		case <-timeout.C:
			f.mu.Lock()
			defer f.mu.Unlock()
			t.Fatalf("waiting for %s; events: %+v", what, f.events)
		}
	}
}

func (f *fakePlatform) texts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(f.msgs))
	for id := range f.msgs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return len(ids[i]) < len(ids[j]) || len(ids[i]) == len(ids[j]) && ids[i] < ids[j] })
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = f.msgs[id]
	}
	return out
}

// rig is an bot.Engine over a real bridge over a fast fake Horde.
type rig struct {
	fake   *hordetest.Server
	svc    *bridge.Service
	store  *bottest.MemStore
	engine *bot.Engine
	plat   *fakePlatform
}

func newRig(t *testing.T, cfg bot.Config, limit int, horde ...hordetest.Option) *rig {
	t.Helper()
	return newLoggedRig(t, cfg, limit, nil, horde...)
}

// newLoggedRig is newRig with the engine logging to log (nil discards).
func newLoggedRig(t *testing.T, cfg bot.Config, limit int, log *slog.Logger, horde ...hordetest.Option) *rig {
	t.Helper()
	fake := bridgetest.FastHorde(t, horde...)
	r := &rig{fake: fake, store: bottest.NewMemStore(), plat: newFakePlatform(limit)}
	var err error
	r.svc = bridgetest.Service(t, bridge.DefaultConfig(), fake, bridgetest.NewMemStore(), func(svc *bridge.Service) {
		r.engine, err = bot.NewEngine(cfg, bot.Deps{Store: r.store, Bridge: svc, Keys: bottest.KeyChecker{Fake: fake}, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		r.engine.AddPlatform(r.plat)
	})
	t.Cleanup(r.engine.Close)
	return r
}

func (r *rig) incoming(user, text string) bot.Incoming {
	return bot.Incoming{Platform: "test", ConversationID: "test:chan-1", Target: "chan-1", MessageID: "u-" + text, Author: bot.Author{ID: user, DisplayName: "User " + user}, Text: text, Server: "srv", Channel: "chan-1"}
}

// call runs a command as user and returns its replies.
func (r *rig) call(t *testing.T, user, line string) []bot.Outgoing {
	t.Helper()
	cmd, args, err := r.engine.Commands().ParseText("!", line)
	if err != nil {
		return []bot.Outgoing{{Text: err.Error()}}
	}
	var mu sync.Mutex
	var got []bot.Outgoing
	c := &bot.Call{Command: cmd, In: r.incoming(user, line), Args: args, Prefix: "!", Respond: func(_ context.Context, out bot.Outgoing) error {
		mu.Lock()
		got = append(got, out)
		mu.Unlock()
		return nil
	}}
	r.engine.RunCommand(context.Background(), c)
	mu.Lock()
	defer mu.Unlock()
	return got
}

func joined(outs []bot.Outgoing) string {
	var b strings.Builder
	for _, o := range outs {
		b.WriteString(o.Text)
		b.WriteByte('\n')
	}
	return b.String()
}
