package storage_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
)

func TestAppendAndLoadMessages(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	u := mustUser(t, s, "1")
	conv := mustConversation(t, s, "k")
	other := mustConversation(t, s, "other")

	clk.Advance(time.Minute)
	given := clk.Now().Add(-time.Hour)
	in := []storage.Message{
		{Role: storage.RoleSystem, Content: "persona"},
		{Role: storage.RoleUser, AuthorUserID: u.ID, Name: "Ann", Content: "hi", PlatformMessageID: "p1", CreatedAt: given},
		{Role: storage.RoleAssistant, Content: "hello", HordeRequestID: "h1", Model: "m", Kudos: 12.5, ConversationID: 12345, ID: 777},
	}
	if err := s.AppendMessages(ctx, conv.ID, in...); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendMessages(ctx, other.ID, storage.Message{Role: storage.RoleUser, Content: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendMessages(ctx, conv.ID); err != nil {
		t.Fatalf("AppendMessages with no messages = %v", err)
	}

	all, err := s.LastMessages(ctx, conv.ID, 0)
	if err != nil || len(all) != 3 {
		t.Fatalf("LastMessages(all) = %+v, %v", all, err)
	}
	for i, m := range all {
		want := in[i]
		want.ID, want.ConversationID = m.ID, conv.ID
		if want.CreatedAt.IsZero() {
			want.CreatedAt = clk.Now()
		}
		if m != want {
			t.Errorf("message %d = %+v, want %+v", i, m, want)
		}
		if i > 0 && m.ID <= all[i-1].ID {
			t.Errorf("messages out of order: %d after %d", m.ID, all[i-1].ID)
		}
	}
	if c, _ := s.ConversationByID(ctx, conv.ID); !c.UpdatedAt.Equal(clk.Now()) {
		t.Errorf("conversation updated_at = %v, want bumped to %v", c.UpdatedAt, clk.Now())
	}

	tests := []struct {
		name   string
		convID int64
		limit  int
		want   []string
	}{
		{"last two", conv.ID, 2, []string{"hi", "hello"}},
		{"last one", conv.ID, 1, []string{"hello"}},
		{"more than there are", conv.ID, 50, []string{"persona", "hi", "hello"}},
		{"no limit", conv.ID, -1, []string{"persona", "hi", "hello"}},
		{"other conversation", other.ID, 10, []string{"elsewhere"}},
		{"unknown conversation", 999, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := s.LastMessages(ctx, tt.convID, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range msgs {
				got = append(got, m.Content)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("contents = %q, want %q", got, tt.want)
			}
		})
	}

	for convID, want := range map[int64]int{conv.ID: 3, other.ID: 1, 999: 0} {
		if n, err := s.CountMessages(ctx, convID); err != nil || n != want {
			t.Errorf("CountMessages(%d) = %d, %v; want %d", convID, n, err, want)
		}
	}
}

func TestAppendMessagesIsAtomic(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	conv := mustConversation(t, s, "k")
	good := storage.Message{Role: storage.RoleUser, Content: "fine"}
	tests := []struct {
		name    string
		convID  int64
		msgs    []storage.Message
		wantErr error
	}{
		{"bad role", conv.ID, []storage.Message{good, {Role: "tool", Content: "x"}}, storage.ErrInvalid},
		{"empty role", conv.ID, []storage.Message{good, {Content: "x"}}, storage.ErrInvalid},
		{"unknown author", conv.ID, []storage.Message{good, {Role: storage.RoleUser, AuthorUserID: 999, Content: "x"}}, storage.ErrNotFound},
		{"unknown conversation", 999, []storage.Message{good}, storage.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.AppendMessages(ctx, tt.convID, tt.msgs...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("AppendMessages = %v, want %v", err, tt.wantErr)
			}
			if n, _ := s.CountMessages(ctx, conv.ID); n != 0 {
				t.Errorf("%d messages stored, want none", n)
			}
		})
	}
}

func TestReplaceLastMessage(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	conv, err := s.ActiveConversation(ctx, "test:replace")
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AppendMessages(ctx, conv.ID,
		storage.Message{Role: storage.RoleUser, Content: "Q"},
		storage.Message{Role: storage.RoleAssistant, Content: "A1"}))
	must(s.ReplaceLastMessage(ctx, conv.ID, storage.RoleAssistant, storage.Message{Role: storage.RoleAssistant, Content: "A2"}))
	// The newest is a user message now: nothing is replaced, only appended.
	must(s.AppendMessages(ctx, conv.ID, storage.Message{Role: storage.RoleUser, Content: "Q2"}))
	must(s.ReplaceLastMessage(ctx, conv.ID, storage.RoleAssistant, storage.Message{Role: storage.RoleAssistant, Content: "A3"}))
	got, err := s.LastMessages(ctx, conv.ID, 0)
	must(err)
	var texts []string
	for _, m := range got {
		texts = append(texts, m.Content)
	}
	if strings.Join(texts, ",") != "Q,A2,Q2,A3" {
		t.Fatalf("messages = %v", texts)
	}
	if err := s.ReplaceLastMessage(ctx, conv.ID, "weird"); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("bad role: %v", err)
	}
	if err := s.ReplaceLastMessage(ctx, 999999, storage.RoleAssistant, storage.Message{Role: storage.RoleAssistant, Content: "x"}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown conversation: %v", err)
	}
}

func TestUserUsage(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	u := mustUser(t, s, "usage")
	other := mustUser(t, s, "other")
	conv := mustConversation(t, s, "test:usage")
	turn := func(author int64, kudos float64) {
		t.Helper()
		if err := s.AppendMessages(ctx, conv.ID,
			storage.Message{Role: storage.RoleUser, AuthorUserID: author, Content: "q"},
			storage.Message{Role: storage.RoleAssistant, Content: "a", Kudos: kudos}); err != nil {
			t.Fatal(err)
		}
	}
	turn(u.ID, 12.5)
	turn(other.ID, 100)
	turn(u.ID, 7.5)
	got, err := s.UserUsage(ctx, u.ID)
	if err != nil || got.Questions != 2 || got.Kudos != 20 {
		t.Fatalf("usage = %+v, %v", got, err)
	}
	if got, _ := s.UserUsage(ctx, 424242); got.Questions != 0 || got.Kudos != 0 {
		t.Errorf("unknown user usage = %+v", got)
	}
}
