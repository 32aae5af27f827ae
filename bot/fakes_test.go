package bot

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// memStore is an in-memory bot.Store.
type memStore struct {
	mu       sync.Mutex
	users    map[string]User
	keys     map[int64]string
	linked   map[int64]LinkedKey
	tokens   map[int64][]string
	settings map[int64]Settings
	convs    map[string]Conversation
	byID     map[int64]*Conversation
	msgs     map[int64][]Message
	nextID   int64
}

func newMemStore() *memStore {
	return &memStore{users: map[string]User{}, keys: map[int64]string{}, linked: map[int64]LinkedKey{}, tokens: map[int64][]string{},
		settings: map[int64]Settings{}, convs: map[string]Conversation{}, byID: map[int64]*Conversation{}, msgs: map[int64][]Message{}}
}

func (m *memStore) id() int64 { m.nextID++; return m.nextID }

func (m *memStore) UpsertUser(_ context.Context, platform, pid, name string) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := platform + ":" + pid
	u, ok := m.users[k]
	if !ok {
		u = User{ID: m.id(), Platform: platform, PlatformID: pid}
	}
	u.DisplayName = name
	m.users[k] = u
	return u, nil
}

func (m *memStore) LinkHordeKey(_ context.Context, uid int64, key, name string, hid int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[uid] = key
	m.linked[uid] = LinkedKey{Username: name, UserID: hid, LinkedAt: time.Now()}
	return nil
}

func (m *memStore) LinkedKey(_ context.Context, uid int64) (LinkedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lk, ok := m.linked[uid]
	if !ok {
		return LinkedKey{}, ErrNotFound
	}
	return lk, nil
}

func (m *memStore) UnlinkHordeKey(_ context.Context, uid int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.keys[uid]
	delete(m.keys, uid)
	delete(m.linked, uid)
	return ok, nil
}

func (m *memStore) CreateAPIToken(_ context.Context, uid int64, _ string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tok := fmt.Sprintf("hc_test%d_%d", uid, len(m.tokens[uid]))
	m.tokens[uid] = append(m.tokens[uid], tok)
	return tok, nil
}

func (m *memStore) RevokeAPITokens(_ context.Context, uid int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.tokens[uid])
	delete(m.tokens, uid)
	return n, nil
}

func (m *memStore) UserSettings(_ context.Context, uid int64) (Settings, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.settings[uid], nil
}

func (m *memStore) SaveUserSettings(_ context.Context, uid int64, s Settings) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settings[uid] = s
	return nil
}

func (m *memStore) ActiveConversation(_ context.Context, key string) (Conversation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.convs[key]
	if !ok {
		c = Conversation{ID: m.id(), Key: key}
		m.convs[key] = c
		m.byID[c.ID] = &c
	}
	return *m.byID[c.ID], nil
}

func (m *memStore) EndConversation(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.convs[key]
	delete(m.convs, key)
	return ok, nil
}

func (m *memStore) SetConversationSystemPrompt(_ context.Context, id int64, p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byID[id]
	c.SystemPrompt = p
	m.convs[c.Key] = *c
	return nil
}

func (m *memStore) AppendMessages(_ context.Context, id int64, msgs ...Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs[id] = append(m.msgs[id], msgs...)
	return nil
}

func (m *memStore) LastMessages(_ context.Context, id int64, limit int) ([]Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.msgs[id]
	if limit > 0 && len(ms) > limit {
		ms = ms[len(ms)-limit:]
	}
	return append([]Message(nil), ms...), nil
}

func (m *memStore) history(key string) []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.convs[key]
	if !ok {
		return nil
	}
	return append([]Message(nil), m.msgs[c.ID]...)
}

// event is one thing the fake platform was asked to do.
type event struct {
	Kind   string // send, edit, file, typing
	Target string
	ID     string
	Out    Outgoing
	File   File
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

func (f *fakePlatform) Send(_ context.Context, target string, out Outgoing) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
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

func (f *fakePlatform) Edit(_ context.Context, target, id string, out Outgoing) error {
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

func (f *fakePlatform) SendFile(_ context.Context, target string, file File, out Outgoing) (string, error) {
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

// rig is an Engine over a real bridge over a fast fake Horde.
type rig struct {
	fake   *hordetest.Server
	svc    *bridge.Service
	store  *memStore
	engine *Engine
	plat   *fakePlatform
}

type keyChecker struct{ fake *hordetest.Server }

func (k keyChecker) CheckKey(ctx context.Context, key string) (HordeAccount, error) {
	u, ok := k.fake.User(key)
	if !ok {
		return HordeAccount{}, &bridge.Error{Code: bridge.CodeInvalidKey, Message: "unknown key"}
	}
	return HordeAccount{Username: u.Alias(), ID: int64(u.ID), Kudos: u.Kudos}, nil
}

func newRig(t *testing.T, cfg Config, limit int, horde ...hordetest.Option) *rig {
	t.Helper()
	fake := bridgetest.FastHorde(t, horde...)
	r := &rig{fake: fake, store: newMemStore(), plat: newFakePlatform(limit)}
	var err error
	r.svc = bridgetest.Service(t, bridge.DefaultConfig(), fake, bridgetest.NewMemStore(), func(svc *bridge.Service) {
		r.engine, err = NewEngine(cfg, Deps{Store: r.store, Bridge: svc, Keys: keyChecker{fake}})
		if err != nil {
			t.Fatal(err)
		}
		r.engine.AddPlatform(r.plat)
	})
	t.Cleanup(r.engine.Close)
	return r
}

func (r *rig) incoming(user, text string) Incoming {
	return Incoming{Platform: "test", ConversationID: "test:chan-1", Target: "chan-1", MessageID: "u-" + text, Author: Author{ID: user, DisplayName: "User " + user}, Text: text, Server: "srv", Channel: "chan-1"}
}

// call runs a command as user and returns its replies.
func (r *rig) call(t *testing.T, user, line string) []Outgoing {
	t.Helper()
	cmd, args, err := r.engine.Commands().ParseText("!", line)
	if err != nil {
		return []Outgoing{{Text: err.Error()}}
	}
	var mu sync.Mutex
	var got []Outgoing
	c := &Call{Command: cmd, In: r.incoming(user, line), Args: args, Prefix: "!", Respond: func(_ context.Context, out Outgoing) error {
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

func joined(outs []Outgoing) string {
	var b strings.Builder
	for _, o := range outs {
		b.WriteString(o.Text)
		b.WriteByte('\n')
	}
	return b.String()
}
