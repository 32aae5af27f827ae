package storage_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
	"github.com/hordechat/hordechat/storage/storagetest"
)

func TestHordeKeys(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	u := mustUser(t, s, "1")
	other := mustUser(t, s, "2")

	if _, err := s.HordeKey(ctx, u.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("HordeKey before linking = %v, want ErrNotFound", err)
	}

	tests := []struct {
		name     string
		userID   int64
		key      string
		username string
		hordeID  int64
		wantErr  error
	}{
		{name: "link", userID: u.ID, key: "key-one", username: "alias#11", hordeID: 11},
		{name: "relink replaces", userID: u.ID, key: "key-two", username: "other#12", hordeID: 12},
		{name: "second user", userID: other.ID, key: "key-three", username: "x#13", hordeID: 13},
		{name: "unicode key", userID: other.ID, key: "ключ-🔑", username: "y#14", hordeID: 14},
		{name: "unknown user", userID: 999, key: "k", wantErr: storage.ErrNotFound},
		{name: "empty key", userID: u.ID, key: "", wantErr: storage.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(time.Second)
			err := s.LinkHordeKey(ctx, tt.userID, tt.key, tt.username, tt.hordeID)
			wantErr(t, err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			got, err := s.HordeKey(ctx, tt.userID)
			want := storage.LinkedKey{Key: tt.key, Username: tt.username, UserID: tt.hordeID, LinkedAt: clk.Now()}
			if err != nil || got != want {
				t.Fatalf("HordeKey = %v (key %q), %v; want %v (key %q)", got, got.Key, err, want, want.Key)
			}
		})
	}

	t.Run("unlink", func(t *testing.T) {
		for i, want := range []bool{true, false} {
			ok, err := s.UnlinkHordeKey(ctx, u.ID)
			if err != nil || ok != want {
				t.Fatalf("UnlinkHordeKey #%d = %v, %v; want %v", i+1, ok, err, want)
			}
		}
		if _, err := s.HordeKey(ctx, u.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("HordeKey after unlink = %v, want ErrNotFound", err)
		}
		if k, err := s.HordeKey(ctx, other.ID); err != nil || k.Key != "ключ-🔑" {
			t.Fatalf("other user's key = %v, %v", k, err)
		}
	})
}

// TestHordeKeySwappedRows moves sealed keys between rows behind the store's
// back: the values are bound to their rows, so neither decrypts.
func TestHordeKeySwappedRows(t *testing.T) {
	ctx := t.Context()
	cfg := storagetest.Config(t)
	s := storagetest.Open(t, cfg)
	a, b := mustUser(t, s, "a"), mustUser(t, s, "b")
	for _, u := range []storage.User{a, b} {
		if err := s.LinkHordeKey(ctx, u.ID, "secret-of-"+u.PlatformUserID, "", 0); err != nil {
			t.Fatal(err)
		}
	}
	db := rawDB(t, cfg.Path)
	sealed := map[int64][]byte{}
	for _, u := range []storage.User{a, b} {
		var v []byte
		if err := db.QueryRowContext(ctx, "SELECT key_sealed FROM horde_keys WHERE user_id = ?", u.ID).Scan(&v); err != nil {
			t.Fatal(err)
		}
		sealed[u.ID] = v
	}
	rawExec(t, db, "UPDATE horde_keys SET key_sealed = ? WHERE user_id = ?", sealed[b.ID], a.ID)
	rawExec(t, db, "UPDATE horde_keys SET key_sealed = ? WHERE user_id = ?", sealed[a.ID], b.ID)

	for _, u := range []storage.User{a, b} {
		k, err := s.HordeKey(ctx, u.ID)
		if !errors.Is(err, storage.ErrDecrypt) {
			t.Fatalf("HordeKey(%s) after swap = %v, %v; want ErrDecrypt", u.PlatformUserID, k, err)
		}
		if strings.Contains(err.Error(), "secret-of-") {
			t.Errorf("error shows a key: %v", err)
		}
	}

	t.Run("tampered", func(t *testing.T) {
		flipped := append([]byte(nil), sealed[a.ID]...)
		flipped[len(flipped)-1] ^= 1
		rawExec(t, db, "UPDATE horde_keys SET key_sealed = ? WHERE user_id = ?", flipped, a.ID)
		rawExec(t, db, "UPDATE horde_keys SET key_sealed = x'00' WHERE user_id = ?", b.ID)
		for _, u := range []storage.User{a, b} {
			if _, err := s.HordeKey(ctx, u.ID); !errors.Is(err, storage.ErrDecrypt) {
				t.Errorf("HordeKey(%s) = %v, want ErrDecrypt", u.PlatformUserID, err)
			}
		}
	})
}

func TestLinkedKeyHidesKey(t *testing.T) {
	k := storage.LinkedKey{Key: "very-secret", Username: "alias#1", UserID: 1}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("linked", "key", k)
	for _, out := range []string{fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), logged.String()} {
		if strings.Contains(out, "very-secret") || !strings.Contains(out, "alias#1") {
			t.Errorf("output %q: want the username and not the key", out)
		}
	}
}
