package bridge

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agnivade/levenshtein"
	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/hordeapi"
)

// ModelInfo is what the Horde can do for one text model right now.
type ModelInfo struct {
	Name             string
	Workers          int           // online workers serving it
	Threads          int           // worker threads serving it
	MaxContextLength int           // best max_context_length among its online workers
	MaxLength        int           // best max_length among its online workers
	Queued           float64       // tokens waiting
	Jobs             float64       // jobs waiting
	ETA              time.Duration // the Horde's estimate for a new job
	TokensPerSecond  float64       // average speed
}

// ModelSnapshot is the model list as last fetched.
type ModelSnapshot struct {
	Models    []ModelInfo // sorted by name
	UpdatedAt time.Time   // zero before the first successful refresh
	Stale     bool        // the last refresh failed; data is from UpdatedAt
	// ActiveTextThreads and QueuedTextRequests feed the upfront-kudos rule.
	ActiveTextThreads  int
	QueuedTextRequests int
}

// Models keeps the live list of text models and their capacity. Refresh it
// from a housekeeping job; readers never wait for the network.
type Models struct {
	client *hordeapi.Client
	clock  clockwork.Clock

	mu     sync.RWMutex
	snap   ModelSnapshot
	byName map[string]int // exact name -> index in snap.Models
}

// NewModels returns an empty registry; call Refresh to fill it.
func NewModels(client *hordeapi.Client, clock clockwork.Clock) *Models {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Models{client: client, clock: clock, byName: map[string]int{}}
}

// Refresh fetches models, workers and load. On failure the previous data is
// kept and flagged stale.
func (m *Models) Refresh(ctx context.Context) error {
	models, err := m.client.Models(ctx, hordeapi.Caller{})
	if err == nil {
		var workers []hordeapi.Worker
		workers, err = m.client.Workers(ctx, hordeapi.Caller{})
		if err == nil {
			perf, perr := m.client.Performance(ctx)
			m.store(models, workers, perf, perr)
			return nil
		}
	}
	m.mu.Lock()
	m.snap.Stale = true
	m.mu.Unlock()
	return fmt.Errorf("refresh models: %w", err)
}

func (m *Models) store(models []hordeapi.ActiveModel, workers []hordeapi.Worker, perf *hordeapi.Performance, perfErr error) {
	infos := make(map[string]*ModelInfo, len(models))
	for _, am := range models {
		infos[am.Name] = &ModelInfo{
			Name: am.Name, Threads: am.Count, Queued: am.Queued, Jobs: am.Jobs,
			ETA: time.Duration(am.ETA) * time.Second, TokensPerSecond: am.Performance,
		}
	}
	for _, w := range workers {
		if !w.Online || w.MaintenanceMode || w.Flagged {
			continue
		}
		for _, name := range w.Models {
			mi, ok := infos[name]
			if !ok {
				// A worker can list a model /status/models has not caught up with yet.
				mi = &ModelInfo{Name: name, ETA: 10000 * time.Second}
				infos[name] = mi
			}
			mi.Workers++
			mi.MaxContextLength = max(mi.MaxContextLength, w.MaxContextLength)
			mi.MaxLength = max(mi.MaxLength, w.MaxLength)
		}
	}
	snap := ModelSnapshot{UpdatedAt: m.clock.Now(), Models: make([]ModelInfo, 0, len(infos))}
	for _, mi := range infos {
		snap.Models = append(snap.Models, *mi)
	}
	sort.Slice(snap.Models, func(i, j int) bool { return snap.Models[i].Name < snap.Models[j].Name })
	byName := make(map[string]int, len(snap.Models))
	for i, mi := range snap.Models {
		byName[mi.Name] = i
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if perfErr == nil && perf != nil {
		snap.ActiveTextThreads, snap.QueuedTextRequests = perf.TextThreadCount, perf.QueuedTextRequests
	} else {
		// Keep the last known load rather than pretending the Horde is idle.
		snap.ActiveTextThreads, snap.QueuedTextRequests = m.snap.ActiveTextThreads, m.snap.QueuedTextRequests
	}
	m.snap, m.byName = snap, byName
}

// Snapshot returns the current model list. Callers must not modify it.
func (m *Models) Snapshot() ModelSnapshot {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.snap
}

// Resolve finds a model by exact name, then case-insensitively, then by
// short name (the part after the last "/": Fimbulvetr-11B-v2 finds
// koboldcpp/Fimbulvetr-11B-v2). Several short-name matches are an error
// listing them; no match is an error suggesting near names.
func (m *Models) Resolve(name string) (ModelInfo, error) {
	name = strings.TrimSpace(name)
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.snap.Models) == 0 {
		if m.snap.UpdatedAt.IsZero() {
			return ModelInfo{}, newError(CodeUnavailable, http.StatusServiceUnavailable, nil, "The model list has not been loaded from the Horde yet. Try again in a minute.")
		}
		return ModelInfo{}, newError(CodeNoWorkers, http.StatusServiceUnavailable, nil, "No text workers are online on the Horde right now. Try again later.")
	}
	if i, ok := m.byName[name]; ok {
		return m.snap.Models[i], nil
	}
	lower := strings.ToLower(name)
	var exactFold, short []ModelInfo
	for _, mi := range m.snap.Models {
		ln := strings.ToLower(mi.Name)
		if ln == lower {
			exactFold = append(exactFold, mi)
		} else if shortName(ln) == lower || strings.TrimPrefix(ln, backendOf(ln)+"/") == lower {
			short = append(short, mi)
		}
	}
	if len(exactFold) == 1 {
		return exactFold[0], nil
	}
	candidates := append(exactFold, short...)
	switch len(candidates) {
	case 1:
		return candidates[0], nil
	case 0:
		e := newError(CodeUnknownModel, http.StatusNotFound, nil, "No Horde worker serves a model named %q right now.", name)
		e.Param = "model"
		if s := m.suggest(lower, 5); len(s) > 0 {
			e.Message += " Did you mean: " + strings.Join(s, ", ") + "?"
		} else {
			e.Message += " List the models with workers to pick one."
		}
		return ModelInfo{}, e
	}
	names := make([]string, len(candidates))
	for i, c := range candidates {
		names[i] = c.Name
	}
	e := newError(CodeAmbiguousModel, http.StatusBadRequest, nil, "%q matches several models: %s. Use the full name.", name, strings.Join(names, ", "))
	e.Param = "model"
	return ModelInfo{}, e
}

