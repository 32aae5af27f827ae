package hordetest

import (
	"crypto/sha1"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Worker is a simulated text worker.
type Worker struct {
	Name             string
	ID               string // empty derives a stable UUID from Name
	Models           []string
	MaxLength        int     // 0 means 512
	MaxContextLength int     // 0 means 4096
	TokensPerSecond  float64 // generation speed; 0 means 10
	Threads          int     // parallel jobs; 0 means 1
	Trusted          bool    // the owner is trusted
	BridgeAgent      string  // "name:version:url"; empty means KoboldCppEmbedWorker
	Softprompts      []string
	Offline          bool // starts disconnected (never checked in)
	Info             string
	Team             string // empty gives "team": {}
	NSFW             bool
	// RequestsFulfilled seeds the history. While it and the simulated count
	// are 0, /workers shows performance "No requests fulfilled yet" like
	// the real Horde does for a new worker.
	RequestsFulfilled int
}

// The bridge agents the Horde treats as validated backends (§1.1).
var validatedBackends = []string{
	"AI Horde Worker",
	"AI Horde Worker~aphrodite~oai/kai",
	"KoboldCppEmbedWorker",
	"TabbyAPI",
}

// workerOnlineWindow is how recent a check-in must be for the Horde to treat
// a worker as online.
const workerOnlineWindow = 300 * time.Second

type worker struct {
	Worker
	added       time.Time
	connected   bool      // polling for jobs right now
	lastCheckIn time.Time // frozen when the worker drops out
	busy        int       // jobs held by the current incarnation
	fulfilled   int
	kudos       float64
	uncompleted int
}

// DefaultWorkers is the realistic set a fake starts with unless
// Options.NoDefaultWorkers or Options.Workers says otherwise.
func DefaultWorkers() []Worker {
	return []Worker{
		{
			Name: "fake-koboldcpp-fimbulvetr", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"},
			MaxLength: 512, MaxContextLength: 8192, TokensPerSecond: 12, Threads: 1,
			BridgeAgent:       "KoboldCppEmbedWorker:2:https://github.com/LostRuins/koboldcpp",
			RequestsFulfilled: 1200,
		},
		{
			Name: "fake-aphrodite-hermes", Models: []string{"aphrodite/NousResearch/Hermes-3-Llama-3.1-8B"},
			MaxLength: 512, MaxContextLength: 16384, TokensPerSecond: 30, Threads: 4, Trusted: true,
			BridgeAgent:       "AI Horde Worker~aphrodite~oai/kai:5:https://github.com/Haidra-Org/AI-Horde-Worker",
			RequestsFulfilled: 54000, Team: "Fake Team",
		},
		{
			Name: "fake-koboldcpp-nemo", Models: []string{"koboldcpp/Mistral-Nemo-Instruct-12B"},
			MaxLength: 1024, MaxContextLength: 16384, TokensPerSecond: 8, Threads: 1,
			BridgeAgent:       "KoboldCppEmbedWorker:2:https://github.com/LostRuins/koboldcpp",
			RequestsFulfilled: 300,
		},
	}
}

func withWorkerDefaults(w Worker) Worker {
	if w.Name == "" {
		panic("hordetest: a Worker needs a Name")
	}
	if w.ID == "" {
		w.ID = nameUUID(w.Name)
	}
	if w.MaxLength == 0 {
		w.MaxLength = 512
	}
	if w.MaxContextLength == 0 {
		w.MaxContextLength = 4096
	}
	if w.TokensPerSecond <= 0 {
		w.TokensPerSecond = 10
	}
	if w.Threads <= 0 {
		w.Threads = 1
	}
	if w.BridgeAgent == "" {
		w.BridgeAgent = "KoboldCppEmbedWorker:2:https://github.com/LostRuins/koboldcpp"
	}
	w.Models = slices.Clone(w.Models)
	return w
}

// nameUUID derives a stable version-5-shaped UUID from a worker name.
func nameUUID(name string) string {
	h := sha1.Sum([]byte("hordetest-worker:" + name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// AddWorker adds a worker, or replaces the one with the same name (its
// in-flight jobs are orphaned as if it had restarted). It returns the worker
// with defaults filled in.
func (s *Server) AddWorker(w Worker) Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	w = withWorkerDefaults(w)
	if i := s.workerIndexLocked(w.Name); i >= 0 {
		s.orphanJobsLocked(s.workers[i])
		s.workers = slices.Delete(s.workers, i, i+1)
	}
	nw := &worker{Worker: w, added: s.now, connected: !w.Offline, fulfilled: w.RequestsFulfilled}
	if nw.connected {
		nw.lastCheckIn = s.now
	}
	s.workers = append(s.workers, nw)
	s.dispatchLocked()
	return w
}

// RemoveWorker deregisters a worker at once: it disappears from /workers and
// its id becomes unknown. Jobs it held are never finished; they restart when
// their 150 s TTL lapses. It reports whether the worker existed.
func (s *Server) RemoveWorker(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	i := s.workerIndexLocked(name)
	if i < 0 {
		return false
	}
	s.orphanJobsLocked(s.workers[i])
	s.workers = slices.Delete(s.workers, i, i+1)
	return true
}

// SetWorkerOnline connects or disconnects a worker. Disconnecting is a
// drop-out: the worker stops polling, the jobs it holds are never finished
// and restart after their 150 s TTL, and the Horde keeps listing it as online
// (and counting it for is_possible) until its last check-in is 300 s old.
// Reconnecting starts a fresh worker process with all threads free. It
// reports whether the worker exists.
func (s *Server) SetWorkerOnline(name string, online bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	i := s.workerIndexLocked(name)
	if i < 0 {
		return false
	}
	w := s.workers[i]
	switch {
	case online && !w.connected:
		w.connected, w.busy, w.lastCheckIn = true, 0, s.now
		s.dispatchLocked()
	case !online && w.connected:
		w.connected, w.lastCheckIn = false, s.now
		s.orphanJobsLocked(w)
	}
	return true
}

// Workers returns the configured workers in the order they were added.
func (s *Server) Workers() []Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Worker, len(s.workers))
	for i, w := range s.workers {
		out[i] = w.Worker
		out[i].Models = slices.Clone(w.Models)
	}
	return out
}

func (s *Server) workerIndexLocked(name string) int {
	return slices.IndexFunc(s.workers, func(w *worker) bool { return w.Name == name })
}

// activeLocked reports whether the Horde considers the worker online: it
// checked in within the last 300 s.
func (w *worker) activeLocked(now time.Time) bool {
	if w.connected {
		return true
	}
	return !w.lastCheckIn.IsZero() && now.Sub(w.lastCheckIn) < workerOnlineWindow
}

func (w *worker) bridgeName() string {
	name, _, _ := strings.Cut(w.BridgeAgent, ":")
	return name
}

// fits reports whether the worker may serve the request, and with which of
// its models (the first requested model it holds, else its first model).
func (w *worker) fits(r *request) (string, bool) {
	model := ""
	if len(r.models) == 0 {
		if len(w.Models) > 0 {
			model = w.Models[0]
		}
	} else {
		for _, m := range r.models {
			if slices.Contains(w.Models, m) {
				model = m
				break
			}
		}
		if model == "" {
			return "", false
		}
	}
	if w.MaxLength < r.maxLength || w.MaxContextLength < r.maxCtx {
		return "", false
	}
	if r.trustedOnly && !w.Trusted {
		return "", false
	}
	if len(r.workerIDs) > 0 && slices.Contains(r.workerIDs, w.ID) == r.blacklist {
		return "", false
	}
	if r.validatedOnly && !slices.Contains(validatedBackends, w.bridgeName()) {
		return "", false
	}
	if !r.slowOK && w.TokensPerSecond < slowThreshold(model) {
		return "", false
	}
	if r.softprompt != "" && !slices.Contains(w.Softprompts, r.softprompt) {
		return "", false
	}
	return model, true
}

// slowThreshold is the minimum tokens/s a worker needs when a request sets
// slow_workers=false: 3 for models of 20B and more, 4 from 13B, 5 below.
func slowThreshold(model string) float64 {
	b := modelSizeOr(model, unknownModelB)
	switch {
	case b >= 20:
		return 3
	case b >= 13:
		return 4
	default:
		return 5
	}
}
