package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
	"github.com/hordechat/hordechat/storage/storagetest"
)

// clock is a settable time source for storage.WithNow.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newStore opens an empty store with a fake clock.
func newStore(t *testing.T) (*storage.Store, *clock) {
	t.Helper()
	c := newClock()
	return storagetest.New(t, storage.WithNow(c.Now)), c
}

func mustUser(t *testing.T, s *storage.Store, platformUserID string) storage.User {
	t.Helper()
	u, err := s.UpsertUser(t.Context(), "discord", platformUserID, "name "+platformUserID)
	if err != nil {
		t.Fatalf("UpsertUser: %v", err)
	}
	return u
}

func mustConversation(t *testing.T, s *storage.Store, key string) storage.Conversation {
	t.Helper()
	c, err := s.ActiveConversation(t.Context(), key)
	if err != nil {
		t.Fatalf("ActiveConversation: %v", err)
	}
	return c
}

// rawDB opens the database file directly, bypassing the store, for tests
// that inspect or tamper with what is on disk.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatalf("open raw db: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rawExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("raw exec %q: %v", query, err)
	}
}

// wantErr fails unless err matches want (nil means no error).
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func ptr[T any](v T) *T { return &v }
