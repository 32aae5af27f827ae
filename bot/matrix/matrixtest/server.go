package matrixtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Defaults of the bot account New makes.
const (
	// ServerName is the fake's homeserver name: ids end in ":hs.test".
	ServerName = "hs.test"
	// DefaultBotID is the bot's user id.
	DefaultBotID = "@hordechat:" + ServerName
	// DefaultToken is the bot's access token.
	DefaultToken = "syt_bot_token"
	// DefaultPassword is the bot's password (m.login.password).
	DefaultPassword = "hunter2-bot"
	// DefaultDeviceID is the bot's device.
	DefaultDeviceID = "BOTDEVICE"
)

// Option changes the server New builds.
type Option func(*Server)

// WithBot sets the bot account: its user id, access token and password.
func WithBot(userID, token, password string) Option {
	return func(s *Server) { s.botID, s.token, s.password = userID, token, password }
}

// Server is a fake homeserver on loopback. All its methods are safe for
// concurrent use.
type Server struct {
	tb  testing.TB
	srv *httptest.Server

	botID    string
	token    string
	password string
	device   string

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	closed   bool
	stream   []entry // what /sync reports, in order
	rooms    map[string]*room
	events   map[string]*Event // by id
	order    []*Event          // every room event, in order
	txns     map[string]string // access token|txn id -> event id
	joins    []string
	logins   int
	typing   int
	uploads  map[string][]byte
	filters  map[string]json.RawMessage // uploaded sync filters by id
	requests []Request
	nextID   int
	keys     *keyState
	faults   faultState
	polls    int // /sync requests waiting in their long poll
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string // unescaped, without the query
	Query  string
	Body   []byte
	Status int // 0 when the connection was reset
}

// New starts a fake homeserver on 127.0.0.1 with a bot account (see the
// Default constants and WithBot); it is closed when the test ends.
func New(tb testing.TB, opts ...Option) *Server {
	s := &Server{tb: tb, botID: DefaultBotID, token: DefaultToken, password: DefaultPassword, device: DefaultDeviceID,
		changed: make(chan struct{}), rooms: map[string]*room{}, events: map[string]*Event{},
		txns: map[string]string{}, uploads: map[string][]byte{}, filters: map[string]json.RawMessage{}}
	for _, o := range opts {
		o(s)
	}
	s.keys = newKeyState(s.token, s.botID, s.device)
	mux := http.NewServeMux()
	s.routes(mux)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rw := &recorder{ResponseWriter: w}
		mux.ServeHTTP(rw, r)
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body, Status: rw.status})
		s.mu.Unlock()
	}))
	tb.Cleanup(s.close)
	return s
}

// recorder remembers the status written; Unwrap lets
// http.ResponseController hijack the connection underneath.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// close ends long polls at once, then the server.
func (s *Server) close() {
	s.mu.Lock()
	s.closed = true
	s.notifyLocked("")
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

func (s *Server) routes(mux *http.ServeMux) {
	const c = "/_matrix/client/v3"
	mux.HandleFunc("GET /_matrix/client/versions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"versions": []string{"v1.11", "v1.12"}})
	})
	mux.HandleFunc("POST "+c+"/login", s.login)
	mux.HandleFunc("GET "+c+"/account/whoami", s.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"user_id": s.botID, "device_id": s.device})
	}))
	mux.HandleFunc("GET "+c+"/sync", s.auth(s.sync))
	mux.HandleFunc("POST "+c+"/user/{user}/filter", s.auth(s.createFilter))
	mux.HandleFunc("PUT "+c+"/rooms/{room}/send/{type}/{txn}", s.auth(s.send))
	mux.HandleFunc("PUT "+c+"/rooms/{room}/redact/{event}/{txn}", s.auth(s.redact))
	mux.HandleFunc("PUT "+c+"/rooms/{room}/typing/{user}", s.auth(s.typingHandler))
	mux.HandleFunc("POST "+c+"/rooms/{room}/join", s.auth(s.join))
	mux.HandleFunc("POST "+c+"/join/{room}", s.auth(s.join))
	mux.HandleFunc("POST "+c+"/rooms/{room}/leave", s.auth(s.leave))
	mux.HandleFunc("GET "+c+"/rooms/{room}/joined_members", s.auth(s.joinedMembers))
	mux.HandleFunc("GET "+c+"/rooms/{room}/state/{type}", s.auth(s.stateEvent))
	mux.HandleFunc("GET "+c+"/rooms/{room}/state/{type}/{key...}", s.auth(s.stateEvent))
	mux.HandleFunc("GET "+c+"/profile/{user}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"displayname": localpart(r.PathValue("user"))})
	})
	mux.HandleFunc("POST /_matrix/media/v3/upload", s.auth(s.upload))
	mux.HandleFunc("POST /_matrix/client/v1/media/upload", s.auth(s.upload))
	s.keyRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.tb.Errorf("matrixtest: unexpected %s %s", r.Method, r.URL.Path)
		writeJSON(w, 404, merr("M_UNRECOGNIZED", "Unrecognized request"))
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// merr is a Matrix error body.
func merr(code, msg string) map[string]any { return map[string]any{"errcode": code, "error": msg} }

