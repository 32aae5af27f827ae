package hordetest

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// hordeVersion is what the heartbeat reports (horde-api.md's source).
const hordeVersion = "5.1.5"

// userCacheTTL is find_user's per-key cache.
const userCacheTTL = 30 * time.Second

// choiceError is reqparse's answer for a value outside its choices.
func choiceError(name, help, value string) reply {
	return validationError(map[string]string{name: fmt.Sprintf("%s '%s' is not a valid choice", help, value)})
}

// handleWorkers is GET /v2/workers: workers that checked in within 300 s,
// optionally filtered by type and by name (exact, case-insensitive).
func (s *Server) handleWorkers(r *http.Request) reply {
	q := r.URL.Query()
	typ := q.Get("type")
	if typ != "" && typ != "text" && typ != "image" && typ != "interrogation" {
		return choiceError("type", "Filter the workers by type (image, text or interrogation)", typ)
	}
	name := q.Get("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	out := []workerBody{}
	if typ == "image" || typ == "interrogation" {
		return jsonReply(http.StatusOK, out)
	}
	for _, w := range s.workers {
		if !w.activeLocked(s.now) || (name != "" && !strings.EqualFold(name, w.Name)) {
			continue
		}
		out = append(out, s.workerBodyLocked(w))
	}
	return jsonReply(http.StatusOK, out)
}

func (s *Server) workerBodyLocked(w *worker) workerBody {
	perf := "No requests fulfilled yet"
	if w.fulfilled > 0 {
		perf = fmt.Sprintf("%s tokens per second", strconv.FormatFloat(math.Round(w.TokensPerSecond*10)/10, 'f', -1, 64))
	}
	team := map[string]string{}
	if w.Team != "" {
		team = map[string]string{"id": nameUUID("team:" + w.Team), "name": w.Team}
	}
	return workerBody{
		Name: w.Name, ID: w.ID, Type: "text", Online: true, Trusted: w.Trusted, NSFW: w.NSFW,
		BridgeAgent: w.BridgeAgent, Models: slices.Clone(w.Models), MaxLength: w.MaxLength,
		MaxContextLength: w.MaxContextLength, Threads: w.Threads, Performance: perf,
		Uptime: int64(s.now.Sub(w.added) / time.Second), RequestsFulfilled: w.fulfilled,
		UncompletedJobs: w.uncompleted, KudosRewards: w.kudos,
		KudosDetails: kudosGenUptime{Generated: w.kudos}, Info: w.Info, Team: team,
	}
}

// handleModels is GET /v2/status/models. type defaults to image, for which
// the fake has nothing.
func (s *Server) handleModels(r *http.Request) reply {
	q := r.URL.Query()
	typ := q.Get("type")
	if typ == "" {
		typ = "image"
	}
	if typ != "image" && typ != "text" {
		return choiceError("type", "Filter the models by type (image or text)", typ)
	}
	if st := q.Get("model_state"); st != "" && st != "known" && st != "custom" && st != "all" {
		return choiceError("model_state", "If 'known', only show stats for known models in the model reference. "+
			"If 'custom' only show stats for custom models. If 'all' shows stats for all models.", st)
	}
	bounds := map[string]int{"min_count": -1, "max_count": math.MaxInt}
	for key := range bounds {
		if v := q.Get(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return validationError(map[string]string{key: fmt.Sprintf("invalid literal for int() with base 10: '%s'", v)})
			}
			bounds[key] = n
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	out := []modelBody{}
	if typ == "text" {
		for _, m := range s.modelStatsLocked() {
			if m.Count >= bounds["min_count"] && m.Count <= bounds["max_count"] {
				out = append(out, m)
			}
		}
	}
	return jsonReply(http.StatusOK, out)
}

// handleModel is GET /v2/status/models/{name}: a one-element list.
func (s *Server) handleModel(name string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	for _, m := range s.modelStatsLocked() {
		if m.Name == name {
			return jsonReply(http.StatusOK, []modelBody{m})
		}
	}
	return rcError(http.StatusNotFound, "ModelNotFound", fmt.Sprintf("Model with ID '%s' not found.", name))
}

// modelStatsLocked aggregates per model: threads of online workers, their
// average speed, and the jobs and tokens queued (waiting or processing) by
// requests naming the model. A model that is only queued has count 0 and
// eta 10000.
func (s *Server) modelStatsLocked() []modelBody {
	type agg struct {
		count        int
		speed        float64
		workers      int
		queued, jobs float64
	}
	stats := map[string]*agg{}
	get := func(name string) *agg {
		if stats[name] == nil {
			stats[name] = &agg{}
		}
		return stats[name]
	}
	for _, w := range s.workers {
		if !w.activeLocked(s.now) {
			continue
		}
		for _, m := range w.Models {
			a := get(m)
			a.count += w.Threads
			a.speed += w.TokensPerSecond
			a.workers++
		}
	}
	for _, r := range s.order {
		n := r.waiting + r.count(jobProcessing)
		if r.faulted || n <= 0 {
			continue
		}
		for _, m := range r.models {
			a := get(m)
			a.jobs += float64(n)
			a.queued += float64(n * r.maxLength)
		}
	}
	out := make([]modelBody, 0, len(stats))
	for name, a := range stats {
		perf := 0.0
		if a.workers > 0 {
			perf = round2(a.speed / float64(a.workers))
		}
		eta := 10000
		if capacity := float64(a.count) * perf; capacity > 0 {
			eta = int(a.queued / capacity)
		}
		out = append(out, modelBody{Name: name, Count: a.count, Performance: perf, Queued: a.queued, Jobs: a.jobs, ETA: eta, Type: "text"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// handleFindUser is GET /v2/find_user, cached 30 s per key.
func (s *Server) handleFindUser(r *http.Request) reply {
	key := r.Header.Get("apikey")
	if key == "" {
		return rcError(http.StatusUnauthorized, "InvalidAPIKey", msgInvalidKey)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	if c, ok := s.userCache[key]; ok && s.now.Before(c.until) {
		return reply{status: http.StatusOK, raw: c.body}
	}
	u := s.users[key]
	if u == nil {
		return rcError(http.StatusNotFound, "UserNotFound", "User with API Key not found.")
	}
	body := encodeJSON(s.userDetailsLocked(u))
	s.userCache[key] = cachedBody{body: body, until: s.now.Add(userCacheTTL)}
	return reply{status: http.StatusOK, raw: body}
}

// handleHeartbeat is GET /v2/status/heartbeat (never rate limited).
func (s *Server) handleHeartbeat() reply {
	return jsonReply(http.StatusOK, heartbeatBody{
		Message: "OK", Version: hordeVersion, Queue: 0, Threads: 8, ActiveCount: 1, DBConnection: true,
	})
}

// handlePerformance is GET /v2/status/performance.
func (s *Server) handlePerformance() reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	jobs, tokens := s.queuedTotalsLocked()
	out := performanceBody{QueuedTextRequests: jobs, QueuedTokens: tokens}
	for _, w := range s.workers {
		if w.activeLocked(s.now) {
			out.TextWorkerCount++
			out.TextThreadCount += w.Threads
		}
	}
	cut := s.now.Add(-time.Minute)
	for _, e := range s.tokenLog {
		if !e.at.Before(cut) {
			out.PastMinuteTokens += float64(e.tokens)
		}
	}
	return jsonReply(http.StatusOK, out)
}

// handleModes is GET /v2/status/modes.
func (s *Server) handleModes() reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return jsonReply(http.StatusOK, modesBody{MaintenanceMode: s.maintenance})
}
