// Package storage keeps hordechat's state in SQLite (modernc.org/sqlite, no
// cgo): users, linked Horde keys (encrypted), personal API tokens (hashed),
// settings, conversations and their messages, and the journal of in-flight
// Horde jobs. It is the only package that writes SQL.
//
// One file per table; every getter returns ErrNotFound for an absent row.
// Reads run outside transactions on a small connection pool (WAL lets them
// proceed while a write is in progress); writes run in short IMMEDIATE
// transactions, one at a time, retried while another process holds the
// database lock (see busy.go). Times are stored as unix milliseconds, so
// times read back are truncated to the millisecond and in UTC.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrNotFound is returned by getters when the row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid is returned for an argument the store cannot accept.
	ErrInvalid = errors.New("invalid argument")
	// ErrConflict is returned when a write contradicts the current state,
	// such as finishing a job that has already finished.
	ErrConflict = errors.New("conflict")
	// ErrKeyMismatch is returned by Open when the encryption key is not the
	// one the database was created with.
	ErrKeyMismatch = errors.New("encryption key does not match the one this database was created with")
	// ErrSchemaTooNew is returned by Open for a database written by a newer
	// hordechat.
	ErrSchemaTooNew = errors.New("database schema is newer than this build of hordechat")
	// ErrDecrypt is returned when a stored secret does not decrypt: it was
	// altered or moved to another row.
	ErrDecrypt = errors.New("stored secret does not decrypt (altered or moved to another row)")
)

// Store is the database handle. It is safe for concurrent use.
type Store struct {
	db     *sql.DB
	log    *slog.Logger
	now    func() time.Time
	sealer *sealer
	// writeSem holds one token per write in progress. SQLite allows one
	// writer at a time; queueing writers here, with context support, beats
	// letting them spin in SQLite's busy handler (which sleeps in growing
	// steps). busy_timeout and the retries in busy.go cover other
	// processes.
	writeSem     chan struct{}
	busy         busyTracker
	busyTimeout  time.Duration
	busyRetryFor time.Duration
	closeOnce    sync.Once
	closeErr     error
}

// Option customises a Store at Open.
type Option func(*Store)

// WithNow replaces the clock, for tests of time-dependent behaviour.
func WithNow(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// dsnPragmas are applied by the driver to every new pooled connection,
// after busy_timeout (dsn). secure_delete zeroes what is deleted or
// overwritten, so a finished job's delivery target (it may hold a Discord
// interaction token) or an unlinked key's sealed bytes do not linger in
// free space of the file.
const dsnPragmas = "_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=secure_delete(1)&_txlock=immediate"

// dsn is the driver's data source name for the database file at path.
func dsn(path string, busyTimeout time.Duration) string {
	return "file:" + uriEscaper.Replace(path) + "?" +
		fmt.Sprintf("_pragma=busy_timeout(%d)&", busyTimeout.Milliseconds()) + dsnPragmas
}

// uriEscaper escapes the characters that are special in an SQLite file: URI
// path (SQLite percent-decodes the path).
var uriEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// Open opens (creating if needed) the database at cfg.Path, applies pending
// migrations, and loads and checks the encryption key. A nil log discards.
// Close the Store when done.
func Open(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open database: create directory: %w", err)
	}
	// Create the file owner-only before SQLite does (it would use 0644):
	// it holds chat history, and SQLite gives -wal and -shm its mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		_ = f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open database: create %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, cfg.BusyTimeout))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	// Keep every connection: a new one re-runs the DSN pragmas and starts
	// with a cold page cache.
	db.SetMaxIdleConns(cfg.MaxOpenConns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)

	s := &Store{
		db:           db,
		log:          log.With("component", "storage"),
		now:          time.Now,
		writeSem:     make(chan struct{}, 1),
		busyTimeout:  cfg.BusyTimeout,
		busyRetryFor: cfg.BusyRetryFor,
	}
	for _, opt := range opts {
		opt(s)
	}
	if err := s.init(ctx, cfg, path); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, cfg Config, path string) error {
	if err := s.db.PingContext(ctx); err != nil {
		return err
	}
	version, err := s.migrate(ctx)
	if err != nil {
		return err
	}
	if err := s.setupEncryption(ctx, cfg, filepath.Dir(path)); err != nil {
		return err
	}
	s.log.Info("database opened", "path", path, "schema_version", version, "max_open_conns", cfg.MaxOpenConns)
	return nil
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close database: %w", err)
		}
	})
	return s.closeErr
}

// Ping checks that the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Optimize runs PRAGMA optimize, which refreshes query planner statistics
// where they have gone stale. Schedule it a few times a day.
func (s *Store) Optimize(ctx context.Context) error {
	// It may run ANALYZE, which writes.
	if _, err := s.exec(ctx, "PRAGMA optimize"); err != nil {
		return fmt.Errorf("optimize database: %w", err)
	}
	return nil
}

// lockWrite waits for the write token.
func (s *Store) lockWrite(ctx context.Context) error {
	select {
	case s.writeSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) unlockWrite() { <-s.writeSem }

// write runs fn in one IMMEDIATE transaction, committing if fn returns nil.
// While the database is locked by another connection the whole transaction
// is run again, so fn must only set its results, never accumulate them.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	start := time.Now()
	if err := s.lockWrite(ctx); err != nil {
		return err
	}
	defer s.unlockWrite()
	return s.retryBusy(ctx, start, func() error { return s.writeOnce(ctx, fn) })
}

// writeOnce is one attempt of write.
func (s *Store) writeOnce(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// exec runs a single writing statement in autocommit mode, retrying it
// while the database is locked by another connection.
func (s *Store) exec(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	start := time.Now()
	if err := s.lockWrite(ctx); err != nil {
		return nil, err
	}
	defer s.unlockWrite()
	err = s.retryBusy(ctx, start, func() (err error) {
		res, err = s.db.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// execOnce is exec without the retries, for bookkeeping that must not hold
// up its caller while the database is locked: it waits busy_timeout at most.
func (s *Store) execOnce(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := s.lockWrite(ctx); err != nil {
		return nil, err
	}
	defer s.unlockWrite()
	return s.db.ExecContext(ctx, query, args...)
}

// execCount runs a single writing statement in autocommit mode and returns
// the number of rows it changed.
func (s *Store) execCount(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// nowMS is the current time as stored.
func (s *Store) nowMS() int64 { return s.now().UnixMilli() }

// nullMS converts a time to the stored form of a nullable column.
func nullMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// fromMS converts a stored time back.
func fromMS(ms int64) time.Time {
	return time.UnixMilli(ms).UTC()
}

// fromNullMS converts a stored nullable time back; NULL is the zero time.
func fromNullMS(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return fromMS(ms.Int64)
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface {
	Scan(dest ...any) error
}

// queryList runs a query and scans every row with scan.
func queryList[T any](ctx context.Context, db *sql.DB, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, rows.Err()
}

// isConstraint reports whether err is the given extended SQLite constraint
// error, such as SQLITE_CONSTRAINT_FOREIGNKEY.
func isConstraint(err error, code int) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == code
}

func isForeignKeyViolation(err error) bool {
	return isConstraint(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY)
}

// notFound turns sql.ErrNoRows into ErrNotFound and leaves other errors be.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
