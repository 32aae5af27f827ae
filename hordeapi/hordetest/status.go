package hordetest

import (
	"fmt"
	"math"
	"net/http"
	"time"
)

// statusCacheTTL is how long a GET status body is served unchanged.
const statusCacheTTL = time.Second

// handleStatus is GET and DELETE /v2/generate/text/status/{id}: 60/min per
// (identity, method and exact path), a 1 s body cache for GET, and a DELETE
// that answers the status as it was before setting the waiting jobs to 0.
func (s *Server) handleStatus(r *http.Request, reqID string, id identity) reply {
	lim, ok := s.checkLimits(func() []limitCheck {
		return []limitCheck{{id.addr + "@" + r.Method + "@" + r.URL.Path, statusPerMinute}}
	})
	if !ok {
		return lim
	}
	return withHeaders(s.status(r.Method, reqID), lim.header)
}

func (s *Server) status(method, reqID string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	if method == http.MethodGet {
		if c, ok := s.statusCache[reqID]; ok && s.now.Before(c.until) {
			return reply{status: http.StatusOK, raw: c.body}
		}
	}
	req, ok := s.requests[reqID]
	if !ok {
		kind := "Status"
		if method == http.MethodDelete {
			kind = "Delete"
		}
		return rcError(http.StatusNotFound, "RequestNotFound",
			fmt.Sprintf("Text Waiting Prompt (%s) with ID '%s' not found.", kind, reqID))
	}
	body := encodeJSON(s.statusLocked(req, false))
	if method == http.MethodDelete {
		req.cancelled = true
		req.waiting = 0
		s.log.Debug("request cancelled", "id", req.id)
		return reply{status: http.StatusOK, raw: body}
	}
	s.statusCache[reqID] = cachedBody{body: body, until: s.now.Add(statusCacheTTL)}
	return reply{status: http.StatusOK, raw: body}
}

// hasValidWorkerLocked reports whether any online worker could serve r.
func (s *Server) hasValidWorkerLocked(r *request) bool {
	for _, w := range s.workers {
		if !w.activeLocked(s.now) {
			continue
		}
		if _, ok := w.fits(r); ok {
			return true
		}
	}
	return false
}

// isPossibleLocked is the status' is_possible: forced true while a job is in
// flight, else a verdict cached for 60 s per request. peek leaves the cache
// untouched, so inspection does not change what clients later see.
func (s *Server) isPossibleLocked(r *request, peek bool) bool {
	if r.count(jobProcessing) > 0 {
		return true
	}
	if r.possibleSet && s.now.Sub(r.possibleAt) < possibleCache {
		return r.possible
	}
	v := s.hasValidWorkerLocked(r)
	if !peek {
		r.possible, r.possibleAt, r.possibleSet = v, s.now, true
	}
	return v
}

// statusLocked builds RequestStatusKobold (§1.2) the way the Horde computes it.
func (s *Server) statusLocked(r *request, peek bool) Status {
	st := Status{
		Finished:    r.count(jobFinished),
		Processing:  r.count(jobProcessing),
		Restarted:   r.count(jobFaulted) + r.count(jobAborted),
		Waiting:     max(r.waiting, 0),
		Done:        r.doneLocked(),
		Faulted:     r.faulted,
		Kudos:       pyRound(r.consumed),
		IsPossible:  s.isPossibleLocked(r, peek),
		Generations: []Generation{},
	}
	for _, j := range r.jobs {
		if j.state == jobFinished {
			st.Generations = append(st.Generations, Generation{
				Text: j.text, WorkerID: j.workerID, WorkerName: j.name, Model: j.model,
				State: "ok", GenMetadata: []any{},
			})
		}
	}
	// Queue position and wait time as WaitingPrompt.get_status computes them:
	// index+1 in the priority queue (0 when nothing is waiting), queued
	// tokens up to and including this request over the average speed times
	// the usable threads, plus the longest remaining time of its jobs.
	pos, things, queuedN := -1, 0.0, 0
	if r.needsGen(s.now) {
		for i, q := range s.queueLocked() {
			things += float64(q.maxLength * q.waiting)
			queuedN += q.waiting
			if q == r {
				pos = i
				break
			}
		}
	}
	if pos < 0 {
		things, queuedN = 0, 0
	}
	st.QueuePosition = pos + 1
	threads, avg := s.activeThreadsLocked()
	threads = min(threads, queuedN)
	perSec := avg * float64(threads)
	if perSec == 0 {
		perSec = 1
	}
	wait := things / perSec
	longest := 0.0
	for _, j := range r.jobs {
		if j.state != jobProcessing {
			continue
		}
		left := float64(r.maxLength)/j.worker.TokensPerSecond - s.now.Sub(j.start).Seconds()
		longest = math.Max(longest, left)
	}
	st.WaitTime = int(pyRound(wait + longest))
	return st
}
