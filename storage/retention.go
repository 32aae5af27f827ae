package storage

import (
	"context"
	"fmt"
	"time"
)

// pruneBatch is how many rows one delete transaction removes, so that a large
// backlog does not hold the write lock for long: other writers get in
// between batches.
var pruneBatch = 1000

// PruneMessages deletes messages created before the cutoff and returns how
// many it deleted. The cmd layer calls it with now - message_retention when
// that is set; follow it with PruneEndedConversations.
func (s *Store) PruneMessages(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.pruneBatches(ctx, `
		DELETE FROM messages WHERE id IN (
			SELECT id FROM messages WHERE created_at < ? LIMIT ?)`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("prune messages: %w", err)
	}
	return n, nil
}

// PruneFinishedJobs deletes journal entries of jobs that finished before the
// cutoff and returns how many it deleted. Unfinished jobs are never pruned.
// Inbox items of those jobs go first: once the journal forgets a job, an
// item left behind (its delivery could not delete it) would look like a
// turn never submitted, and be asked again.
func (s *Store) PruneFinishedJobs(ctx context.Context, before time.Time) (int64, error) {
	if _, err := s.exec(ctx, `
		DELETE FROM inbox WHERE job_id IN (
			SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?)`, before.UnixMilli()); err != nil {
		return 0, fmt.Errorf("prune inbox items of finished jobs: %w", err)
	}
	n, err := s.pruneBatches(ctx, `
		DELETE FROM jobs WHERE rowid IN (
			SELECT rowid FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? LIMIT ?)`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("prune finished jobs: %w", err)
	}
	return n, nil
}

// PruneEndedConversations deletes ended conversations that have no messages
// left (after PruneMessages, or ended before anyone spoke) and returns how
// many it deleted. Active conversations are kept even when empty: they carry
// a persona and a model.
func (s *Store) PruneEndedConversations(ctx context.Context) (int64, error) {
	n, err := s.execCount(ctx, `
		DELETE FROM conversations
		WHERE ended_at IS NOT NULL
		  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id)`)
	if err != nil {
		return 0, fmt.Errorf("prune ended conversations: %w", err)
	}
	return n, nil
}

// pruneBatches runs a DELETE taking (cutoff, batch size) until a batch
// deletes less than a full batch.
func (s *Store) pruneBatches(ctx context.Context, query string, cutoff int64) (int64, error) {
	var total int64
	for {
		n, err := s.execCount(ctx, query, cutoff, pruneBatch)
		total += n
		if err != nil || n < int64(pruneBatch) {
			return total, err
		}
	}
}
