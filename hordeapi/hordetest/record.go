package hordetest

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// RecordedRequest is one HTTP request the fake received.
type RecordedRequest struct {
	Method     string
	Path       string // full path, including the /api prefix
	RawQuery   string
	Header     http.Header
	Body       []byte
	RemoteAddr string // the peer's host
	Identity   string // the client identity: RemoteAddr, or an honoured Proxied-For
	Proxied    bool   // Identity came from Proxied-For
	Time       time.Time
}

type recorder struct {
	mu   sync.Mutex
	reqs []RecordedRequest
}

func (rc *recorder) add(r RecordedRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.reqs = append(rc.reqs, r)
}

// Requests returns a copy of every request received since the start or the
// last ResetRequests, oldest first.
func (s *Server) Requests() []RecordedRequest {
	return s.RequestsTo("", "")
}

// RequestsTo returns the recorded requests with this method ("" for any)
// whose path starts with prefix. A prefix starting with "/v2" is taken
// relative to the /api base.
func (s *Server) RequestsTo(method, prefix string) []RecordedRequest {
	if strings.HasPrefix(prefix, "/v2") {
		prefix = "/api" + prefix
	}
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	var out []RecordedRequest
	for _, r := range s.rec.reqs {
		if (method == "" || strings.EqualFold(method, r.Method)) && strings.HasPrefix(r.Path, prefix) {
			r.Header = r.Header.Clone()
			r.Body = slices.Clone(r.Body)
			out = append(out, r)
		}
	}
	return out
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	s.rec.reqs = nil
}
