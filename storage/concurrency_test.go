package storage_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hordechat/hordechat/storage"
	"github.com/hordechat/hordechat/storage/storagetest"
)

// TestConcurrentUse hammers one store from many goroutines, each with its
// own conversation, mixing writes and reads. Run under -race; any "database
// is locked" (SQLITE_BUSY) fails it.
func TestConcurrentUse(t *testing.T) {
	for _, conns := range []int{1, 4} {
		t.Run(fmt.Sprint("max_open_conns=", conns), func(t *testing.T) {
			cfg := storagetest.Config(t)
			cfg.MaxOpenConns = conns
			hammer(t, storagetest.Open(t, cfg))
		})
	}
}

func hammer(t *testing.T, s *storage.Store) {
	ctx := t.Context()
	const (
		writers = 16
		appends = 25
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers*appends)
	for w := range writers {
		wg.Go(func() {
			u, err := s.UpsertUser(ctx, "discord", fmt.Sprint(w), "user")
			if err != nil {
				errs <- err
				return
			}
			conv, err := s.ActiveConversation(ctx, fmt.Sprintf("discord:c:%d", w))
			if err != nil {
				errs <- err
				return
			}
			for i := range appends {
				err := s.AppendMessages(ctx, conv.ID,
					storage.Message{Role: storage.RoleUser, AuthorUserID: u.ID, Content: fmt.Sprint("q", i)},
					storage.Message{Role: storage.RoleAssistant, Content: fmt.Sprint("a", i)})
				if err != nil {
					errs <- err
					return
				}
				if _, err := s.LastMessages(ctx, conv.ID, 10); err != nil {
					errs <- err
					return
				}
				if i%5 == 0 {
					if _, err := s.CreateJob(ctx, storage.Job{Principal: fmt.Sprint(w)}); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "busy") {
			t.Errorf("lock contention error: %v", err)
		} else {
			t.Error(err)
		}
	}
	for w := range writers {
		conv, err := s.ActiveConversation(ctx, fmt.Sprintf("discord:c:%d", w))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.CountMessages(ctx, conv.ID); err != nil || n != 2*appends {
			t.Errorf("conversation %d has %d messages (%v), want %d", w, n, err, 2*appends)
		}
	}
}
