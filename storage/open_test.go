package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hordechat/hordechat/storage"
	"github.com/hordechat/hordechat/storage/storagetest"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func openWithLog(t *testing.T, cfg storage.Config) (*storage.Store, *syncBuffer, error) {
	t.Helper()
	var logs syncBuffer
	s, err := storage.Open(t.Context(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, &logs, err
}

func TestOpenCreatesDirectoryAndKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	cfg := storage.DefaultConfig()
	cfg.Path = filepath.Join(dir, "hordechat.db")

	s, logs, err := openWithLog(t, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode = %v, want 0700", perm)
	}
	keyPath := filepath.Join(dir, "hordechat.key")
	fi, err = os.Stat(keyPath)
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %v, want 0600", perm)
	}
	for _, name := range []string{"hordechat.db", "hordechat.db-wal", "hordechat.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s mode = %v, want 0600 (it holds chat history)", name, perm)
		}
	}
	keyText, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(keyText)))
	if err != nil || len(key) != 32 {
		t.Fatalf("key file holds %d bytes (err %v), want base64 of 32", len(key), err)
	}
	if strings.Contains(logs.String(), strings.TrimSpace(string(keyText))) {
		t.Error("the log shows the key")
	}

	// The generated key persists: a key linked now decrypts after reopening.
	u := mustUser(t, s, "1")
	if err := s.LinkHordeKey(t.Context(), u.ID, "horde-key-1", "alias#1", 1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, _, err = openWithLog(t, cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if k, err := s.HordeKey(t.Context(), u.ID); err != nil || k.Key != "horde-key-1" {
		t.Fatalf("HordeKey after reopen = %v, %v", k, err)
	}
	if again, _ := os.ReadFile(keyPath); !bytes.Equal(again, keyText) {
		t.Error("reopening rewrote the key file")
	}
}

// TestOpenPathWithURICharacters checks the path is escaped in the file: URI
// the driver receives.
func TestOpenPathWithURICharacters(t *testing.T) {
	cfg := storagetest.Config(t)
	cfg.Path = filepath.Join(filepath.Dir(cfg.Path), "odd?dir#1%20 x", "my?db.sqlite")
	s := storagetest.Open(t, cfg)
	mustUser(t, s, "1")
	if _, err := os.Stat(cfg.Path); err != nil {
		t.Fatalf("database not at the configured path: %v", err)
	}
}

func TestOpenWarnsAboutReadableKeyFile(t *testing.T) {
	cfg := storage.DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "hordechat.db")
	s, _, err := openWithLog(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	keyPath := filepath.Join(filepath.Dir(cfg.Path), "hordechat.key")
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	keyText, _ := os.ReadFile(keyPath)

	_, logs, err := openWithLog(t, cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "readable by group or others") {
		t.Errorf("log = %s, want a warning about the key file mode", out)
	}
	if strings.Contains(out, strings.TrimSpace(string(keyText))) {
		t.Error("the log shows the key")
	}
}

func TestOpenRefusesWrongKey(t *testing.T) {
	otherKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	tests := []struct {
		name    string
		second  func(t *testing.T, cfg *storage.Config) // how the second open differs
		wantErr error
		wantMsg string
	}{
		{"different configured key", func(_ *testing.T, c *storage.Config) { c.EncryptionKey = otherKey },
			storage.ErrKeyMismatch, "encryption key does not match the one this database was created with"},
		{"key file of another database", func(t *testing.T, c *storage.Config) {
			c.EncryptionKey = ""
			if err := os.WriteFile(filepath.Join(filepath.Dir(c.Path), "hordechat.key"), []byte(otherKey), 0o600); err != nil {
				t.Fatal(err)
			}
		}, storage.ErrKeyMismatch, "encryption key does not match"},
		{"configured key dropped and no key file", func(_ *testing.T, c *storage.Config) { c.EncryptionKey = "" },
			fs.ErrNotExist, "hordechat.key is missing, but this database was created with a key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := storagetest.Config(t)
			s := storagetest.Open(t, cfg)
			s.Close()

			tt.second(t, &cfg)
			_, err := storage.Open(t.Context(), cfg, nil)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Open = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			if strings.Contains(err.Error(), otherKey) || strings.Contains(err.Error(), storagetest.Key) {
				t.Errorf("error shows a key: %v", err)
			}
		})
	}
	t.Run("no key file is created for an initialised database", func(t *testing.T) {
		cfg := storagetest.Config(t)
		storagetest.Open(t, cfg).Close()
		cfg.EncryptionKey = ""
		if _, err := storage.Open(t.Context(), cfg, nil); err == nil {
			t.Fatal("Open succeeded without the key")
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(cfg.Path), "hordechat.key")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("key file stat = %v, want it not created", err)
		}
	})
}

