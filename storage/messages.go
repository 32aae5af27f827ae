package storage

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// Role is who a message is from, as in OpenAI chat messages.
type Role string

// The roles a message may have.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

func (r Role) valid() bool {
	return r == RoleSystem || r == RoleUser || r == RoleAssistant
}

// Message is one entry of a conversation's history.
type Message struct {
	ID                int64
	ConversationID    int64
	Role              Role
	AuthorUserID      int64  // the users.id of a human author; 0 for none
	Name              string // display name shown to the model, if any
	Content           string
	PlatformMessageID string // the chat platform's id, for replies and edits
	HordeRequestID    string // the Horde job that produced an assistant message
	Model             string // the model that produced an assistant message
	Kudos             float64
	CreatedAt         time.Time // set to now by AppendMessages when zero
}

const messageColumns = "id, conversation_id, role, author_user_id, name, content, platform_message_id, horde_request_id, model, kudos, created_at"

func scanMessage(row scanner) (Message, error) {
	var m Message
	var author sql.NullInt64
	var created int64
	if err := row.Scan(&m.ID, &m.ConversationID, &m.Role, &author, &m.Name, &m.Content,
		&m.PlatformMessageID, &m.HordeRequestID, &m.Model, &m.Kudos, &created); err != nil {
		return Message{}, err
	}
	m.AuthorUserID, m.CreatedAt = author.Int64, fromMS(created)
	return m, nil
}

// AppendMessages adds messages to a conversation, all or none, and bumps the
// conversation's updated_at. ConversationID and ID of msgs are ignored. It
// returns ErrNotFound if the conversation (or an author) does not exist.
func (s *Store) AppendMessages(ctx context.Context, convID int64, msgs ...Message) error {
	return s.appendMessages(ctx, convID, "", msgs)
}

// ReplaceLastMessage replaces the conversation's newest message with msgs
// when that message has role replace (a regenerated answer replaces the
// old one), else only appends them; all in one transaction.
func (s *Store) ReplaceLastMessage(ctx context.Context, convID int64, replace Role, msgs ...Message) error {
	if !replace.valid() {
		return fmt.Errorf("replace last message of conversation %d: role %q, want system, user or assistant: %w", convID, replace, ErrInvalid)
	}
	return s.appendMessages(ctx, convID, replace, msgs)
}

func (s *Store) appendMessages(ctx context.Context, convID int64, replace Role, msgs []Message) error {
	for i, m := range msgs {
		if !m.Role.valid() {
			return fmt.Errorf("append messages to conversation %d: message %d has role %q, want system, user or assistant: %w", convID, i, m.Role, ErrInvalid)
		}
	}
	if len(msgs) == 0 && replace == "" {
		return nil
	}
	now := s.nowMS()
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE conversations SET updated_at = ? WHERE id = ?", now, convID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		if replace != "" {
			if _, err := tx.ExecContext(ctx, `
				DELETE FROM messages WHERE id = (
					SELECT id FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT 1
				) AND role = ?`, convID, string(replace)); err != nil {
				return err
			}
		}
		stmt, err := tx.PrepareContext(ctx, `
			INSERT INTO messages (conversation_id, role, author_user_id, name, content,
			                      platform_message_id, horde_request_id, model, kudos, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, m := range msgs {
			created := now
			if !m.CreatedAt.IsZero() {
				created = m.CreatedAt.UnixMilli()
			}
			var author any
			if m.AuthorUserID != 0 {
				author = m.AuthorUserID
			}
			if _, err := stmt.ExecContext(ctx, convID, string(m.Role), author, m.Name, m.Content,
				m.PlatformMessageID, m.HordeRequestID, m.Model, m.Kudos, created); err != nil {
				return err
			}
		}
		return nil
	})
	if isForeignKeyViolation(err) {
		err = fmt.Errorf("unknown author: %w", ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("append messages to conversation %d: %w", convID, err)
	}
	return nil
}

// LastMessages returns the newest limit messages of a conversation in
// chronological order (all of them when limit <= 0). An unknown conversation
// has no messages.
func (s *Store) LastMessages(ctx context.Context, convID int64, limit int) ([]Message, error) {
	if limit <= 0 {
		limit = -1 // no limit in SQLite
	}
	// Walk the (conversation_id, id) index backwards, then restore order.
	msgs, err := queryList(ctx, s.db, scanMessage,
		"SELECT "+messageColumns+" FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT ?", convID, limit)
	if err != nil {
		return nil, fmt.Errorf("get last messages of conversation %d: %w", convID, err)
	}
	slices.Reverse(msgs)
	return msgs, nil
}

// CountMessages returns how many messages a conversation has.
func (s *Store) CountMessages(ctx context.Context, convID int64) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM messages WHERE conversation_id = ?", convID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count messages of conversation %d: %w", convID, err)
	}
	return n, nil
}

// Usage is what a user has asked of the Horde through the chat bots.
type Usage struct {
	Questions int     // chat turns the user asked
	Kudos     float64 // kudos the answers to them cost
}

// UserUsage sums a user's stored chat turns. An answer is stored right
// after its question in the same transaction, so it has the next id.
func (s *Store) UserUsage(ctx context.Context, userID int64) (Usage, error) {
	var u Usage
	err := s.db.QueryRowContext(ctx, `
		SELECT COUNT(*), COALESCE(SUM(a.kudos), 0)
		FROM messages q
		LEFT JOIN messages a ON a.id = q.id + 1 AND a.conversation_id = q.conversation_id AND a.role = 'assistant'
		WHERE q.author_user_id = ? AND q.role = 'user'`, userID).Scan(&u.Questions, &u.Kudos)
	if err != nil {
		return Usage{}, fmt.Errorf("usage of user %d: %w", userID, err)
	}
	return u, nil
}
