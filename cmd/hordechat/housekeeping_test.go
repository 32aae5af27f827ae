package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
	"github.com/hordechat/hordechat/storage/storagetest"
)

func TestPruneAppliesRetention(t *testing.T) {
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := old
	store := storagetest.New(t, storage.WithNow(func() time.Time { return now }))
	ctx := context.Background()

	ended, err := store.ActiveConversation(ctx, "test:ended")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AppendMessages(ctx, ended.ID, storage.Message{Role: storage.RoleUser, Content: "old"}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.EndConversation(ctx, "test:ended"); err != nil {
		t.Fatal(err)
	}
	job, err := store.CreateJob(ctx, storage.Job{Principal: "test:1", Target: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.FinishJob(ctx, job.ID, storage.JobDone, nil, ""); err != nil {
		t.Fatal(err)
	}

	now = old.Add(48 * time.Hour)
	live, err := store.ActiveConversation(ctx, "test:live")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AppendMessages(ctx, live.ID, storage.Message{Role: storage.RoleUser, Content: "new"}); err != nil {
		t.Fatal(err)
	}

	cfg := storage.Config{MessageRetention: 24 * time.Hour, JobRetention: 24 * time.Hour}
	if err := prune(ctx, store, cfg, now, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if n, _ := store.CountMessages(ctx, live.ID); n != 1 {
		t.Errorf("recent message pruned: %d left", n)
	}
	if _, err := store.ConversationByID(ctx, ended.ID); err == nil {
		t.Error("ended, emptied conversation kept")
	}
	if _, err := store.JobByID(ctx, job.ID); err == nil {
		t.Error("old finished job kept")
	}
}

func TestPruneKeepsEverythingWithZeroRetention(t *testing.T) {
	store := storagetest.New(t)
	ctx := context.Background()
	conv, _ := store.ActiveConversation(ctx, "test:c")
	if err := store.AppendMessages(ctx, conv.ID, storage.Message{Role: storage.RoleUser, Content: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := prune(ctx, store, storage.Config{}, time.Now().Add(1000*time.Hour), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if n, _ := store.CountMessages(ctx, conv.ID); n != 1 {
		t.Errorf("message pruned with zero retention")
	}
}

func TestHousekeepingSchedulesJobs(t *testing.T) {
	store := storagetest.New(t)
	s, err := newHousekeeping(store, storage.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	names := map[string]bool{}
	for _, j := range s.Jobs() {
		names[j.Name()] = true
	}
	if !names["prune"] || !names["optimize"] || len(names) != 2 {
		t.Errorf("jobs = %v", names)
	}
}
