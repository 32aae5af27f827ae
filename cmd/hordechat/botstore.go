package main

import (
	"context"
	"errors"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/storage"
)

// botStore adapts *storage.Store to bot.Store, so that bot never imports
// storage.
type botStore struct{ s *storage.Store }

var _ bot.Store = botStore{}

func notFound(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return bot.ErrNotFound
	}
	return err
}

func (b botStore) UpsertUser(ctx context.Context, platform, platformID, displayName string) (bot.User, error) {
	u, err := b.s.UpsertUser(ctx, platform, platformID, displayName)
	return bot.User{ID: u.ID, Platform: u.Platform, PlatformID: u.PlatformUserID, DisplayName: u.DisplayName}, err
}

func (b botStore) LinkHordeKey(ctx context.Context, userID int64, key, username string, hordeID int64) error {
	return b.s.LinkHordeKey(ctx, userID, key, username, hordeID)
}

func (b botStore) LinkedKey(ctx context.Context, userID int64) (bot.LinkedKey, error) {
	k, err := b.s.HordeKey(ctx, userID)
	if err != nil {
		return bot.LinkedKey{}, notFound(err)
	}
	return bot.LinkedKey{Username: k.Username, UserID: k.UserID, LinkedAt: k.LinkedAt}, nil
}

func (b botStore) HordeKey(ctx context.Context, userID int64) (string, error) {
	k, err := b.s.HordeKey(ctx, userID)
	if err != nil {
		return "", notFound(err)
	}
	return k.Key, nil
}

func (b botStore) Usage(ctx context.Context, userID int64) (bot.UserUsage, error) {
	u, err := b.s.UserUsage(ctx, userID)
	return bot.UserUsage{Questions: u.Questions, Kudos: u.Kudos}, err
}

func (b botStore) UnlinkHordeKey(ctx context.Context, userID int64) (bool, error) {
	return b.s.UnlinkHordeKey(ctx, userID)
}

func (b botStore) CreateAPIToken(ctx context.Context, userID int64, name string) (string, error) {
	tok, _, err := b.s.CreateAPIToken(ctx, userID, name)
	return tok, err
}

func (b botStore) RevokeAPITokens(ctx context.Context, userID int64) (int, error) {
	return b.s.RevokeAPITokens(ctx, userID)
}

func (b botStore) UserSettings(ctx context.Context, userID int64) (bot.Settings, error) {
	st, err := b.s.UserSettings(ctx, userID)
	if err != nil {
		return bot.Settings{}, notFound(err)
	}
	return bot.Settings{Model: st.Model, SystemPrompt: st.SystemPrompt, Temperature: st.Temperature, MaxTokens: st.MaxTokens}, nil
}

// SaveUserSettings keeps the stored knobs the chat core does not know.
func (b botStore) SaveUserSettings(ctx context.Context, userID int64, in bot.Settings) error {
	st, err := b.s.UserSettings(ctx, userID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	st.Model, st.SystemPrompt, st.Temperature, st.MaxTokens = in.Model, in.SystemPrompt, in.Temperature, in.MaxTokens
	return b.s.SaveUserSettings(ctx, userID, st)
}

func (b botStore) ActiveConversation(ctx context.Context, key string) (bot.Conversation, error) {
	c, err := b.s.ActiveConversation(ctx, key)
	return bot.Conversation{ID: c.ID, Key: c.Key, SystemPrompt: c.SystemPrompt, Model: c.Model}, err
}

func (b botStore) HasActiveConversation(ctx context.Context, key string) (bool, error) {
	return b.s.HasActiveConversation(ctx, key)
}

func (b botStore) EndConversation(ctx context.Context, key string) (bool, error) {
	return b.s.EndConversation(ctx, key)
}

func (b botStore) SetConversationSystemPrompt(ctx context.Context, id int64, prompt string) error {
	return b.s.SetConversationSystemPrompt(ctx, id, prompt)
}

func (b botStore) AppendMessages(ctx context.Context, convID int64, msgs ...bot.Message) error {
	out := make([]storage.Message, len(msgs))
	for i, m := range msgs {
		out[i] = storageMessage(m)
	}
	return b.s.AppendMessages(ctx, convID, out...)
}

func storageMessage(m bot.Message) storage.Message {
	return storage.Message{Role: storage.Role(m.Role), Name: m.Name, Content: m.Content, AuthorUserID: m.AuthorID, Model: m.Model, HordeRequestID: m.HordeID, Kudos: m.Kudos}
}

func (b botStore) ReplaceLastAssistant(ctx context.Context, convID int64, m bot.Message) error {
	return b.s.ReplaceLastMessage(ctx, convID, storage.RoleAssistant, storageMessage(m))
}

func (b botStore) LastMessages(ctx context.Context, convID int64, limit int) ([]bot.Message, error) {
	ms, err := b.s.LastMessages(ctx, convID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]bot.Message, len(ms))
	for i, m := range ms {
		out[i] = bot.Message{Role: string(m.Role), Name: m.Name, Content: m.Content, AuthorID: m.AuthorUserID, Model: m.Model, HordeID: m.HordeRequestID, Kudos: m.Kudos}
	}
	return out, nil
}

func (b botStore) AddInbox(ctx context.Context, it bot.InboxItem) (int64, error) {
	out, err := b.s.AddInbox(ctx, storage.InboxItem{Conversation: it.Conversation, Platform: it.Platform, Payload: it.Payload, JobID: it.JobID})
	return out.ID, err
}

func (b botStore) DeleteInbox(ctx context.Context, id int64) error {
	return b.s.DeleteInbox(ctx, id)
}

func (b botStore) PendingInbox(ctx context.Context) ([]bot.InboxItem, error) {
	items, err := b.s.PendingInbox(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]bot.InboxItem, len(items))
	for i, it := range items {
		out[i] = bot.InboxItem{ID: it.ID, Conversation: it.Conversation, Platform: it.Platform, Payload: it.Payload, JobID: it.JobID}
	}
	return out, nil
}

func (b botStore) JobStatus(ctx context.Context, jobID string) (bot.JobStatus, error) {
	st, err := b.s.JobStateByID(ctx, jobID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return bot.JobUnknown, nil
	case err != nil:
		return bot.JobUnknown, err
	case st.Finished():
		return bot.JobFinished, nil
	default:
		return bot.JobRunning, nil
	}
}

// hordeKeys validates keys for /link with find_user.
type hordeKeys struct{ c *hordeapi.Client }

func (h hordeKeys) CheckKey(ctx context.Context, key string) (bot.HordeAccount, error) {
	u, err := h.c.FindUser(ctx, hordeapi.Caller{APIKey: key})
	if err != nil {
		return bot.HordeAccount{}, err
	}
	return bot.HordeAccount{Username: u.Username, ID: u.ID, Kudos: u.Kudos}, nil
}
