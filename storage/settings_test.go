package storage_test

import (
	"math"
	"reflect"
	"testing"

	"github.com/hordechat/hordechat/storage"
)

func TestUserSettings(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	u := mustUser(t, s, "1")

	if got, err := s.UserSettings(ctx, u.ID); err != nil || !reflect.DeepEqual(got, storage.Settings{}) {
		t.Fatalf("UserSettings before saving = %+v, %v; want zero", got, err)
	}
	if got, err := s.UserSettings(ctx, 999); err != nil || !reflect.DeepEqual(got, storage.Settings{}) {
		t.Fatalf("UserSettings(unknown user) = %+v, %v; want zero", got, err)
	}

	tests := []struct {
		name     string
		userID   int64
		settings storage.Settings
		wantErr  error
	}{
		{name: "everything", userID: u.ID, settings: storage.Settings{
			Model: "koboldcpp/Mistral", SystemPrompt: "You are a pirate.",
			Temperature: ptr(0.7), TopP: ptr(0.9), MinP: ptr(0.05), RepPen: ptr(1.1), TopK: ptr(40), MaxTokens: ptr(512),
		}},
		{name: "replaces and clears", userID: u.ID, settings: storage.Settings{Temperature: ptr(1.2)}},
		{name: "zero values are kept, not dropped", userID: u.ID, settings: storage.Settings{Temperature: ptr(0.0), TopK: ptr(0)}},
		{name: "empty", userID: u.ID, settings: storage.Settings{}},
		{name: "unknown user", userID: 999, settings: storage.Settings{Model: "m"}, wantErr: storage.ErrNotFound},
		{name: "not a number", userID: u.ID, settings: storage.Settings{TopP: ptr(math.NaN())}, wantErr: storage.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SaveUserSettings(ctx, tt.userID, tt.settings)
			wantErr(t, err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			got, err := s.UserSettings(ctx, tt.userID)
			if err != nil || !reflect.DeepEqual(got, tt.settings) {
				t.Errorf("UserSettings = %+v, %v; want %+v", got, err, tt.settings)
			}
		})
	}
	// The failed saves changed nothing: the last good save was "empty".
	if got, err := s.UserSettings(ctx, u.ID); err != nil || !reflect.DeepEqual(got, storage.Settings{}) {
		t.Errorf("UserSettings after failed saves = %+v, %v", got, err)
	}
}
