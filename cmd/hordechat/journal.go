package main

import (
	"context"
	"errors"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/storage"
)

// bridgeStore adapts *storage.Store to bridge.Store, so that bridge never
// imports storage.
type bridgeStore struct{ s *storage.Store }

var _ bridge.Store = bridgeStore{}

func (b bridgeStore) LinkedHordeKey(ctx context.Context, storeUserID int64) (string, error) {
	k, err := b.s.HordeKey(ctx, storeUserID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return k.Key, nil
}

func (b bridgeStore) CreateJob(ctx context.Context, e bridge.JournalEntry) error {
	_, err := b.s.CreateJob(ctx, storage.Job{
		ID: e.ID, HordeRequestID: e.HordeID, Principal: e.Principal, Target: e.Target,
		Request: e.Payload, State: storage.JobPending, CreatedAt: e.CreatedAt,
	})
	return err
}

func (b bridgeStore) MarkJobSubmitted(ctx context.Context, id, hordeID string) error {
	return b.s.MarkJobSubmitted(ctx, id, hordeID)
}

func (b bridgeStore) SaveJobResult(ctx context.Context, id string, result []byte) error {
	return b.s.SaveJobResult(ctx, id, result)
}

func (b bridgeStore) FinishJob(ctx context.Context, id string, state bridge.JobState, result []byte, errMsg string) error {
	return b.s.FinishJob(ctx, id, storage.JobState(state), result, errMsg)
}

func (b bridgeStore) IncrementJobAttempts(ctx context.Context, id string) (int, error) {
	return b.s.IncrementJobAttempts(ctx, id)
}

func (b bridgeStore) UnfinishedJobs(ctx context.Context) ([]bridge.JournalEntry, error) {
	jobs, err := b.s.UnfinishedJobs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]bridge.JournalEntry, len(jobs))
	for i, j := range jobs {
		out[i] = bridge.JournalEntry{
			ID: j.ID, HordeID: j.HordeRequestID, Principal: j.Principal, Target: j.Target,
			Payload: j.Request, Attempts: j.Attempts, Result: j.Result, CreatedAt: j.CreatedAt,
		}
	}
	return out, nil
}
