package storage_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
)

func TestCreateAPIToken(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	u := mustUser(t, s, "1")

	token, meta, err := s.CreateAPIToken(ctx, u.ID, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	body, ok := strings.CutPrefix(token, "hc_")
	if raw, err := base64.RawURLEncoding.DecodeString(body); !ok || err != nil || len(raw) != 32 {
		t.Errorf("token %q: want hc_ and the base64url of 32 bytes", token)
	}
	if meta.ID == 0 || meta.UserID != u.ID || meta.Name != "laptop" || !meta.CreatedAt.Equal(clk.Now()) || !meta.LastUsedAt.IsZero() {
		t.Errorf("token metadata = %+v", meta)
	}
	second, _, err := s.CreateAPIToken(ctx, u.ID, "phone")
	if err != nil || second == token {
		t.Errorf("second token = %q, %v; want a different token", second, err)
	}
	if _, _, err := s.CreateAPIToken(ctx, 999, "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("CreateAPIToken for unknown user = %v, want ErrNotFound", err)
	}
}

func TestUserByAPIToken(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	u := mustUser(t, s, "1")
	token, meta, err := s.CreateAPIToken(ctx, u.ID, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	created := clk.Now()

	// The steps share the store and clock, in order.
	steps := []struct {
		name         string
		advance      time.Duration
		token        string
		wantErr      error
		wantLastUsed time.Time
	}{
		{name: "first use records the time", advance: time.Second, token: token, wantLastUsed: created.Add(time.Second)},
		{name: "use within a minute is not written", advance: 30 * time.Second, token: token, wantLastUsed: created.Add(time.Second)},
		{name: "use a minute later is", advance: 31 * time.Second, token: token, wantLastUsed: created.Add(62 * time.Second)},
		{name: "wrong token", token: "hc_" + strings.Repeat("A", 43), wantErr: storage.ErrNotFound},
		{name: "token without prefix", token: strings.TrimPrefix(token, "hc_") + "xyz", wantErr: storage.ErrNotFound},
		{name: "truncated token", token: token[:len(token)-1], wantErr: storage.ErrNotFound},
		{name: "empty", token: "", wantErr: storage.ErrNotFound},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(tt.advance)
			gotUser, gotToken, err := s.UserByAPIToken(ctx, tt.token)
			wantErr(t, err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			if gotUser != u {
				t.Errorf("user = %+v, want %+v", gotUser, u)
			}
			if gotToken.ID != meta.ID || !gotToken.LastUsedAt.Equal(tt.wantLastUsed) {
				t.Errorf("token = %+v, want id %d last used %v", gotToken, meta.ID, tt.wantLastUsed)
			}
			list, err := s.ListAPITokens(ctx, u.ID)
			if err != nil || len(list) != 1 || !list[0].LastUsedAt.Equal(tt.wantLastUsed) {
				t.Errorf("stored = %+v, %v; want last used %v", list, err, tt.wantLastUsed)
			}
		})
	}
}

func TestListAndRevokeAPITokens(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	u, other := mustUser(t, s, "1"), mustUser(t, s, "2")
	var tokens []string
	for _, name := range []string{"a", "b", "c"} {
		tok, _, err := s.CreateAPIToken(ctx, u.ID, name)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
	}
	otherToken, _, err := s.CreateAPIToken(ctx, other.ID, "o")
	if err != nil {
		t.Fatal(err)
	}

	list, err := s.ListAPITokens(ctx, u.ID)
	if err != nil || len(list) != 3 || list[0].Name != "a" || list[2].Name != "c" {
		t.Fatalf("ListAPITokens = %+v, %v", list, err)
	}
	if list, err := s.ListAPITokens(ctx, 999); err != nil || len(list) != 0 {
		t.Fatalf("ListAPITokens(unknown) = %+v, %v; want empty", list, err)
	}

	for i, want := range []int{3, 0} {
		if n, err := s.RevokeAPITokens(ctx, u.ID); err != nil || n != want {
			t.Fatalf("RevokeAPITokens #%d = %d, %v; want %d", i+1, n, err, want)
		}
	}
	for _, tok := range tokens {
		if _, _, err := s.UserByAPIToken(ctx, tok); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("revoked token: %v, want ErrNotFound", err)
		}
	}
	if got, _, err := s.UserByAPIToken(ctx, otherToken); err != nil || got.ID != other.ID {
		t.Errorf("other user's token = %+v, %v; want it untouched", got, err)
	}
}