func localpart(user string) string { return strings.TrimPrefix(strings.Split(user, ":")[0], "@") }

// auth lets only the bot's access token through, as
// "Authorization: Bearer"; anything else is 401 M_UNKNOWN_TOKEN (or
// M_MISSING_TOKEN), which mautrix turns into mautrix.MUnknownToken.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		if got == "" {
			writeJSON(w, 401, merr("M_MISSING_TOKEN", "Missing access token"))
			return
		}
		if got != "Bearer "+s.token {
			writeJSON(w, 401, merr("M_UNKNOWN_TOKEN", "Unknown access token"))
			return
		}
		h(w, r)
	}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Type       string `json:"type"`
		Identifier struct {
			Type string `json:"type"`
			User string `json:"user"`
		} `json:"identifier"`
		Password string `json:"password"`
		DeviceID string `json:"device_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, merr("M_NOT_JSON", err.Error()))
		return
	}
	user := req.Identifier.User
	if !strings.HasPrefix(user, "@") {
		user = "@" + user + ":" + ServerName
	}
	if req.Type != "m.login.password" || req.Identifier.Type != "m.id.user" || user != s.botID || req.Password != s.password {
		writeJSON(w, 403, merr("M_FORBIDDEN", "Invalid username or password"))
		return
	}
	s.mu.Lock()
	s.logins++
	s.notifyLocked("")
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"user_id": s.botID, "access_token": s.token, "device_id": s.device, "home_server": ServerName})
}

// URL is the client-server API base URL (matrix.homeserver).
func (s *Server) URL() string { return s.srv.URL }

// BotID is the bot's user id (matrix.user_id).
func (s *Server) BotID() string { return s.botID }

// Token is the bot's access token (matrix.access_token).
func (s *Server) Token() string { return s.token }

// Password is the bot's password (matrix.password).
func (s *Server) Password() string { return s.password }

// DeviceID is the bot's device id.
func (s *Server) DeviceID() string { return s.device }

// Logins counts successful password logins.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Typing counts typing notifications.
func (s *Server) Typing() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.typing
}

// Upload returns the bytes uploaded as mxc (an mxc:// URI), or nil.
func (s *Server) Upload(mxc string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploads[mxc]
}

// Requests returns every request so far, in the order they finished.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// CountRequests counts the requests with this method ("" is any) whose
// unescaped path matches pattern (path.Match: "*" is one segment), e.g.
// CountRequests("PUT", "/_matrix/client/v3/rooms/*/send/*/*").
func (s *Server) CountRequests(method, pattern string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if ok, _ := path.Match(pattern, r.Path); ok && (method == "" || method == r.Method) {
			n++
		}
	}
	return n
}

// notifyLocked wakes long polls and waiters: all of them, or those of
// room only when room is set. s.mu is held.
func (s *Server) notifyLocked(room string) {
	close(s.changed)
	s.changed = make(chan struct{})
	if r := s.rooms[room]; r != nil {
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

// Changed returns a channel that is closed at the fake's next change (an
// event, a membership, a redaction, a sync served or failed, keys): wait
// on it, then look again.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Wait blocks until cond holds, checking it now and after each change.
// cond runs without the fake's lock, so it may call any method. The error
// (on ctx's end) names what and holds Dump.
func (s *Server) Wait(ctx context.Context, what string, cond func() bool) error {
	for {
		ch := s.Changed()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s.waitErr(ctx, what)
		}
	}
}

func (s *Server) waitErr(ctx context.Context, what string) error {
	return fmt.Errorf("matrixtest: waiting for %s: %w\n%s", what, context.Cause(ctx), s.Dump())
}

// Dump describes the rooms and their message-like events, for failure
// messages.
func (s *Server) Dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	ids := make([]string, 0, len(s.rooms))
	for id := range s.rooms {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return s.rooms[ids[i]].seq < s.rooms[ids[j]].seq })
	fmt.Fprintf(&b, "fake homeserver: %d rooms, %d events, syncs ok %d failed %d", len(ids), len(s.order), s.faults.ok, s.faults.failed)
	for _, id := range ids {
		r := s.rooms[id]
		fmt.Fprintf(&b, "\n room %s (bot: %s)", id, r.members[s.botID])
		for _, e := range r.events {
			if e.StateKey != nil {
				continue
			}
			raw, _ := json.Marshal(e.Content)
			fmt.Fprintf(&b, "\n  %s %s %s %s", e.ID, e.Sender, e.Type, raw)
			if e.RedactedBy != "" {
				fmt.Fprintf(&b, " [redacted by %s: %q]", e.RedactedBy, e.RedactReason)
			}
		}
	}
	return b.String()
}

func (s *Server) newIDLocked(sigil string) string {
	s.nextID++
	return fmt.Sprintf("%s%d:%s", sigil, s.nextID, ServerName)
}
