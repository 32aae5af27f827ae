package storage_test

import (
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
)

func TestUpsertUser(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	first, err := s.UpsertUser(ctx, "discord", "100", "Ann")
	if err != nil {
		t.Fatal(err)
	}
	if first.ID == 0 || first.Platform != "discord" || first.PlatformUserID != "100" || first.DisplayName != "Ann" ||
		!first.CreatedAt.Equal(clk.Now()) || !first.UpdatedAt.Equal(clk.Now()) {
		t.Fatalf("new user = %+v", first)
	}

	tests := []struct {
		name        string
		platform    string
		id          string
		displayName string
		wantErr     error
		wantSameID  bool
		wantUpdated bool // updated_at moved to now
	}{
		{name: "unchanged", platform: "discord", id: "100", displayName: "Ann", wantSameID: true},
		{name: "renamed", platform: "discord", id: "100", displayName: "Annie", wantSameID: true, wantUpdated: true},
		{name: "same id on another platform", platform: "matrix", id: "100", displayName: "Ann"},
		{name: "empty display name is allowed", platform: "discord", id: "101", displayName: ""},
		{name: "empty platform", platform: "", id: "100", wantErr: storage.ErrInvalid},
		{name: "empty platform user id", platform: "discord", id: "", wantErr: storage.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(time.Minute)
			u, err := s.UpsertUser(ctx, tt.platform, tt.id, tt.displayName)
			wantErr(t, err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			if (u.ID == first.ID) != tt.wantSameID {
				t.Errorf("id = %d, first user's id = %d, want same: %v", u.ID, first.ID, tt.wantSameID)
			}
			if u.DisplayName != tt.displayName {
				t.Errorf("display name = %q, want %q", u.DisplayName, tt.displayName)
			}
			if tt.wantSameID && !u.CreatedAt.Equal(first.CreatedAt) {
				t.Errorf("created_at changed: %v -> %v", first.CreatedAt, u.CreatedAt)
			}
			if tt.wantSameID && u.UpdatedAt.Equal(clk.Now()) != tt.wantUpdated {
				t.Errorf("updated_at = %v, now = %v, want updated: %v", u.UpdatedAt, clk.Now(), tt.wantUpdated)
			}
			got, err := s.UserByID(ctx, u.ID)
			if err != nil || got != u {
				t.Errorf("UserByID = %+v, %v; want %+v", got, err, u)
			}
		})
	}
}

func TestUserGetters(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	u := mustUser(t, s, "7")
	tests := []struct {
		name    string
		get     func() (storage.User, error)
		wantErr error
	}{
		{"by id", func() (storage.User, error) { return s.UserByID(ctx, u.ID) }, nil},
		{"by platform id", func() (storage.User, error) { return s.UserByPlatformID(ctx, "discord", "7") }, nil},
		{"unknown id", func() (storage.User, error) { return s.UserByID(ctx, u.ID+1) }, storage.ErrNotFound},
		{"unknown platform id", func() (storage.User, error) { return s.UserByPlatformID(ctx, "discord", "8") }, storage.ErrNotFound},
		{"other platform", func() (storage.User, error) { return s.UserByPlatformID(ctx, "matrix", "7") }, storage.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.get()
			wantErr(t, err, tt.wantErr)
			if tt.wantErr == nil && got != u {
				t.Errorf("got %+v, want %+v", got, u)
			}
		})
	}
}
