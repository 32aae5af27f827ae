package storage_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
)

func TestActiveConversationLifecycle(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	const key = "discord:1:2"

	first := mustConversation(t, s, key)
	if first.ID == 0 || first.Key != key || !first.Active() || !first.CreatedAt.Equal(clk.Now()) {
		t.Fatalf("new conversation = %+v", first)
	}
	clk.Advance(time.Minute)
	if again := mustConversation(t, s, key); again != first {
		t.Fatalf("second ActiveConversation = %+v, want %+v", again, first)
	}
	if other := mustConversation(t, s, "matrix:!r:$e"); other.ID == first.ID {
		t.Fatal("another key shares the conversation")
	}

	for i, want := range []bool{true, false} {
		ended, err := s.EndConversation(ctx, key)
		if err != nil || ended != want {
			t.Fatalf("EndConversation #%d = %v, %v; want %v", i+1, ended, err, want)
		}
	}
	old, err := s.ConversationByID(ctx, first.ID)
	if err != nil || old.Active() || !old.EndedAt.Equal(clk.Now()) {
		t.Fatalf("ended conversation = %+v, %v", old, err)
	}

	clk.Advance(time.Minute)
	fresh := mustConversation(t, s, key)
	if fresh.ID == first.ID || !fresh.Active() || !fresh.CreatedAt.Equal(clk.Now()) {
		t.Fatalf("conversation after end = %+v, want a new active one", fresh)
	}

	if _, err := s.ActiveConversation(ctx, ""); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("ActiveConversation(\"\") = %v, want ErrInvalid", err)
	}
	if _, err := s.ConversationByID(ctx, 999); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ConversationByID(unknown) = %v, want ErrNotFound", err)
	}
	if ended, err := s.EndConversation(ctx, "nobody:here"); err != nil || ended {
		t.Errorf("EndConversation(unknown) = %v, %v; want false", ended, err)
	}
}

func TestConversationSetters(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	conv := mustConversation(t, s, "k")

	tests := []struct {
		name    string
		set     func(ctx context.Context, id int64, v string) error
		id      int64
		value   string
		check   func(storage.Conversation) string
		wantErr error
	}{
		{"system prompt", s.SetConversationSystemPrompt, conv.ID, "Be terse.",
			func(c storage.Conversation) string { return c.SystemPrompt }, nil},
		{"model", s.SetConversationModel, conv.ID, "koboldcpp/X",
			func(c storage.Conversation) string { return c.Model }, nil},
		{"clear system prompt", s.SetConversationSystemPrompt, conv.ID, "",
			func(c storage.Conversation) string { return c.SystemPrompt }, nil},
		{"system prompt of unknown", s.SetConversationSystemPrompt, 999, "x", nil, storage.ErrNotFound},
		{"model of unknown", s.SetConversationModel, 999, "x", nil, storage.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(time.Second)
			err := tt.set(ctx, tt.id, tt.value)
			wantErr(t, err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			got, err := s.ConversationByID(ctx, tt.id)
			if err != nil || tt.check(got) != tt.value || !got.UpdatedAt.Equal(clk.Now()) {
				t.Errorf("conversation = %+v, %v; want %q set and updated now", got, err, tt.value)
			}
		})
	}
	if got := mustConversation(t, s, "k"); got.Model != "koboldcpp/X" {
		t.Errorf("active conversation model = %q", got.Model)
	}
}

func TestActiveConversationConcurrentStart(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	const n = 8
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := s.ActiveConversation(ctx, "race")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = c.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent starts returned ids %v, want one conversation", ids)
		}
	}
}

func TestHasActiveConversation(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	if ok, err := s.HasActiveConversation(ctx, "test:none"); ok || err != nil {
		t.Fatalf("unknown key: %v, %v", ok, err)
	}
	if _, err := s.ActiveConversation(ctx, "test:yes"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.HasActiveConversation(ctx, "test:yes"); !ok || err != nil {
		t.Fatalf("active: %v, %v", ok, err)
	}
	if _, err := s.EndConversation(ctx, "test:yes"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.HasActiveConversation(ctx, "test:yes"); ok {
		t.Error("ended conversation still active")
	}
	if ok, _ := s.HasActiveConversation(ctx, "test:none"); ok {
		t.Error("the look-up created a conversation")
	}
}
