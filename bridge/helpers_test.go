package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

const testPasskey = "proxy-passkey-for-tests-01"

// memStore is an in-memory Store; share one between two Services to
// simulate a restart.
type memStore struct {
	mu      sync.Mutex
	keys    map[int64]string
	jobs    map[string]*memJob
	order   []string
	failKey error
}

type memJob struct {
	e        JournalEntry
	state    JobState // "" while unfinished
	errMsg   string
	finished []byte
}

func newMemStore() *memStore {
	return &memStore{keys: map[int64]string{}, jobs: map[string]*memJob{}}
}

func (m *memStore) LinkedHordeKey(_ context.Context, id int64) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failKey != nil {
		return "", m.failKey
	}
	return m.keys[id], nil
}

func (m *memStore) CreateJob(_ context.Context, e JournalEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.jobs[e.ID]; dup {
		return errors.New("duplicate job")
	}
	m.jobs[e.ID] = &memJob{e: e}
	m.order = append(m.order, e.ID)
	return nil
}

func (m *memStore) unfinished(id string) (*memJob, error) {
	j, ok := m.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %s not found", id)
	}
	if j.state != "" {
		return nil, fmt.Errorf("job %s already %s", id, j.state)
	}
	return j, nil
}

func (m *memStore) MarkJobSubmitted(_ context.Context, id, hordeID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.unfinished(id)
	if err == nil {
		j.e.HordeID = hordeID
	}
	return err
}

func (m *memStore) SaveJobResult(_ context.Context, id string, result []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.unfinished(id)
	if err == nil {
		j.e.Result = result
	}
	return err
}

func (m *memStore) FinishJob(_ context.Context, id string, state JobState, result []byte, errMsg string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.unfinished(id)
	if err == nil {
		j.state, j.finished, j.errMsg = state, result, errMsg
	}
	return err
}

func (m *memStore) IncrementJobAttempts(_ context.Context, id string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.unfinished(id)
	if err != nil {
		return 0, err
	}
	j.e.Attempts++
	return j.e.Attempts, nil
}

func (m *memStore) UnfinishedJobs(context.Context) ([]JournalEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []JournalEntry
	for _, id := range m.order {
		if j := m.jobs[id]; j.state == "" {
			out = append(out, j.e)
		}
	}
	return out, nil
}

func (m *memStore) job(id string) memJob {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j, ok := m.jobs[id]; ok {
		return *j
	}
	return memJob{}
}

func (m *memStore) states() map[JobState]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[JobState]int{}
	for _, j := range m.jobs {
		out[j.state]++
	}
	return out
}

// newTestClient returns a Horde client for the fake.
func newTestClient(tb testing.TB, fake *hordetest.Server, operatorKey string, retries int) *hordeapi.Client {
	tb.Helper()
	cfg := hordeapi.DefaultConfig()
	cfg.BaseURL = fake.URL
	cfg.APIKey = operatorKey
	cfg.ProxyPasskey = testPasskey
	cfg.MaxRetries = retries
	c, err := hordeapi.New(cfg, hordeapi.WithVersion("test"), hordeapi.WithSleep(func(ctx context.Context, _ time.Duration) error { return ctx.Err() }))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
