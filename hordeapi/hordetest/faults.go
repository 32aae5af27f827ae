package hordetest

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// FaultKind selects what an injected Fault does to a matching HTTP request.
type FaultKind int

const (
	// FaultStatus answers with Status (default 500) and Body (default the
	// Horde's {"message": "Internal Server Error"}) as JSON.
	FaultStatus FaultKind = iota
	// FaultRateLimit answers like the limiter: 429 {"message": "2 per 1
	// second"} (or Body) without rc, with Retry-After (RetryAfter rounded
	// up, default 1 s) and X-RateLimit-* headers.
	FaultRateLimit
	// FaultReset drops the connection without an answer (a TCP reset where
	// the connection can be hijacked, else an aborted handler).
	FaultReset
	// FaultDelay holds the request for Delay of real time (or until the
	// client gives up), then serves it normally.
	FaultDelay
	// FaultHang holds the request until the client's context ends or the
	// fault's Release (or Clear) is called; a released request is then
	// served normally. Use FaultHandle.WaitHits to know a request is held.
	FaultHang
)

// Fault describes an injected failure.
type Fault struct {
	Kind   FaultKind
	Method string // "" matches every method
	// Path is a path prefix. "/v2/..." is taken relative to the /api base;
	// "" matches every path.
	Path       string
	Count      int // how many requests it hits; 0 means until cleared
	Status     int
	Body       string
	RetryAfter time.Duration
	Delay      time.Duration
}

// FaultHandle controls one injected fault.
type FaultHandle struct {
	f   Fault
	set *faultSet

	mu       sync.Mutex
	hits     int
	left     int // remaining hits when Count > 0
	cleared  bool
	released chan struct{}
	notify   chan struct{} // closed and replaced at every hit
}

// Hits is how many requests the fault has hit so far.
func (h *FaultHandle) Hits() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits
}

// WaitHits blocks until the fault has hit at least n requests or ctx ends.
func (h *FaultHandle) WaitHits(ctx context.Context, n int) error {
	for {
		h.mu.Lock()
		if h.hits >= n {
			h.mu.Unlock()
			return nil
		}
		ch := h.notify
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Clear removes the fault and releases the requests it holds.
func (h *FaultHandle) Clear() {
	h.set.remove(h)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.cleared {
		h.cleared = true
		close(h.released)
	}
}

// Release lets held requests (FaultHang, FaultDelay) proceed and clears the
// fault.
func (h *FaultHandle) Release() { h.Clear() }

// take reports whether the fault hits one more request, and whether that
// used up its count.
func (h *FaultHandle) take() (hit, exhausted bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cleared {
		return false, false
	}
	if h.f.Count > 0 {
		if h.left == 0 {
			return false, true
		}
		h.left--
	}
	h.hits++
	close(h.notify)
	h.notify = make(chan struct{})
	return true, h.f.Count > 0 && h.left == 0
}

type faultSet struct {
	mu      sync.Mutex
	faults  []*FaultHandle // active, in injection order
	created []*FaultHandle // every handle, so used-up hangs can be released
}

func (fs *faultSet) add(h *FaultHandle) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.faults = append(fs.faults, h)
	fs.created = append(fs.created, h)
}

// releaseAll clears every fault ever injected, releasing held requests.
func (fs *faultSet) releaseAll() {
	fs.mu.Lock()
	all := fs.created
	fs.created = nil
	fs.mu.Unlock()
	for _, h := range all {
		h.Clear()
	}
}

func (fs *faultSet) remove(h *FaultHandle) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, x := range fs.faults {
		if x == h {
			fs.faults = append(fs.faults[:i], fs.faults[i+1:]...)
			return
		}
	}
}

func (fs *faultSet) all() []*FaultHandle {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]*FaultHandle(nil), fs.faults...)
}

