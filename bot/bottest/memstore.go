// Package bottest has fakes for testing code built on the chat core.
package bottest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bridge"
)

// MemStore is an in-memory bot.Store for tests.
type MemStore struct {
	mu       sync.Mutex
	users    map[string]bot.User
	Keys     map[int64]string // linked keys by user id
	linked   map[int64]bot.LinkedKey
	tokens   map[int64][]string
	settings map[int64]bot.Settings
	convs    map[string]bot.Conversation
	byID     map[int64]*bot.Conversation
	msgs     map[int64][]bot.Message
	nextID   int64
	inbox    []bot.InboxItem // oldest first
	inboxID  int64
	// Journal, when set, answers JobStatus, as storage's journal does for
	// the bridge; share the bridge's MemStore. Nil knows no job.
	Journal interface {
		JobState(id string) (state bridge.JobState, known bool)
	}
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{users: map[string]bot.User{}, Keys: map[int64]string{}, linked: map[int64]bot.LinkedKey{}, tokens: map[int64][]string{},
		settings: map[int64]bot.Settings{}, convs: map[string]bot.Conversation{}, byID: map[int64]*bot.Conversation{}, msgs: map[int64][]bot.Message{}}
}

func (m *MemStore) newID() int64 { m.nextID++; return m.nextID }

// UpsertUser implements bot.Store.
func (m *MemStore) UpsertUser(_ context.Context, platform, pid, name string) (bot.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := platform + ":" + pid
	u, ok := m.users[k]
	if !ok {
		u = bot.User{ID: m.newID(), Platform: platform, PlatformID: pid}
	}
	u.DisplayName = name
	m.users[k] = u
	return u, nil
}

// LinkHordeKey implements bot.Store.
func (m *MemStore) LinkHordeKey(_ context.Context, uid int64, key, name string, hid int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Keys[uid] = key
	m.linked[uid] = bot.LinkedKey{Username: name, UserID: hid, LinkedAt: time.Now()}
	return nil
}

// LinkedKey implements bot.Store.
func (m *MemStore) LinkedKey(_ context.Context, uid int64) (bot.LinkedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lk, ok := m.linked[uid]
	if !ok {
		return bot.LinkedKey{}, bot.ErrNotFound
	}
	return lk, nil
}

// HordeKey implements bot.Store.
func (m *MemStore) HordeKey(_ context.Context, uid int64) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.Keys[uid]
	if !ok {
		return "", bot.ErrNotFound
	}
	return k, nil
}

// Usage implements bot.Store: an answer follows its question.
func (m *MemStore) Usage(_ context.Context, uid int64) (bot.UserUsage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var u bot.UserUsage
	for _, ms := range m.msgs {
		for i, msg := range ms {
			if msg.Role == "user" && msg.AuthorID == uid {
				u.Questions++
				if i+1 < len(ms) && ms[i+1].Role == "assistant" {
					u.Kudos += ms[i+1].Kudos
				}
			}
		}
	}
	return u, nil
}

// UnlinkHordeKey implements bot.Store.
func (m *MemStore) UnlinkHordeKey(_ context.Context, uid int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.Keys[uid]
	delete(m.Keys, uid)
	delete(m.linked, uid)
	return ok, nil
}

// CreateAPIToken implements bot.Store.
func (m *MemStore) CreateAPIToken(_ context.Context, uid int64, _ string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tok := fmt.Sprintf("hc_test%d_%d", uid, len(m.tokens[uid]))
	m.tokens[uid] = append(m.tokens[uid], tok)
	return tok, nil
}

// RevokeAPITokens implements bot.Store.
func (m *MemStore) RevokeAPITokens(_ context.Context, uid int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.tokens[uid])
	delete(m.tokens, uid)
	return n, nil
}

// UserSettings implements bot.Store.
func (m *MemStore) UserSettings(_ context.Context, uid int64) (bot.Settings, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.settings[uid], nil
}

// SaveUserSettings implements bot.Store.
func (m *MemStore) SaveUserSettings(_ context.Context, uid int64, s bot.Settings) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.settings[uid] = s
	return nil
}

// ActiveConversation implements bot.Store.
func (m *MemStore) ActiveConversation(_ context.Context, key string) (bot.Conversation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.convs[key]
	if !ok {
		c = bot.Conversation{ID: m.newID(), Key: key}
		m.convs[key] = c
		m.byID[c.ID] = &c
	}
	return *m.byID[c.ID], nil
}

// HasActiveConversation implements bot.Store.
func (m *MemStore) HasActiveConversation(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.convs[key]
	return ok, nil
}

// EndConversation implements bot.Store.
func (m *MemStore) EndConversation(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.convs[key]
	delete(m.convs, key)
	return ok, nil
}

// SetConversationSystemPrompt implements bot.Store.
func (m *MemStore) SetConversationSystemPrompt(_ context.Context, id int64, p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byID[id]
	c.SystemPrompt = p
	m.convs[c.Key] = *c
	return nil
}

// AppendMessages implements bot.Store.
func (m *MemStore) AppendMessages(_ context.Context, id int64, msgs ...bot.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs[id] = append(m.msgs[id], msgs...)
	return nil
}

// ReplaceLastAssistant implements bot.Store.
func (m *MemStore) ReplaceLastAssistant(_ context.Context, id int64, msg bot.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.msgs[id]
	if n := len(ms); n > 0 && ms[n-1].Role == "assistant" {
		ms = ms[:n-1]
	}
	m.msgs[id] = append(ms, msg)
	return nil
}

// LastMessages implements bot.Store.
func (m *MemStore) LastMessages(_ context.Context, id int64, limit int) ([]bot.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.msgs[id]
	if limit > 0 && len(ms) > limit {
		ms = ms[len(ms)-limit:]
	}
	return append([]bot.Message(nil), ms...), nil
}

// History returns the messages of the active conversation with key.
func (m *MemStore) History(key string) []bot.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.convs[key]
	if !ok {
		return nil
	}
	return append([]bot.Message(nil), m.msgs[c.ID]...)
}

// AddInbox implements bot.Store.
func (m *MemStore) AddInbox(_ context.Context, it bot.InboxItem) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inboxID++
	it.ID = m.inboxID
	it.Payload = append([]byte(nil), it.Payload...)
	m.inbox = append(m.inbox, it)
	return it.ID, nil
}

// DeleteInbox implements bot.Store.
func (m *MemStore) DeleteInbox(_ context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inbox = slices.DeleteFunc(m.inbox, func(it bot.InboxItem) bool { return it.ID == id })
	return nil
}

// PendingInbox implements bot.Store.
func (m *MemStore) PendingInbox(context.Context) ([]bot.InboxItem, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.inbox), nil
}

// JobStatus implements bot.Store.
func (m *MemStore) JobStatus(_ context.Context, id string) (bot.JobStatus, error) {
	if m.Journal == nil {
		return bot.JobUnknown, nil
	}
	switch st, known := m.Journal.JobState(id); {
	case !known:
		return bot.JobUnknown, nil
	case st == "":
		return bot.JobRunning, nil
	default:
		return bot.JobFinished, nil
	}
}
