package storage

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// testKey is the base64 of 32 bytes; storagetest cannot be used from inside
// the package (it imports it).
const testKey = "aG9yZGVjaGF0LXRlc3Qta2V5LTAxMjM0NTY3ODlhYmM="

func openInternal(tb testing.TB, dir string) *Store {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(dir, "hordechat.db")
	cfg.EncryptionKey = testKey
	s, err := Open(context.Background(), cfg, nil)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestPragmasOnEveryConnection holds several pooled connections at once, so
// they are distinct, and checks the DSN pragmas took effect on each.
func TestPragmasOnEveryConnection(t *testing.T) {
	s := openInternal(t, t.TempDir())
	ctx := t.Context()
	const n = 3 // of max_open_conns 4
	for i := range n {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, p := range []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"foreign_keys", "1"},
			{"synchronous", "1"}, // NORMAL
			{"busy_timeout", "5000"},
		} {
			var got string
			if err := conn.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
				t.Fatalf("conn %d: PRAGMA %s: %v", i, p.pragma, err)
			}
			if got != p.want {
				t.Errorf("conn %d: PRAGMA %s = %q, want %q", i, p.pragma, got, p.want)
			}
		}
	}
	if got := s.db.Stats().OpenConnections; got < n {
		t.Errorf("%d open connections, want at least %d distinct ones checked", got, n)
	}
}

// TestTransactionsBeginImmediate checks _txlock=immediate: a transaction
// takes the write lock at BEGIN, so a second one fails at once (its busy
// timeout zeroed) instead of deadlocking on a later upgrade.
func TestTransactionsBeginImmediate(t *testing.T) {
	s := openInternal(t, t.TempDir())
	ctx := t.Context()
	first, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		t.Fatal(err)
	}
	second, err := conn.BeginTx(ctx, nil)
	if err == nil {
		second.Rollback()
		t.Fatal("a second transaction began while the first held the write lock: BEGIN is not IMMEDIATE")
	}
	if !strings.Contains(err.Error(), "locked") && !strings.Contains(err.Error(), "busy") {
		t.Errorf("second BEGIN = %v, want SQLITE_BUSY", err)
	}
}

func TestMigrationsAreNumbered(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.version != i+1 || strings.TrimSpace(m.sql) == "" {
			t.Errorf("migration %d = version %d %s", i, m.version, m.name)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("CREATE TABLE t (x);")}
	tests := []struct {
		name    string
		files   []string
		want    int
		wantErr string
	}{
		{"in order", []string{"0002_b.sql", "0001_a.sql"}, 2, ""},
		{"gap", []string{"0001_a.sql", "0003_c.sql"}, 0, "0003_c.sql: want version 2 next"},
		{"no number", []string{"init.sql"}, 0, "NNNN_description.sql"},
		{"short number", []string{"1_a.sql"}, 0, "NNNN_description.sql"},
		{"not sql", []string{"0001_a.txt"}, 0, "NNNN_description.sql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tt.files {
				fsys[f] = file
			}
			ms, err := loadMigrations(fsys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadMigrations = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(ms) != tt.want || ms[0].name != "0001_a.sql" {
				t.Fatalf("loadMigrations = %+v, %v", ms, err)
			}
		})
	}
}

func TestSealer(t *testing.T) {
	key := bytes.Repeat([]byte{1}, keySize)
	sl, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newSealer(bytes.Repeat([]byte{2}, keySize))
	secret := []byte("horde-key")
	sealed := sl.seal(secret, "horde_key:1")
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	if again := sl.seal(secret, "horde_key:1"); bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same value are equal: nonce reused")
	}
	if len(sealed) != 1+12+len(secret)+16 {
		t.Errorf("sealed length = %d, want version+nonce+ciphertext+tag = %d", len(sealed), 1+12+len(secret)+16)
	}
	flipped := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name    string
		sealer  *sealer
		sealed  []byte
		aad     string
		wantErr error
	}{
		{"round trip", sl, sealed, "horde_key:1", nil},
		{"other row", sl, sealed, "horde_key:2", ErrDecrypt},
		{"other key", other, sealed, "horde_key:1", ErrDecrypt},
		{"version flipped", sl, flipped(0), "horde_key:1", ErrDecrypt},
		{"nonce flipped", sl, flipped(1), "horde_key:1", ErrDecrypt},
		{"tag flipped", sl, flipped(len(sealed) - 1), "horde_key:1", ErrDecrypt},
		{"truncated", sl, sealed[:20], "horde_key:1", ErrDecrypt},
		{"empty", sl, nil, "horde_key:1", ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sealer.open(tt.sealed, tt.aad)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("open = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(got, secret) {
				t.Errorf("open = %q, want %q", got, secret)
			}
		})
	}
	if _, err := newSealer(key[:16]); err == nil {
		t.Error("newSealer accepted a 16-byte key")
	}
}

func TestDeriveSecret(t *testing.T) {
	key := bytes.Repeat([]byte{1}, keySize)
	sl, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{sealer: sl}
	a, b := s.DeriveSecret("identity"), s.DeriveSecret("identity")
	if len(a) != 32 || !bytes.Equal(a, b) {
		t.Fatalf("derive not stable: %x %x", a, b)
	}
	if bytes.Equal(a, s.DeriveSecret("webhook")) || bytes.Equal(a, key) {
		t.Error("derived secret not separated by purpose or equals the key")
	}
	other, _ := newSealer(bytes.Repeat([]byte{2}, keySize))
	if bytes.Equal(a, (&Store{sealer: other}).DeriveSecret("identity")) {
		t.Error("another key derives the same secret")
	}
}
