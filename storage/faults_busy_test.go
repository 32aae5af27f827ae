package storage_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
	"github.com/hordechat/hordechat/storage/storagetest"
)

// hangGuard bounds every wait in these tests. It only turns a hang into a
// failure; no test asserts how long anything took.
const hangGuard = 60 * time.Second

// lockedBuffer is a log sink safe for the store's goroutines and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openBusyStore opens a store with the given busy settings, logging at info
// level into the returned buffer.
func openBusyStore(t *testing.T, busyTimeout, retryFor time.Duration) (*storage.Store, storage.Config, *lockedBuffer) {
	t.Helper()
	cfg := storagetest.Config(t)
	cfg.BusyTimeout = busyTimeout
	cfg.BusyRetryFor = retryFor
	logs := &lockedBuffer{}
	s, err := storage.Open(t.Context(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cfg, logs
}

// holdWriteLock takes the database's write lock from a connection of its
// own, as `BEGIN IMMEDIATE` in an sqlite3 shell does, and leaves a row
// written but not committed. release commits it (once); cleanup releases.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO users (platform, platform_user_id, display_name, created_at, updated_at)
		VALUES ('shell', 'holder', 'lock holder', 0, 0)`); err != nil {
		t.Fatalf("write under the lock: %v", err)
	}
	release = sync.OnceFunc(func() {
		if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
			t.Errorf("release the write lock: %v", err)
		}
		conn.Close()
		db.Close()
	})
	t.Cleanup(release)
	return release
}

// waitBusyRetries waits, on the store's signal, until at least n writes
// have been retried because the database was locked.
func waitBusyRetries(t *testing.T, s *storage.Store, n uint64) {
	t.Helper()
	guard := time.NewTimer(hangGuard)
	defer guard.Stop()
	for {
		next := s.BusyRetried() // before reading the count: no wakeup is lost
		if s.BusyRetries() >= n {
			return
		}
		select {
		case <-next:
		case <-guard.C:
			t.Fatalf("only %d busy retries, want %d", s.BusyRetries(), n)
		}
	}
}

// receive waits for one value from ch, failing on a hang.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		t.Fatal("no result: the write hangs")
		panic("unreachable")
	}
}

// busyWriter does one of every kind of write: users, conversations and
// messages, the job journal, settings (autocommit), each of which meets the
// lock if it is still held.
func busyWriter(ctx context.Context, s *storage.Store, w int) error {
	u, err := s.UpsertUser(ctx, "discord", fmt.Sprint("w", w), fmt.Sprint("writer ", w))
	if err != nil {
		return err
	}
	conv, err := s.ActiveConversation(ctx, fmt.Sprint("discord:busy:", w))
	if err != nil {
		return err
	}
	err = s.AppendMessages(ctx, conv.ID,
		storage.Message{Role: storage.RoleUser, AuthorUserID: u.ID, Content: fmt.Sprint("question ", w)},
		storage.Message{Role: storage.RoleAssistant, Content: fmt.Sprint("answer ", w)})
	if err != nil {
		return err
	}
	j, err := s.CreateJob(ctx, storage.Job{Principal: fmt.Sprint("w", w)})
	if err != nil {
		return err
	}
	if err := s.FinishJob(ctx, j.ID, storage.JobDone, []byte(fmt.Sprint("result ", w)), ""); err != nil {
		return err
	}
	return s.SaveUserSettings(ctx, u.ID, storage.Settings{Model: fmt.Sprint("model-", w)})
}

// Writers of every kind meet a write lock another connection holds for far
// longer than busy_timeout: they retry until it is released, then every
// write lands, and the episode is logged once.
func TestFaultBusyWritesRetryUntilLockReleased(t *testing.T) {
	s, cfg, logs := openBusyStore(t, time.Millisecond, time.Hour)
	ctx := t.Context()
	release := holdWriteLock(t, cfg.Path)

	const writers = 12
	errs := make(chan error, writers)
	for w := range writers {
		go func() { errs <- busyWriter(ctx, s, w) }()
	}
	waitBusyRetries(t, s, 3)
	select {
	case err := <-errs:
		t.Fatalf("a writer finished while the lock was held: %v", err)
	default:
	}
	release()
	for range writers {
		if err := receive(t, errs); err != nil {
			t.Errorf("write failed: %v", err)
		}
	}

	for w := range writers {
		u, err := s.UserByPlatformID(ctx, "discord", fmt.Sprint("w", w))
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
			continue
		}
		conv := mustConversation(t, s, fmt.Sprint("discord:busy:", w))
		msgs, err := s.LastMessages(ctx, conv.ID, 0)
		if err != nil || len(msgs) != 2 || msgs[0].Content != fmt.Sprint("question ", w) || msgs[1].Content != fmt.Sprint("answer ", w) {
			t.Errorf("writer %d: history = %+v (%v), want its question and answer once", w, msgs, err)
		}
		if st, err := s.UserSettings(ctx, u.ID); err != nil || st.Model != fmt.Sprint("model-", w) {
			t.Errorf("writer %d: settings = %+v (%v)", w, st, err)
		}
	}
	if jobs, err := s.UnfinishedJobs(ctx); err != nil || len(jobs) != 0 {
		t.Errorf("unfinished jobs = %d (%v), want every job finished", len(jobs), err)
	}
	if _, err := s.UserByPlatformID(ctx, "shell", "holder"); err != nil {
		t.Errorf("the lock holder's own write is lost: %v", err)
	}
	retries := s.BusyRetries()
	out := logs.String()
	if n := strings.Count(out, "database is locked by another connection"); n != 1 {
		t.Errorf("%d lock warnings, want 1 for the episode (not one per retry):\n%s", n, out)
	}
	if n := strings.Count(out, "database lock released"); n != 1 {
		t.Errorf("%d release lines, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, fmt.Sprintf("retries=%d", retries)) {
		t.Errorf("want a warning and a release line counting all %d retries:\n%s", retries, out)
	}
	t.Logf("%d retries while locked", retries)
}

// A write waiting for the lock returns its context's error once the context
// ends, long before the retry bound, whether it is the one retrying or
// queued behind it, and leaves nothing behind.
func TestFaultBusyCancelledWriteReturnsContextError(t *testing.T) {
	s, cfg, _ := openBusyStore(t, time.Millisecond, time.Hour)
	release := holdWriteLock(t, cfg.Path)

	type result struct{ err error }
	start := func(id string) (context.CancelFunc, chan result) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan result, 1)
		go func() {
			_, err := s.UpsertUser(ctx, "discord", id, "cancelled")
			done <- result{err}
		}()
		return cancel, done
	}
	cancel1, done1 := start("c1")
	cancel2, done2 := start("c2")
	waitBusyRetries(t, s, 1)
	cancel1()
	if r := receive(t, done1); !errors.Is(r.err, context.Canceled) {
		t.Errorf("first cancelled write = %v, want context.Canceled", r.err)
	}
	cancel2()
	if r := receive(t, done2); !errors.Is(r.err, context.Canceled) {
		t.Errorf("second cancelled write = %v, want context.Canceled", r.err)
	}

	release()
	ctx := t.Context()
	for _, id := range []string{"c1", "c2"} {
		if _, err := s.UserByPlatformID(ctx, "discord", id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("cancelled write %s: lookup = %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.UpsertUser(ctx, "discord", "after", "after"); err != nil {
		t.Errorf("write after the lock was released: %v", err)
	}
}

// A lock held past storage.busy_retry_for fails the write with ErrLocked and
// an error that says what is locked and which setting bounds the wait; with
// busy_retry_for 0 nothing is retried.
func TestFaultBusyGivesUpAfterBound(t *testing.T) {
	for _, retryFor := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run(retryFor.String(), func(t *testing.T) {
			s, cfg, _ := openBusyStore(t, time.Millisecond, retryFor)
			release := holdWriteLock(t, cfg.Path)
			ctx := t.Context()
			_, err := s.UpsertUser(ctx, "discord", "bound", "bound")
			if !errors.Is(err, storage.ErrLocked) {
				t.Fatalf("write under a lasting lock = %v, want ErrLocked", err)
			}
			for _, want := range []string{"database is locked", "storage.busy_retry_for", retryFor.String(), "sqlite3 shell"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if got := s.BusyRetries(); (retryFor == 0) != (got == 0) {
				t.Errorf("%d retries with busy_retry_for %s", got, retryFor)
			}
			release()
			if _, err := s.UserByPlatformID(ctx, "discord", "bound"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the failed write left a row: %v", err)
			}
			if _, err := s.UpsertUser(ctx, "discord", "bound", "bound"); err != nil {
				t.Errorf("write after release: %v", err)
			}
		})
	}
}

// Reads never need the write lock (WAL): with busy_timeout 0, so that any
// wait for a lock would fail at once, every read works while another
// connection holds the lock, and sees only committed data. The per-message
// lookups of a known user and conversation are reads too.
func TestFaultBusyReadsProceedWhileLocked(t *testing.T) {
	s, cfg, _ := openBusyStore(t, 0, time.Hour)
	ctx := t.Context()
	u := mustUser(t, s, "reader")
	conv := mustConversation(t, s, "discord:read")
	if err := s.AppendMessages(ctx, conv.ID, storage.Message{Role: storage.RoleUser, AuthorUserID: u.ID, Content: "hi"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateJob(ctx, storage.Job{Principal: "reader"}); err != nil {
		t.Fatal(err)
	}
	holdWriteLock(t, cfg.Path)

	if got, err := s.UpsertUser(ctx, "discord", "reader", u.DisplayName); err != nil || got.ID != u.ID {
		t.Errorf("UpsertUser of a known user = %+v, %v", got, err)
	}
	if got, err := s.ActiveConversation(ctx, "discord:read"); err != nil || got.ID != conv.ID {
		t.Errorf("ActiveConversation of a known key = %+v, %v", got, err)
	}
	if msgs, err := s.LastMessages(ctx, conv.ID, 10); err != nil || len(msgs) != 1 {
		t.Errorf("LastMessages = %d, %v", len(msgs), err)
	}
	if jobs, err := s.UnfinishedJobs(ctx); err != nil || len(jobs) != 1 {
		t.Errorf("UnfinishedJobs = %d, %v", len(jobs), err)
	}
	if _, err := s.UserByPlatformID(ctx, "shell", "holder"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("uncommitted row: lookup = %v, want ErrNotFound", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping = %v", err)
	}
	if n := s.BusyRetries(); n != 0 {
		t.Errorf("%d busy retries for reads", n)
	}
}

// A checkpoint that must wait for a reader (PRAGMA wal_checkpoint(TRUNCATE)
// from an sqlite3 shell or a backup script, while another connection reads)
// holds the write lock all that time. Writes retry through it; reads do not
// wait at all (busy_timeout 0 would fail one that did).
func TestFaultBusyLongCheckpoint(t *testing.T) {
	s, cfg, _ := openBusyStore(t, 0, time.Hour)
	ctx := t.Context()
	u := mustUser(t, s, "before") // leaves frames in the WAL

	ext, err := sql.Open("sqlite", "file:"+cfg.Path+"?_pragma=busy_timeout(60000)")
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	reader, err := ext.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if _, err := reader.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatal(err)
	}
	checkpointed := make(chan error, 1)
	go func() {
		var busy, logFrames, done int
		err := ext.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done)
		if err == nil && busy != 0 {
			err = fmt.Errorf("checkpoint incomplete: busy=%d log=%d checkpointed=%d", busy, logFrames, done)
		}
		checkpointed <- err
	}()

	// Which of the checkpoint and a write takes the lock first is a race:
	// write until one write finds it taken.
	type result struct {
		writes int
		err    error
	}
	wrote := make(chan result, 1)
	go func() {
		var r result
		for ; s.BusyRetries() == 0 && r.err == nil; r.writes++ {
			_, r.err = s.UpsertUser(ctx, "discord", fmt.Sprint("ckpt", r.writes), "writer")
		}
		wrote <- r
	}()
	waitBusyRetries(t, s, 1) // the checkpoint holds the write lock
	if got, err := s.UserByID(ctx, u.ID); err != nil || got.PlatformUserID != "before" {
		t.Errorf("read during the checkpoint = %+v, %v", got, err)
	}
	select {
	case err := <-checkpointed:
		t.Fatalf("the checkpoint ended while a reader held the WAL: %v", err)
	case r := <-wrote:
		t.Fatalf("a write went through during the checkpoint: %+v", r)
	default:
	}

	if _, err := reader.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := receive(t, checkpointed); err != nil {
		t.Errorf("checkpoint: %v", err)
	}
	r := receive(t, wrote)
	if r.err != nil {
		t.Errorf("write after the checkpoint: %v", r.err)
	}
	for i := range r.writes {
		if _, err := s.UserByPlatformID(ctx, "discord", fmt.Sprint("ckpt", i)); err != nil {
			t.Errorf("write %d of %d lost: %v", i, r.writes, err)
		}
	}
}

// Recording a token's use is bookkeeping: while the database is locked it
// is tried once, not retried, so /v1 authentication is not held up.
func TestFaultBusyTokenUseNotRetried(t *testing.T) {
	s, cfg, logs := openBusyStore(t, time.Millisecond, time.Hour)
	ctx := t.Context()
	u := mustUser(t, s, "tok")
	token, _, err := s.CreateAPIToken(ctx, u.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	holdWriteLock(t, cfg.Path)
	actx, cancel := context.WithTimeout(ctx, hangGuard) // were it retried, it would wait for this
	defer cancel()
	got, tok, err := s.UserByAPIToken(actx, token) // never used: wants to record it
	if err != nil || got.ID != u.ID {
		t.Fatalf("UserByAPIToken under the lock = %+v, %v", got, err)
	}
	if !tok.LastUsedAt.IsZero() {
		t.Errorf("last use recorded as %v under the lock", tok.LastUsedAt)
	}
	if n := s.BusyRetries(); n != 0 {
		t.Errorf("%d busy retries for bookkeeping", n)
	}
	if !strings.Contains(logs.String(), "cannot record api token use") {
		t.Errorf("the skipped bookkeeping is not logged:\n%s", logs)
	}
}