func TestOpenRefusesInvalidConfig(t *testing.T) {
	cfg := storagetest.Config(t)
	cfg.MaxOpenConns = 0
	if _, err := storage.Open(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "storage.max_open_conns") {
		t.Fatalf("Open = %v, want a config error", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	cfg := storagetest.Config(t)
	storagetest.Open(t, cfg).Close()
	db := rawDB(t, cfg.Path)
	rawExec(t, db, "PRAGMA user_version = 99")
	db.Close()

	_, err := storage.Open(t.Context(), cfg, nil)
	if !errors.Is(err, storage.ErrSchemaTooNew) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{"schema version 99", "newer hordechat"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestReopenIsIdempotent(t *testing.T) {
	cfg := storagetest.Config(t)
	for i := range 3 {
		s := storagetest.Open(t, cfg)
		if _, err := s.UpsertUser(t.Context(), "matrix", "@a:b", "A"); err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		s.Close()
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v %v", files, err)
	}
	var version int
	if err := rawDB(t, cfg.Path).QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != len(files) {
		t.Fatalf("user_version = %d, %v; want %d, one per migration", version, err, len(files))
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	cfg := storagetest.Config(t)
	s := storagetest.Open(t, cfg)

	u := mustUser(t, s, "42")
	if err := s.LinkHordeKey(ctx, u.ID, "persisted-key", "alias#9", 9); err != nil {
		t.Fatal(err)
	}
	token, _, err := s.CreateAPIToken(ctx, u.ID, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveUserSettings(ctx, u.ID, storage.Settings{Model: "m", TopK: ptr(40)}); err != nil {
		t.Fatal(err)
	}
	conv := mustConversation(t, s, "discord:1:2")
	if err := s.AppendMessages(ctx, conv.ID,
		storage.Message{Role: storage.RoleUser, AuthorUserID: u.ID, Content: "hello"},
		storage.Message{Role: storage.RoleAssistant, Content: "hi"}); err != nil {
		t.Fatal(err)
	}
	job, err := s.CreateJob(ctx, storage.Job{Principal: "discord:42", Target: "t", Request: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = storagetest.Open(t, cfg)
	if got, err := s.UserByPlatformID(ctx, "discord", "42"); err != nil || got != u {
		t.Errorf("user = %+v, %v; want %+v", got, err, u)
	}
	if k, err := s.HordeKey(ctx, u.ID); err != nil || k.Key != "persisted-key" || k.UserID != 9 {
		t.Errorf("horde key = %v, %v", k, err)
	}
	if got, _, err := s.UserByAPIToken(ctx, token); err != nil || got.ID != u.ID {
		t.Errorf("token user = %+v, %v", got, err)
	}
	if st, err := s.UserSettings(ctx, u.ID); err != nil || st.Model != "m" || st.TopK == nil || *st.TopK != 40 {
		t.Errorf("settings = %+v, %v", st, err)
	}
	if c := mustConversation(t, s, "discord:1:2"); c.ID != conv.ID {
		t.Errorf("active conversation = %d, want %d", c.ID, conv.ID)
	}
	if msgs, err := s.LastMessages(ctx, conv.ID, 10); err != nil || len(msgs) != 2 || msgs[0].Content != "hello" {
		t.Errorf("messages = %+v, %v", msgs, err)
	}
	if jobs, err := s.UnfinishedJobs(ctx); err != nil || len(jobs) != 1 || jobs[0].ID != job.ID || string(jobs[0].Request) != `{"a":1}` {
		t.Errorf("unfinished jobs = %+v, %v", jobs, err)
	}
}

// TestSecretsNotInClearOnDisk reads every byte the store wrote, while open
// (data in the -wal) and after closing (checkpointed into the main file).
func TestSecretsNotInClearOnDisk(t *testing.T) {
	const hordeKey = "0123456789abcdefghijKL" // the Horde's 22-character key shape
	for _, keyFromFile := range []bool{false, true} {
		name := map[bool]string{false: "configured key", true: "key file"}[keyFromFile]
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			cfg := storagetest.Config(t)
			if keyFromFile {
				cfg.EncryptionKey = ""
			}
			s := storagetest.Open(t, cfg)
			u := mustUser(t, s, "1")
			if err := s.LinkHordeKey(ctx, u.ID, hordeKey, "alias#1", 1); err != nil {
				t.Fatal(err)
			}
			token, _, err := s.CreateAPIToken(ctx, u.ID, "t")
			if err != nil {
				t.Fatal(err)
			}
			rawKey, _ := base64.StdEncoding.DecodeString(storagetest.Key)
			secrets := map[string][]byte{
				"horde key":    []byte(hordeKey),
				"api token":    []byte(token),
				"token body":   []byte(strings.TrimPrefix(token, storage.APITokenPrefix)),
				"data key":     rawKey,
				"data key b64": []byte(storagetest.Key),
			}
			check := func(stage string) {
				dir := filepath.Dir(cfg.Path)
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				var sawWAL bool
				for _, e := range entries {
					if e.Name() == "hordechat.key" {
						continue // the data key file is meant to hold the data key
					}
					sawWAL = sawWAL || strings.HasSuffix(e.Name(), "-wal")
					b, err := os.ReadFile(filepath.Join(dir, e.Name()))
					if err != nil {
						t.Fatal(err)
					}
					for what, secret := range secrets {
						if bytes.Contains(b, secret) {
							t.Errorf("%s: %s contains the %s in clear", stage, e.Name(), what)
						}
					}
				}
				if stage == "open" && !sawWAL {
					t.Errorf("no -wal file while open; entries %v", entries)
				}
			}
			check("open")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			check("closed")
		})
	}
}

func TestHashOnlyForTokens(t *testing.T) {
	ctx := t.Context()
	cfg := storagetest.Config(t)
	s := storagetest.Open(t, cfg)
	u := mustUser(t, s, "1")
	token, _, err := s.CreateAPIToken(ctx, u.ID, "t")
	if err != nil {
		t.Fatal(err)
	}
	var hash []byte
	var name string
	if err := rawDB(t, cfg.Path).QueryRowContext(context.Background(),
		"SELECT token_hash, name FROM api_tokens").Scan(&hash, &name); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(token))
	if !bytes.Equal(hash, want[:]) {
		t.Errorf("token_hash = %x, want sha256 of the token %x", hash, want)
	}
}
