package storage

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	benchConversations = 10_000
	benchPerConv       = 100 // 1,000,000 messages in all
	benchHistory       = 50
)

// The big database for BenchmarkLastMessages is built once per process and
// removed by TestMain.
var (
	bigOnce  sync.Once
	bigDir   string
	bigStore *Store
	bigErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bigStore != nil {
		bigStore.Close()
	}
	if bigDir != "" {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

// benchContent is a typical chat line (~160 bytes).
var benchContent = strings.Repeat("The quick brown fox jumps over the lazy dog. ", 4)[:160]

// bigDB returns a store holding benchConversations conversations of
// benchPerConv messages each. Messages are inserted round-robin across
// conversations, as real traffic interleaves, so a conversation's rows are
// scattered over the table rather than adjacent.
func bigDB(b *testing.B) *Store {
	bigOnce.Do(func() {
		start := time.Now()
		bigDir, bigErr = os.MkdirTemp("", "hordechat-bench-")
		if bigErr != nil {
			return
		}
		cfg := DefaultConfig()
		cfg.Path = filepath.Join(bigDir, "hordechat.db")
		cfg.EncryptionKey = testKey
		bigStore, bigErr = Open(context.Background(), cfg, nil)
		if bigErr != nil {
			return
		}
		bigErr = bigStore.write(context.Background(), func(tx *sql.Tx) error {
			ctx := context.Background()
			now := time.Now().UnixMilli()
			conv, err := tx.PrepareContext(ctx, "INSERT INTO conversations (id, key, created_at, updated_at) VALUES (?, ?, ?, ?)")
			if err != nil {
				return err
			}
			defer conv.Close()
			for c := 1; c <= benchConversations; c++ {
				if _, err := conv.ExecContext(ctx, c, fmt.Sprint("bench:", c), now, now); err != nil {
					return err
				}
			}
			msg, err := tx.PrepareContext(ctx, `INSERT INTO messages (conversation_id, role, name, content, model, created_at)
				VALUES (?, ?, ?, ?, ?, ?)`)
			if err != nil {
				return err
			}
			defer msg.Close()
			for i := range benchPerConv {
				role, name, model := "user", "Ann", ""
				if i%2 == 1 {
					role, name, model = "assistant", "", "koboldcpp/Bench-7B"
				}
				for c := 1; c <= benchConversations; c++ {
					if _, err := msg.ExecContext(ctx, c, role, name, benchContent, model, now); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if bigErr == nil {
			_, bigErr = bigStore.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		}
		fmt.Fprintf(os.Stderr, "built %d-message database in %v\n", benchConversations*benchPerConv, time.Since(start).Round(time.Millisecond))
	})
	if bigErr != nil {
		b.Fatalf("build benchmark database: %v", bigErr)
	}
	return bigStore
}

// BenchmarkAppendMessage appends one message per op, each in its own
// transaction, to one conversation.
func BenchmarkAppendMessage(b *testing.B) {
	s := openInternal(b, b.TempDir())
	ctx := context.Background()
	conv, err := s.ActiveConversation(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	m := Message{Role: RoleUser, Name: "Ann", Content: benchContent}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.AppendMessages(ctx, conv.ID, m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkLastMessages loads the last 50 messages of a random conversation
// from a 1,000,000-message database and reports latency percentiles.
func BenchmarkLastMessages(b *testing.B) {
	s := bigDB(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		id := int64(1 + rng.IntN(benchConversations))
		start := time.Now()
		msgs, err := s.LastMessages(ctx, id, benchHistory)
		lat = append(lat, time.Since(start))
		if err != nil || len(msgs) != benchHistory {
			b.Fatalf("LastMessages(%d) = %d messages, %v", id, len(msgs), err)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkKeyEncryptDecrypt seals and opens one Horde key.
func BenchmarkKeyEncryptDecrypt(b *testing.B) {
	sl, err := newSealer([]byte(strings.Repeat("k", keySize)))
	if err != nil {
		b.Fatal(err)
	}
	key := []byte("0123456789abcdefghijKL")
	aad := hordeKeyAAD(12345)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sl.open(sl.seal(key, aad), aad); err != nil {
			b.Fatal(err)
		}
	}
}
