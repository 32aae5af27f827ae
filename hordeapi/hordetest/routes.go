package hordetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

const apiPrefix = "/api/v2/"

// Flask's generic answers.
const (
	msgNotFound  = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
	msgNotAllowd = "The method is not allowed for the requested URL."
	msgInternal  = "Internal Server Error"
)

// identity is who the Horde thinks the client is (§2.3).
type identity struct {
	remote  string // the TCP peer's host
	addr    string // remote, or the honoured Proxied-For value
	proxied bool
}

// resolveIdentity honours Proxied-For only with the exact passkey; a wrong
// passkey is silently ignored like the strict upstream behaviour.
func (s *Server) resolveIdentity(r *http.Request) identity {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	id := identity{remote: host, addr: host}
	if s.opts.Passkey == "" || r.Header.Get("Proxy-Authorization") != s.opts.Passkey {
		return id
	}
	if pf := r.Header.Get("Proxied-For"); pf != "" {
		id.addr, id.proxied = pf, true
	}
	return id
}

// validProxiedFor reports whether an honoured Proxied-For survives the
// Horde's ip_address() parsing and its VARCHAR(39) column.
func validProxiedFor(v string) bool {
	if len(v) > 39 {
		return false
	}
	_, err := netip.ParseAddr(v)
	return err == nil
}

// reply is a response computed under the lock and written after it.
type reply struct {
	status int
	body   any
	raw    []byte // pre-encoded body (status cache)
	header http.Header
}

func jsonReply(status int, body any) reply { return reply{status: status, body: body} }

func rcError(status int, rc, msg string) reply {
	return jsonReply(status, errorBody{Message: msg, RC: rc})
}

func plainError(status int, msg string) reply { return jsonReply(status, errorBody{Message: msg}) }

func validationError(errs map[string]string) reply {
	return jsonReply(http.StatusBadRequest, validationBody{Errors: errs, Message: "Input payload validation failed"})
}

func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return buf.Bytes()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(encodeJSON(v))
}

func (rp reply) write(w http.ResponseWriter) {
	for k, vs := range rp.header {
		w.Header()[k] = vs
	}
	if rp.raw != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rp.status)
		_, _ = w.Write(rp.raw)
		return
	}
	writeJSON(w, rp.status, rp.body)
}

// serveHTTP records the request, applies injected faults, then routes.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	id := s.resolveIdentity(r)
	s.rec.add(RecordedRequest{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(),
		Body: body, RemoteAddr: id.remote, Identity: id.addr, Proxied: id.proxied, Time: s.clock.Now(),
	})
	if h := s.faults.match(r.Method, r.URL.Path); h != nil {
		if s.applyFault(w, r, h) {
			return
		}
	}
	s.route(r, body, id).write(w)
}

// route dispatches to the endpoint handlers. Unknown paths and methods get
// Flask's JSON 404 and 405.
func (s *Server) route(r *http.Request, body []byte, id identity) reply {
	path := r.URL.Path
	if !strings.HasPrefix(path, apiPrefix) {
		return plainError(http.StatusNotFound, msgNotFound)
	}
	rest := strings.TrimPrefix(path, apiPrefix)
	method := func(allowed ...string) (reply, bool) {
		for _, m := range allowed {
			if r.Method == m {
				return reply{}, true
			}
		}
		rp := plainError(http.StatusMethodNotAllowed, msgNotAllowd)
		rp.header = http.Header{"Allow": {strings.Join(allowed, ", ")}}
		return rp, false
	}
	switch {
	case rest == "generate/text/async":
		if rp, ok := method(http.MethodPost); !ok {
			return rp
		}
		return s.handleSubmit(r, body, id)
	case strings.HasPrefix(rest, "generate/text/status/"):
		reqID := strings.TrimPrefix(rest, "generate/text/status/")
		if reqID == "" || strings.Contains(reqID, "/") {
			return plainError(http.StatusNotFound, msgNotFound)
		}
		if rp, ok := method(http.MethodGet, http.MethodDelete); !ok {
			return rp
		}
		return s.handleStatus(r, reqID, id)
	case rest == "workers":
		if rp, ok := method(http.MethodGet); !ok {
			return rp
		}
		return s.limited(r, id, "workers", s.handleWorkers)
	case rest == "status/models":
		if rp, ok := method(http.MethodGet); !ok {
			return rp
		}
		return s.limited(r, id, "models", s.handleModels)
	case strings.HasPrefix(rest, "status/models/"):
		// Flask's default string converter stops at "/", so a model name
		// with a slash never reaches the single-model endpoint.
		name := strings.TrimPrefix(rest, "status/models/")
		if name == "" || strings.Contains(name, "/") {
			return plainError(http.StatusNotFound, msgNotFound)
		}
		if rp, ok := method(http.MethodGet); !ok {
			return rp
		}
		return s.limited(r, id, "model", func(r *http.Request) reply { return s.handleModel(name) })
	case rest == "find_user":
		if rp, ok := method(http.MethodGet); !ok {
			return rp
		}
		return s.limited(r, id, "find_user", s.handleFindUser)
	case rest == "status/heartbeat":
		if rp, ok := method(http.MethodGet); !ok {
			return rp
		}
		return s.handleHeartbeat()
	case rest == "status/performance":
		if rp, ok := method(http.MethodGet); !ok {
			return rp
		}
		return s.limited(r, id, "performance", func(*http.Request) reply { return s.handlePerformance() })
	case rest == "status/modes":
		if rp, ok := method(http.MethodGet); !ok {
			return rp
		}
		return s.limited(r, id, "modes", func(*http.Request) reply { return s.handleModes() })
	}
	return plainError(http.StatusNotFound, msgNotFound)
}

// limited applies the limiter's default of 90/min per real remote address
// and endpoint, then runs the handler.
func (s *Server) limited(r *http.Request, id identity, endpoint string, h func(*http.Request) reply) reply {
	lim, ok := s.checkLimits(func() []limitCheck {
		return []limitCheck{{id.remote + "@" + endpoint, defaultPerMinute}}
	})
	if !ok {
		return lim
	}
	return withHeaders(h(r), lim.header)
}

// checkLimits applies rate limits at the current time. A rejection is a 429
// with only a message, plus Retry-After and X-RateLimit-* headers.
func (s *Server) checkLimits(checks func() []limitCheck) (reply, bool) {
	if s.opts.DisableRateLimits {
		return reply{}, true
	}
	s.mu.Lock()
	s.catchUpLocked(s.clock.Now())
	now := s.now
	res := s.limits.apply(checks(), now)
	s.mu.Unlock()
	h := http.Header{}
	res.headers(h, now)
	if res.ok {
		return reply{header: h}, true
	}
	rp := plainError(http.StatusTooManyRequests, res.limit.String())
	rp.header = h
	return rp, false
}

// withHeaders merges limiter headers into a reply.
func withHeaders(rp reply, h http.Header) reply {
	if rp.header == nil {
		rp.header = http.Header{}
	}
	for k, v := range h {
		if _, ok := rp.header[k]; !ok {
			rp.header[k] = v
		}
	}
	return rp
}