// match returns the first fault, in injection order, that hits this request.
func (fs *faultSet) match(method, path string) *FaultHandle {
	for _, h := range fs.all() {
		if h.f.Method != "" && !strings.EqualFold(h.f.Method, method) {
			continue
		}
		if !strings.HasPrefix(path, h.f.Path) {
			continue
		}
		hit, exhausted := h.take()
		if exhausted {
			fs.remove(h)
		}
		if hit {
			return h
		}
	}
	return nil
}

// Inject adds a fault. Faults are tried in the order they were injected;
// the first one that matches a request hits it.
func (s *Server) Inject(f Fault) *FaultHandle {
	if strings.HasPrefix(f.Path, "/v2/") || f.Path == "/v2" {
		f.Path = "/api" + f.Path
	}
	h := &FaultHandle{f: f, set: &s.faults, left: f.Count, released: make(chan struct{}), notify: make(chan struct{})}
	s.faults.add(h)
	return h
}

// ClearFaults removes every injected HTTP fault and releases held requests.
func (s *Server) ClearFaults() { s.faults.releaseAll() }

// FaultJobs makes the next n jobs picked up by workers report a fault when
// they would have finished; n < 0 faults every job until FaultJobs(0).
// A faulted job counts as restarted and is re-queued; the third one faults
// the whole request.
func (s *Server) FaultJobs(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	s.jobFaults = n
}

// applyFault carries out a fault. It reports whether the request was
// answered (or dropped) and must not be served normally.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, h *FaultHandle) bool {
	switch h.f.Kind {
	case FaultStatus:
		status, body := h.f.Status, h.f.Body
		if status == 0 {
			status = http.StatusInternalServerError
		}
		if body == "" {
			body = `{"message": "Internal Server Error"}`
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body + "\n"))
		return true
	case FaultRateLimit:
		ra := h.f.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		now := s.clock.Now()
		res := limitResult{limit: perIPSecond, reset: now.Add(ra)}
		res.headers(w.Header(), now)
		if h.f.Body != "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(h.f.Body + "\n"))
			return true
		}
		writeJSON(w, http.StatusTooManyRequests, errorBody{Message: perIPSecond.String()})
		return true
	case FaultReset:
		resetConn(w)
		return true
	case FaultDelay:
		t := time.NewTimer(h.f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-h.released:
		case <-r.Context().Done():
			return true
		}
		return false
	case FaultHang:
		select {
		case <-h.released:
			return false
		case <-r.Context().Done():
			return true
		}
	}
	return false
}

// resetConn drops the client's connection without an HTTP answer.
func resetConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST instead of FIN
			}
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// Vanish deletes a request as if the Horde had lost it: status and DELETE
// answer 404 RequestNotFound from now on. It reports whether it existed.
func (s *Server) Vanish(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	r, ok := s.requests[id]
	if ok {
		s.deleteRequestLocked(r)
	}
	return ok
}

// SetMaintenance switches maintenance mode: submits get 400 MaintenanceMode
// and /status/modes reports it.
func (s *Server) SetMaintenance(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	s.maintenance = on
}

// TimeoutIP puts an identity (an address, or a CIDR block) into timeout for
// d: its submits get 403 TimeoutIP "…timeout for N more seconds". d <= 0
// lifts the timeout.
func (s *Server) TimeoutIP(identity string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	if d <= 0 {
		delete(s.timeouts, identity)
		return
	}
	s.timeouts[identity] = s.now.Add(d)
}

// timeoutLocked returns the whole seconds of timeout left for an identity
// (0 for none), checking exact entries and then CIDR blocks.
func (s *Server) timeoutLocked(identity string) int {
	best := 0
	for key, until := range s.timeouts {
		if !s.now.Before(until) {
			delete(s.timeouts, key)
			continue
		}
		if key == identity || inCIDR(key, identity) {
			best = max(best, int(until.Sub(s.now)/time.Second))
		}
	}
	return best
}

func inCIDR(cidr, addr string) bool {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(addr)
	return ip != nil && n.Contains(ip)
}
