package matrixtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// SyncFault is how a failed /sync fails.
type SyncFault struct {
	// Status is the HTTP status: 500 answers a Matrix error (M_UNKNOWN),
	// 502, 503 and 504 the HTML page of a reverse proxy whose homeserver
	// is down, 429 M_LIMIT_EXCEEDED; others a Matrix M_UNKNOWN error.
	Status int
	// RetryAfter, with 429, is sent as retry_after_ms and as a
	// Retry-After header (whole seconds, rounded up).
	RetryAfter time.Duration
	// Reset closes the connection without an answer (an RST): the client
	// sees a connection reset or EOF. Status is then ignored.
	Reset bool
}

// ConnReset is the fault of a connection closed without an answer.
var ConnReset = SyncFault{Reset: true}

// RateLimited is a 429 M_LIMIT_EXCEEDED asking to retry after d.
func RateLimited(d time.Duration) SyncFault {
	return SyncFault{Status: http.StatusTooManyRequests, RetryAfter: d}
}

// faultState is the injected sync failures and the sync counters.
type faultState struct {
	queue  []SyncFault
	down   *SyncFault // every sync fails so until SyncUp
	ok     int        // syncs answered 200
	failed int        // syncs failed by a fault
}

// FailSyncs makes the next n /sync requests fail with f, including one
// already waiting in a long poll (it fails at once, as when a proxy drops
// it). Faults queue up in order.
func (s *Server) FailSyncs(n int, f SyncFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults.queue = append(s.faults.queue, f)
	}
	s.notifyLocked("")
}

// SyncDown fails every /sync with f, after any queued FailSyncs, until
// SyncUp: an outage of any length. A long poll in flight fails at once.
func (s *Server) SyncDown(f SyncFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.down = &f
	s.notifyLocked("")
}

// SyncUp ends SyncDown and drops the queued FailSyncs faults not served
// yet: the next /sync succeeds.
func (s *Server) SyncUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.down = nil
	s.faults.queue = nil
	s.notifyLocked("")
}

// nextFaultLocked takes the fault the next sync answers with, if any.
// s.mu is held.
func (s *Server) nextFaultLocked() (SyncFault, bool) {
	if len(s.faults.queue) > 0 {
		f := s.faults.queue[0]
		s.faults.queue = s.faults.queue[1:]
		return f, true
	}
	if s.faults.down != nil {
		return *s.faults.down, true
	}
	return SyncFault{}, false
}

// serveFault answers (or drops) a sync with f, then counts it.
func (s *Server) serveFault(w http.ResponseWriter, f SyncFault) {
	defer func() {
		s.mu.Lock()
		s.faults.failed++
		s.notifyLocked("")
		s.mu.Unlock()
	}()
	if f.Reset {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic("matrixtest: cannot hijack the connection: " + err.Error())
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with an RST, not a FIN
		}
		_ = conn.Close()
		return
	}
	switch f.Status {
	case http.StatusTooManyRequests:
		ms := f.RetryAfter.Milliseconds()
		w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
		writeJSON(w, f.Status, map[string]any{"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": ms})
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.Status)
		_, _ = fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><center><h1>%d %s</h1></center><hr><center>nginx</center></body></html>\n",
			f.Status, http.StatusText(f.Status), f.Status, http.StatusText(f.Status))
	default:
		writeJSON(w, f.Status, merr("M_UNKNOWN", "Internal server error"))
	}
}

// SyncCounts returns how many /sync requests were answered 200 and how
// many failed by an injected fault.
func (s *Server) SyncCounts() (ok, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.ok, s.faults.failed
}

// WaitSyncs waits until at least n syncs were answered 200 in all.
func (s *Server) WaitSyncs(ctx context.Context, n int) error {
	return s.Wait(ctx, fmt.Sprintf("%d successful syncs", n), func() bool { ok, _ := s.SyncCounts(); return ok >= n })
}

// WaitFailedSyncs waits until at least n syncs failed by a fault in all
// (each counted once its failure was sent).
func (s *Server) WaitFailedSyncs(ctx context.Context, n int) error {
	return s.Wait(ctx, fmt.Sprintf("%d failed syncs", n), func() bool { _, failed := s.SyncCounts(); return failed >= n })
}

// LongPolls is how many /sync requests are waiting for something to
// report: 1 when the bot is idle in its long poll.
func (s *Server) LongPolls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polls
}

// WaitLongPoll waits until a /sync is waiting in its long poll (the bot
// has handled everything it was sent so far and asks for more).
func (s *Server) WaitLongPoll(ctx context.Context) error {
	return s.Wait(ctx, "a /sync long poll", func() bool { return s.LongPolls() > 0 })
}