// suggest returns up to n model names that contain lower or are close to it.
func (m *Models) suggest(lower string, n int) []string {
	type scored struct {
		name  string
		score int
	}
	var out []scored
	for _, mi := range m.snap.Models {
		ln := strings.ToLower(mi.Name)
		sn := shortName(ln)
		switch {
		case strings.Contains(ln, lower) || (len(sn) >= 4 && strings.Contains(lower, sn)):
			out = append(out, scored{mi.Name, 0})
		default:
			if d := levenshtein.ComputeDistance(lower, sn); d <= max(2, len(lower)/4) {
				out = append(out, scored{mi.Name, d})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].score < out[j].score })
	names := make([]string, 0, min(n, len(out)))
	for i := 0; i < len(out) && i < n; i++ {
		names = append(names, out[i].name)
	}
	return names
}

// Default picks preferred when it resolves and has workers, otherwise the
// model with workers and the shortest ETA (more threads break ties).
func (m *Models) Default(preferred string) (ModelInfo, error) {
	if preferred != "" {
		if mi, err := m.Resolve(preferred); err == nil && mi.Workers > 0 {
			return mi, nil
		}
	}
	snap := m.Snapshot()
	var best *ModelInfo
	for i := range snap.Models {
		mi := &snap.Models[i]
		if mi.Workers == 0 {
			continue
		}
		if best == nil || mi.ETA < best.ETA || (mi.ETA == best.ETA && mi.Threads > best.Threads) {
			best = mi
		}
	}
	if best == nil {
		if snap.UpdatedAt.IsZero() {
			return ModelInfo{}, newError(CodeUnavailable, http.StatusServiceUnavailable, nil, "The model list has not been loaded from the Horde yet. Try again in a minute.")
		}
		return ModelInfo{}, newError(CodeNoWorkers, http.StatusServiceUnavailable, nil, "No text workers are online on the Horde right now. Try again later.")
	}
	return *best, nil
}

// WithWorkers names up to n models that have online workers, busiest
// first, for error messages.
func (m *Models) WithWorkers(n int) []string {
	snap := m.Snapshot()
	ms := make([]ModelInfo, 0, len(snap.Models))
	for _, mi := range snap.Models {
		if mi.Workers > 0 {
			ms = append(ms, mi)
		}
	}
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Threads > ms[j].Threads })
	out := make([]string, 0, min(n, len(ms)))
	for i := 0; i < len(ms) && i < n; i++ {
		out = append(out, ms[i].Name)
	}
	return out
}

func shortName(lowerName string) string {
	if i := strings.LastIndexByte(lowerName, '/'); i >= 0 {
		return lowerName[i+1:]
	}
	return lowerName
}

// backendOf returns the first path segment (koboldcpp, aphrodite) when the
// name has more than one.
func backendOf(lowerName string) string {
	if i := strings.IndexByte(lowerName, '/'); i >= 0 && strings.Count(lowerName, "/") >= 2 {
		return lowerName[:i]
	}
	return ""
}
