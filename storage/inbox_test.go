package storage_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
	"github.com/hordechat/hordechat/storage/storagetest"
)

func TestInboxKeepsAcceptedTurnsInOrder(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()

	for _, tt := range []struct {
		name string
		it   storage.InboxItem
	}{
		{"no conversation", storage.InboxItem{Platform: "discord", Payload: []byte("{}")}},
		{"no platform", storage.InboxItem{Conversation: "c", Payload: []byte("{}")}},
		{"no payload", storage.InboxItem{Conversation: "c", Platform: "discord"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.AddInbox(ctx, tt.it)
			wantErr(t, err, storage.ErrInvalid)
		})
	}

	add := func(conv, job, payload string) storage.InboxItem {
		t.Helper()
		it, err := s.AddInbox(ctx, storage.InboxItem{Conversation: conv, Platform: "discord", Payload: []byte(payload), JobID: job})
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		return it
	}
	a := add("discord:g:1", "job-a", `{"q":"a"}`)
	b := add("discord:g:2", "", `{"q":"b"}`)
	c := add("discord:g:1", "job-c", `{"q":"c"}`)
	if a.ID == 0 || b.ID <= a.ID || c.ID <= b.ID {
		t.Fatalf("ids %d, %d, %d: want growing", a.ID, b.ID, c.ID)
	}
	if want := (storage.InboxItem{ID: a.ID, Conversation: "discord:g:1", Platform: "discord", Payload: []byte(`{"q":"a"}`), JobID: "job-a", CreatedAt: clk.Now().Add(-3 * time.Second)}); !reflect.DeepEqual(a, want) {
		t.Errorf("AddInbox = %+v, want %+v", a, want)
	}
	pending := func() []storage.InboxItem {
		t.Helper()
		items, err := s.PendingInbox(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return items
	}
	if got := pending(); !reflect.DeepEqual(got, []storage.InboxItem{a, b, c}) {
		t.Fatalf("PendingInbox = %+v, want a, b, c as added", got)
	}

	// The newest goes, then a new one: it still comes last, after the
	// older ones left.
	for range 2 { // deleting again is fine: a redelivery does
		if err := s.DeleteInbox(ctx, c.ID); err != nil {
			t.Fatalf("DeleteInbox: %v", err)
		}
	}
	d := add("discord:g:1", "", `{"q":"d"}`)
	if err := s.DeleteInbox(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if got := pending(); !reflect.DeepEqual(got, []storage.InboxItem{b, d}) {
		t.Fatalf("PendingInbox = %+v, want b, d", got)
	}
}

func TestJobStateByID(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	if _, err := s.JobStateByID(ctx, "never-journaled"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("JobStateByID(unknown) = %v, want ErrNotFound", err)
	}
	j, err := s.CreateJob(ctx, storage.Job{ID: "job-1"})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
		want storage.JobState
	}{
		{"journaled", func() error { return nil }, storage.JobPending},
		{"submitted", func() error { return s.MarkJobSubmitted(ctx, j.ID, "h1") }, storage.JobSubmitted},
		{"done", func() error { return s.FinishJob(ctx, j.ID, storage.JobDone, nil, "") }, storage.JobDone},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got, err := s.JobStateByID(ctx, j.ID); err != nil || got != st.want {
			t.Errorf("%s: JobStateByID = %q, %v; want %q", st.name, got, err, st.want)
		}
	}
}

// Pruning a finished job takes its inbox item with it: the journal would
// no longer know the job, and the item would look like a turn never asked.
func TestPruneFinishedJobsTakesTheirInboxItems(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	for _, id := range []string{"old-done", "running"} {
		if _, err := s.CreateJob(ctx, storage.Job{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.FinishJob(ctx, "old-done", storage.JobDone, nil, ""); err != nil {
		t.Fatal(err)
	}
	var kept []storage.InboxItem
	for _, job := range []string{"old-done", "running", ""} {
		it, err := s.AddInbox(ctx, storage.InboxItem{Conversation: "c", Platform: "discord", Payload: []byte("{}"), JobID: job})
		if err != nil {
			t.Fatal(err)
		}
		if job != "old-done" {
			kept = append(kept, it)
		}
	}
	clk.Advance(time.Hour)
	if n, err := s.PruneFinishedJobs(ctx, clk.Now()); err != nil || n != 1 {
		t.Fatalf("PruneFinishedJobs = %d, %v; want 1", n, err)
	}
	if got, err := s.PendingInbox(ctx); err != nil || !reflect.DeepEqual(got, kept) {
		t.Fatalf("PendingInbox = %+v, %v; want %+v", got, err, kept)
	}
}

// A deleted item's payload (it may hold a Discord interaction token) is not
// left readable in the database file.
func TestDeletedInboxPayloadIsNotLeftOnDisk(t *testing.T) {
	cfg := storagetest.Config(t)
	s, err := storage.Open(t.Context(), cfg, storagetest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("interaction-token-aW50ZXJhY3Rpb24tc2VjcmV0")
	var ids []int64
	for range 3 {
		it, err := s.AddInbox(t.Context(), storage.InboxItem{Conversation: "c", Platform: "discord", Payload: append([]byte(`{"token":"`), append(secret, `"}`...)...)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, it.ID)
	}
	if _, err := s.AddInbox(t.Context(), storage.InboxItem{Conversation: "c", Platform: "discord", Payload: []byte(`{"keep":"me"}`)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := s.DeleteInbox(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // the last connection checkpoints the WAL
		t.Fatal(err)
	}
	files, _ := filepath.Glob(cfg.Path + "*")
	sawKept := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, secret) {
			t.Errorf("%s still holds a deleted payload", filepath.Base(f))
		}
		sawKept = sawKept || bytes.Contains(b, []byte(`{"keep":"me"}`))
	}
	if !sawKept {
		t.Fatalf("the item kept is in none of %v: the scan reads the wrong files", files)
	}
}

// BenchmarkInboxTurn is what the inbox adds to each chat turn: the item
// written when the message is accepted and deleted when it is answered.
func BenchmarkInboxTurn(b *testing.B) {
	s := storagetest.New(b)
	ctx := b.Context()
	payload := []byte(`{"boot":"0123456789abcdef01234567","in":{"Platform":"discord","ConversationID":"discord:1:2","Target":"discord-target-with-an-interaction-token-of-about-this-length","Text":"a question of ordinary length, asked in a thread"}}`)
	for b.Loop() {
		it, err := s.AddInbox(ctx, storage.InboxItem{Conversation: "discord:1:2", Platform: "discord", Payload: payload, JobID: "0123456789abcdef0123456789abcdef"})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.DeleteInbox(ctx, it.ID); err != nil {
			b.Fatal(err)
		}
	}
}
