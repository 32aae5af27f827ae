// Package storagetest opens throwaway stores for tests of packages that use
// storage.
package storagetest

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/hordechat/hordechat/storage"
)

// Key is the fixed data key of the stores opened here: the base64 of a
// 32-byte test value. Never use it outside tests.
const Key = "aG9yZGVjaGF0LXRlc3Qta2V5LTAxMjM0NTY3ODlhYmM="

// Config returns the default configuration with the database in a fresh
// tb.TempDir() and the encryption key set to Key.
func Config(tb testing.TB) storage.Config {
	tb.Helper()
	cfg := storage.DefaultConfig()
	cfg.Path = filepath.Join(tb.TempDir(), "hordechat.db")
	cfg.EncryptionKey = Key
	return cfg
}

// Open opens a store with cfg, failing the test on error, and closes it
// when the test ends.
func Open(tb testing.TB, cfg storage.Config, opts ...storage.Option) *storage.Store {
	tb.Helper()
	s, err := storage.Open(tb.Context(), cfg, Logger(tb), opts...)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return s
}

// New opens an empty store in tb.TempDir() with the test key and closes it
// when the test ends.
func New(tb testing.TB, opts ...storage.Option) *storage.Store {
	tb.Helper()
	return Open(tb, Config(tb), opts...)
}

// Logger returns a logger writing warnings and errors to the test's output,
// which is shown when the test fails or runs with -v.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}
