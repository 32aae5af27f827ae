package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Conversation is one chat history. Key is the adapter's opaque id for the
// place it happens (e.g. "discord:<channel>:<thread>"); a key has at most
// one active conversation, and ending it (/new) makes the next message start
// a fresh one.
type Conversation struct {
	ID           int64
	Key          string
	SystemPrompt string // persona for this conversation; empty for the default
	Model        string // model override; empty for the default
	CreatedAt    time.Time
	UpdatedAt    time.Time // last change or appended message
	EndedAt      time.Time // zero while active
}

// Active reports whether the conversation has not been ended.
func (c Conversation) Active() bool { return c.EndedAt.IsZero() }

const conversationColumns = "id, key, system_prompt, model, created_at, updated_at, ended_at"

func scanConversation(row scanner) (Conversation, error) {
	var c Conversation
	var created, updated int64
	var ended sql.NullInt64
	if err := row.Scan(&c.ID, &c.Key, &c.SystemPrompt, &c.Model, &created, &updated, &ended); err != nil {
		return Conversation{}, err
	}
	c.CreatedAt, c.UpdatedAt, c.EndedAt = fromMS(created), fromMS(updated), fromNullMS(ended)
	return c, nil
}

const activeConversationQuery = "SELECT " + conversationColumns + " FROM conversations WHERE key = ? AND ended_at IS NULL"

// ActiveConversation returns the active conversation for key, starting one
// if there is none.
func (s *Store) ActiveConversation(ctx context.Context, key string) (Conversation, error) {
	if key == "" {
		return Conversation{}, fmt.Errorf("get active conversation: empty key: %w", ErrInvalid)
	}
	// The common case, an existing conversation, is a read.
	c, err := scanConversation(s.db.QueryRowContext(ctx, activeConversationQuery, key))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, fmt.Errorf("get active conversation %s: %w", key, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		// Another writer may have started it since the read.
		c, err = scanConversation(tx.QueryRowContext(ctx, activeConversationQuery, key))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		now := s.nowMS()
		c, err = scanConversation(tx.QueryRowContext(ctx,
			"INSERT INTO conversations (key, created_at, updated_at) VALUES (?, ?, ?) RETURNING "+conversationColumns,
			key, now, now))
		return err
	})
	if err != nil {
		return Conversation{}, fmt.Errorf("start conversation %s: %w", key, err)
	}
	return c, nil
}

// ConversationByID returns a conversation, active or ended, or ErrNotFound.
func (s *Store) ConversationByID(ctx context.Context, id int64) (Conversation, error) {
	c, err := scanConversation(s.db.QueryRowContext(ctx,
		"SELECT "+conversationColumns+" FROM conversations WHERE id = ?", id))
	if err != nil {
		return Conversation{}, fmt.Errorf("get conversation %d: %w", id, notFound(err))
	}
	return c, nil
}

// EndConversation ends the active conversation for key, if any, and reports
// whether there was one. Its history is kept until retention removes it.
func (s *Store) EndConversation(ctx context.Context, key string) (bool, error) {
	now := s.nowMS()
	n, err := s.execCount(ctx,
		"UPDATE conversations SET ended_at = ?, updated_at = ? WHERE key = ? AND ended_at IS NULL", now, now, key)
	if err != nil {
		return false, fmt.Errorf("end conversation %s: %w", key, err)
	}
	return n > 0, nil
}

// SetConversationSystemPrompt sets the persona of a conversation; empty
// restores the default. It returns ErrNotFound for an unknown id.
func (s *Store) SetConversationSystemPrompt(ctx context.Context, id int64, prompt string) error {
	return s.setConversationField(ctx, id, "system_prompt", prompt)
}

// SetConversationModel sets the model of a conversation; empty restores the
// default. It returns ErrNotFound for an unknown id.
func (s *Store) SetConversationModel(ctx context.Context, id int64, model string) error {
	return s.setConversationField(ctx, id, "model", model)
}

// setConversationField updates one text column; column is a constant from
// this file, never user input.
func (s *Store) setConversationField(ctx context.Context, id int64, column, value string) error {
	n, err := s.execCount(ctx,
		"UPDATE conversations SET "+column+" = ?, updated_at = ? WHERE id = ?", value, s.nowMS(), id)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("set conversation %d %s: %w", id, column, err)
	}
	return nil
}

// HasActiveConversation reports whether key has an active conversation
// (the bot has taken part in it and it was not ended), without creating one.
func (s *Store) HasActiveConversation(ctx context.Context, key string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, "SELECT 1 FROM conversations WHERE key = ? AND ended_at IS NULL", key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up conversation %q: %w", key, err)
	}
	return true, nil
}
