package storage_test

import (
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
)

func TestPruneMessages(t *testing.T) {
	defer storage.SetPruneBatch(3)() // force several batches
	s, clk := newStore(t)
	ctx := t.Context()
	now := clk.Now()
	conv := mustConversation(t, s, "k")
	var msgs []storage.Message
	for age := range 10 { // one message per day of age, 0 to 9 days old
		msgs = append(msgs, storage.Message{Role: storage.RoleUser, Content: "m", CreatedAt: now.Add(-time.Duration(age) * 24 * time.Hour)})
	}
	if err := s.AppendMessages(ctx, conv.ID, msgs...); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		before    time.Time
		wantN     int64
		wantCount int
	}{
		{"nothing that old", now.Add(-30 * 24 * time.Hour), 0, 10},
		{"older than a week", now.Add(-7 * 24 * time.Hour), 2, 8}, // the 8 and 9 day old ones
		{"cutoff is exclusive", now.Add(-7 * 24 * time.Hour), 0, 8},
		{"older than a day, several batches", now.Add(-24*time.Hour + time.Millisecond), 7, 1},
		{"everything", now.Add(time.Millisecond), 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := s.PruneMessages(ctx, tt.before)
			if err != nil || n != tt.wantN {
				t.Fatalf("PruneMessages = %d, %v; want %d", n, err, tt.wantN)
			}
			if c, _ := s.CountMessages(ctx, conv.ID); c != tt.wantCount {
				t.Errorf("%d messages left, want %d", c, tt.wantCount)
			}
		})
	}
}

func TestPruneFinishedJobs(t *testing.T) {
	defer storage.SetPruneBatch(2)()
	s, clk := newStore(t)
	ctx := t.Context()
	start := clk.Now()
	// One job per hour: four finish at once (start+0h..+3h), two stay unfinished.
	var ids []string
	for _, st := range []storage.JobState{storage.JobDone, storage.JobFailed, storage.JobCancelled, storage.JobDone, storage.JobPending, storage.JobSubmitted} {
		j, err := s.CreateJob(ctx, storage.Job{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
		switch {
		case st.Finished():
			err = s.FinishJob(ctx, j.ID, st, nil, "")
		case st == storage.JobSubmitted:
			err = s.MarkJobSubmitted(ctx, j.ID, "h")
		}
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
	}

	tests := []struct {
		name     string
		before   time.Time
		wantN    int64
		wantKept []bool // per job, in creation order
	}{
		{"none finished that early", start, 0, []bool{true, true, true, true, true, true}},
		{"first three, several batches", start.Add(2*time.Hour + time.Millisecond), 3, []bool{false, false, false, true, true, true}},
		{"unfinished jobs are never pruned", start.Add(100 * time.Hour), 1, []bool{false, false, false, false, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := s.PruneFinishedJobs(ctx, tt.before)
			if err != nil || n != tt.wantN {
				t.Fatalf("PruneFinishedJobs = %d, %v; want %d", n, err, tt.wantN)
			}
			for i, id := range ids {
				_, err := s.JobByID(ctx, id)
				if kept := err == nil; kept != tt.wantKept[i] {
					t.Errorf("job %d kept = %v (%v), want %v", i, kept, err, tt.wantKept[i])
				}
			}
		})
	}
}

func TestPruneEndedConversations(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	msg := storage.Message{Role: storage.RoleUser, Content: "m"}

	endedEmpty := mustConversation(t, s, "ended-empty")
	endedWithHistory := mustConversation(t, s, "ended-with-history")
	endedPruned := mustConversation(t, s, "ended-pruned")
	activeEmpty := mustConversation(t, s, "active-empty")
	for _, c := range []storage.Conversation{endedWithHistory, endedPruned} {
		if err := s.AppendMessages(ctx, c.ID, msg); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(48 * time.Hour)
	if err := s.AppendMessages(ctx, endedWithHistory.ID, msg); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"ended-empty", "ended-with-history", "ended-pruned"} {
		if _, err := s.EndConversation(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	// Retention removes the old messages; ended-pruned is left with none.
	if n, err := s.PruneMessages(ctx, clk.Now().Add(-24*time.Hour)); err != nil || n != 2 {
		t.Fatalf("PruneMessages = %d, %v; want 2", n, err)
	}

	n, err := s.PruneEndedConversations(ctx)
	if err != nil || n != 2 {
		t.Fatalf("PruneEndedConversations = %d, %v; want 2", n, err)
	}
	for _, tc := range []struct {
		conv storage.Conversation
		kept bool
	}{{endedEmpty, false}, {endedPruned, false}, {endedWithHistory, true}, {activeEmpty, true}} {
		_, err := s.ConversationByID(ctx, tc.conv.ID)
		if kept := err == nil; kept != tc.kept {
			t.Errorf("conversation %q kept = %v (%v), want %v", tc.conv.Key, kept, err, tc.kept)
		}
	}
	if n, _ := s.CountMessages(ctx, endedWithHistory.ID); n != 1 {
		t.Errorf("ended-with-history has %d messages, want 1", n)
	}
}

func TestHousekeepingCalls(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v", err)
	}
	if err := s.Optimize(t.Context()); err != nil {
		t.Errorf("Optimize = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}
