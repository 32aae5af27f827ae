// Package bridgetest helps packages that build on bridge test against a
// real bridge.Service: an in-memory journal and a Service wired to a fake
// Horde on a real clock, where jobs finish as fast as the fake's workers.
package bridgetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// Passkey is the proxy passkey the fake Horde and the client share.
const Passkey = "bridgetest-proxy-passkey"

// Secret is the identity secret of Services made here.
var Secret = []byte("bridgetest-identity-secret-0123456789")

// MemStore is an in-memory bridge.Store. Share one between two Services to
// simulate a restart.
type MemStore struct {
	mu    sync.Mutex
	Keys  map[int64]string // linked Horde keys by storage user id
	jobs  map[string]*memJob
	order []string
}

type memJob struct {
	e     bridge.JournalEntry
	state bridge.JobState
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{Keys: map[int64]string{}, jobs: map[string]*memJob{}}
}

// LinkKey links a Horde key to a storage user id.
func (m *MemStore) LinkKey(userID int64, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Keys[userID] = key
}

// LinkedHordeKey implements bridge.Store.
func (m *MemStore) LinkedHordeKey(_ context.Context, id int64) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.Keys[id], nil
}

// CreateJob implements bridge.Store.
func (m *MemStore) CreateJob(_ context.Context, e bridge.JournalEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.jobs[e.ID]; dup {
		return fmt.Errorf("job %s exists", e.ID)
	}
	m.jobs[e.ID] = &memJob{e: e}
	m.order = append(m.order, e.ID)
	return nil
}

func (m *MemStore) open(id string) (*memJob, error) {
	j, ok := m.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %s not found", id)
	}
	if j.state != "" {
		return nil, fmt.Errorf("job %s already %s", id, j.state)
	}
	return j, nil
}

// MarkJobSubmitted implements bridge.Store.
func (m *MemStore) MarkJobSubmitted(_ context.Context, id, hordeID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.open(id)
	if err == nil {
		j.e.HordeID = hordeID
	}
	return err
}

// SaveJobResult implements bridge.Store.
func (m *MemStore) SaveJobResult(_ context.Context, id string, result []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.open(id)
	if err == nil {
		j.e.Result = result
	}
	return err
}

// FinishJob implements bridge.Store.
func (m *MemStore) FinishJob(_ context.Context, id string, state bridge.JobState, _ []byte, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.open(id)
	if err == nil {
		j.state = state
	}
	return err
}

// IncrementJobAttempts implements bridge.Store.
func (m *MemStore) IncrementJobAttempts(_ context.Context, id string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.open(id)
	if err != nil {
		return 0, err
	}
	j.e.Attempts++
	return j.e.Attempts, nil
}

// UnfinishedJobs implements bridge.Store.
func (m *MemStore) UnfinishedJobs(context.Context) ([]bridge.JournalEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []bridge.JournalEntry
	for _, id := range m.order {
		if j := m.jobs[id]; j.state == "" {
			out = append(out, j.e)
		}
	}
	return out, nil
}

// States counts jobs by final state ("" for unfinished).
func (m *MemStore) States() map[bridge.JobState]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[bridge.JobState]int{}
	for _, j := range m.jobs {
		out[j.state]++
	}
	return out
}

// FastWorkers are the names of FastHorde's workers.
var FastWorkers = []string{"fast-fimbulvetr", "fast-hermes"}

// SetWorkersOnline takes FastHorde's workers off or back on: while off,
// jobs wait in the queue (still possible), so a test decides when an
// answer can come.
func SetWorkersOnline(tb testing.TB, fake *hordetest.Server, online bool) {
	tb.Helper()
	for _, n := range FastWorkers {
		if !fake.SetWorkerOnline(n, online) {
			tb.Fatalf("no worker %s", n)
		}
	}
}

// FastHorde starts a fake Horde on a real clock whose workers answer
// within milliseconds, with rate limits off, for tests above the bridge.
func FastHorde(tb testing.TB, opts ...hordetest.Option) *hordetest.Server {
	tb.Helper()
	base := []hordetest.Option{
		hordetest.WithClock(clockwork.NewRealClock()),
		hordetest.WithPasskey(Passkey),
		hordetest.WithoutRateLimits(),
		hordetest.WithWorkers(
			hordetest.Worker{Name: "fast-fimbulvetr", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}, MaxLength: 512, MaxContextLength: 8192, TokensPerSecond: 1e9, Threads: 50},
			hordetest.Worker{Name: "fast-hermes", Models: []string{"aphrodite/NousResearch/Hermes-3-Llama-3.1-8B"}, MaxLength: 1024, MaxContextLength: 16384, TokensPerSecond: 1e9, Threads: 50},
		),
	}
	return hordetest.New(tb, append(base, opts...)...)
}

// Client returns a Horde client for fake with the operator key given.
func Client(tb testing.TB, fake *hordetest.Server, operatorKey string) *hordeapi.Client {
	tb.Helper()
	cfg := hordeapi.DefaultConfig()
	cfg.BaseURL = fake.URL
	cfg.APIKey = operatorKey
	cfg.ProxyPasskey = Passkey
	c, err := hordeapi.New(cfg, hordeapi.WithVersion("test"))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Service builds a bridge.Service on fake and store with models loaded;
// register deliverers with before, which runs ahead of Start. It is closed
// when the test ends.
func Service(tb testing.TB, cfg bridge.Config, fake *hordetest.Server, store bridge.Store, before func(*bridge.Service)) *bridge.Service {
	tb.Helper()
	svc, err := bridge.New(cfg, bridge.Deps{Client: Client(tb, fake, ""), Store: store, IdentitySecret: Secret})
	if err != nil {
		tb.Fatal(err)
	}
	if before != nil {
		before(svc)
	}
	if err := svc.RefreshModels(context.Background()); err != nil {
		tb.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(svc.Close)
	return svc
}
