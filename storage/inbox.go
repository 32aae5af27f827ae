package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// InboxItem is a chat turn the bot accepted and has not finished: kept
// until the turn ends so that a crash loses no accepted message. Payload is
// the caller's opaque JSON; it may hold a short-lived platform credential,
// which is why items are deleted, not kept as history.
type InboxItem struct {
	ID           int64  // assigned by AddInbox
	Conversation string // the conversation (serial queue) the turn belongs to
	Platform     string
	Payload      []byte
	JobID        string // the id the turn's job has, or will have, in the journal; "" for none
	CreatedAt    time.Time
}

const inboxColumns = "id, conversation, platform, payload, job_id, created_at"

func scanInboxItem(row scanner) (InboxItem, error) {
	var it InboxItem
	var job sql.NullString
	var created int64
	if err := row.Scan(&it.ID, &it.Conversation, &it.Platform, &it.Payload, &job, &created); err != nil {
		return InboxItem{}, err
	}
	it.JobID, it.CreatedAt = job.String, fromMS(created)
	return it, nil
}

// AddInbox keeps an accepted turn and returns it as stored, with its ID.
// Conversation, Platform and Payload are required (ErrInvalid).
func (s *Store) AddInbox(ctx context.Context, it InboxItem) (InboxItem, error) {
	if it.Conversation == "" || it.Platform == "" || len(it.Payload) == 0 {
		return InboxItem{}, fmt.Errorf("add inbox item: conversation, platform and payload are required: %w", ErrInvalid)
	}
	var job any
	if it.JobID != "" {
		job = it.JobID
	}
	var out InboxItem
	err := s.write(ctx, func(tx *sql.Tx) (err error) {
		out, err = scanInboxItem(tx.QueryRowContext(ctx, `
			INSERT INTO inbox (conversation, platform, payload, job_id, created_at) VALUES (?, ?, ?, ?, ?)
			RETURNING `+inboxColumns,
			it.Conversation, it.Platform, it.Payload, job, s.nowMS()))
		return err
	})
	if err != nil {
		return InboxItem{}, fmt.Errorf("add inbox item for %s: %w", it.Conversation, err)
	}
	return out, nil
}

// DeleteInbox removes an item whose turn has ended. Deleting an item that
// is already gone is not an error: an answer delivered again after a
// restart deletes it again.
func (s *Store) DeleteInbox(ctx context.Context, id int64) error {
	if _, err := s.exec(ctx, "DELETE FROM inbox WHERE id = ?", id); err != nil {
		return fmt.Errorf("delete inbox item %d: %w", id, err)
	}
	return nil
}

// PendingInbox returns every item, oldest first: the turns to pick up at
// start-up. A new item's id is larger than every id in the table, so id
// order is the order the turns were accepted in.
func (s *Store) PendingInbox(ctx context.Context) ([]InboxItem, error) {
	items, err := queryList(ctx, s.db, scanInboxItem, "SELECT "+inboxColumns+" FROM inbox ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list inbox: %w", err)
	}
	return items, nil
}
