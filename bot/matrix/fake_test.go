package matrix_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHS is an in-process Matrix homeserver with the client-server API
// endpoints the adapter uses, speaking the JSON shapes of the spec.
type fakeHS struct {
	t   *testing.T
	srv *httptest.Server

	botID    string
	token    string
	password string

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	stream   []entry       // what /sync reports, in order
	rooms    map[string]map[string]string
	creators map[string]string // room -> its first member
	events   []*fakeEvent
	txns     map[string]*fakeEvent // by access token + txn id
	leaves   map[string]string     // room -> reason the bot gave
	joins    []string
	logins   int
	typing   int
	uploads  map[string][]byte
	bodies   []string // every request body
	nextID   int
	keys     *fakeKeys // end-to-end encryption (fake_keys_test.go)
}

// entry is one item of the sync stream.
type entry struct {
	room   string
	invite bool // an invite for the bot (invite_state)
	evt    *fakeEvent
}

// fakeEvent is a room event as the fake stores it.
type fakeEvent struct {
	Room     string         `json:"-"`
	ID       string         `json:"event_id"`
	Sender   string         `json:"sender"`
	Type     string         `json:"type"`
	StateKey *string        `json:"state_key,omitempty"`
	TS       int64          `json:"origin_server_ts"`
	Content  map[string]any `json:"content"`
	Redacted string         `json:"-"` // reason, once redacted
	Txn      string         `json:"-"`
}

func newFakeHS(t *testing.T) *fakeHS {
	f := &fakeHS{t: t, botID: "@hordechat:hs.test", token: "syt_bot_token", password: "hunter2-bot",
		changed: make(chan struct{}), rooms: map[string]map[string]string{}, creators: map[string]string{}, txns: map[string]*fakeEvent{},
		leaves: map[string]string{}, uploads: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_matrix/client/versions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"versions": []string{"v1.11", "v1.12"}})
	})
	mux.HandleFunc("POST /_matrix/client/v3/login", f.login)
	f.keyRoutes(mux)
	mux.HandleFunc("GET /_matrix/client/v3/account/whoami", f.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"user_id": f.botID, "device_id": "BOTDEVICE"})
	}))
	mux.HandleFunc("GET /_matrix/client/v3/sync", f.auth(f.sync))
	mux.HandleFunc("PUT /_matrix/client/v3/rooms/{room}/send/{type}/{txn}", f.auth(f.send))
	mux.HandleFunc("PUT /_matrix/client/v3/rooms/{room}/redact/{event}/{txn}", f.auth(f.redact))
	mux.HandleFunc("PUT /_matrix/client/v3/rooms/{room}/typing/{user}", f.auth(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.typing++
		f.mu.Unlock()
		writeJSON(w, 200, map[string]any{})
	}))
	mux.HandleFunc("POST /_matrix/client/v3/rooms/{room}/join", f.auth(f.join))
	mux.HandleFunc("POST /_matrix/client/v3/join/{room}", f.auth(f.join))
	mux.HandleFunc("POST /_matrix/client/v3/rooms/{room}/leave", f.auth(f.leave))
	mux.HandleFunc("GET /_matrix/client/v3/rooms/{room}/joined_members", f.auth(f.joinedMembers))
	mux.HandleFunc("GET /_matrix/client/v3/rooms/{room}/state/m.room.power_levels/", f.auth(f.powerLevels))
	mux.HandleFunc("GET /_matrix/client/v3/rooms/{room}/state/m.room.power_levels", f.auth(f.powerLevels))
	mux.HandleFunc("GET /_matrix/client/v3/profile/{user}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"displayname": strings.TrimPrefix(strings.Split(r.PathValue("user"), ":")[0], "@")})
	})
	mux.HandleFunc("POST /_matrix/media/v3/upload", f.auth(f.upload))
	mux.HandleFunc("POST /_matrix/client/v1/media/upload", f.auth(f.upload))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("fake homeserver: unexpected %s %s", r.Method, r.URL.Path)
		writeJSON(w, 404, map[string]any{"errcode": "M_UNRECOGNIZED", "error": "unrecognized request"})
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		f.mu.Lock()
		f.bodies = append(f.bodies, r.URL.Path+" "+string(body))
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeHS) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			writeJSON(w, 401, map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown access token"})
			return
		}
		h(w, r)
	}
}

// notify wakes waiting syncs and test waiters; f.mu is held.
func (f *fakeHS) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeHS) newID(prefix string) string {
	f.nextID++
	return fmt.Sprintf("%s%d_%s", prefix, f.nextID, "hs.test")
}

func (f *fakeHS) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Type       string `json:"type"`
		Identifier struct {
			Type string `json:"type"`
			User string `json:"user"`
		} `json:"identifier"`
		Password string `json:"password"`
		DeviceID string `json:"device_id"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	if req.Type != "m.login.password" || req.Identifier.Type != "m.id.user" || req.Identifier.User != f.botID || req.Password != f.password {
		writeJSON(w, 403, map[string]any{"errcode": "M_FORBIDDEN", "error": "Invalid username or password"})
		return
	}
	f.mu.Lock()
	f.logins++
	f.mu.Unlock()
	writeJSON(w, 200, map[string]any{"user_id": f.botID, "access_token": f.token, "device_id": "BOTDEVICE"})
}

// addEvent appends an event to a room's timeline; f.mu is held.
func (f *fakeHS) addEvent(e *fakeEvent) {
	if e.ID == "" {
		e.ID = f.newID("$ev")
	}
	if e.TS == 0 {
		e.TS = time.Now().UnixMilli()
	}
	f.events = append(f.events, e)
	f.stream = append(f.stream, entry{room: e.Room, evt: e})
	f.notify()
}

func (f *fakeHS) member(room, user, membership string) {
	f.rooms[room][user] = membership
	sk := user
	f.addEvent(&fakeEvent{Room: room, Sender: user, Type: "m.room.member", StateKey: &sk, Content: map[string]any{"membership": membership}})
}

// room makes a room with these members joined (the bot among them when
// botJoined).
func (f *fakeHS) room(botJoined bool, members ...string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	room := f.newID("!room")
	f.rooms[room] = map[string]string{}
	if len(members) > 0 {
		f.creators[room] = members[0]
	}
	for _, m := range members {
		f.member(room, m, "join")
	}
	if botJoined {
		f.member(room, f.botID, "join")
	}
	return room
}

// invite has inviter invite the bot to a new room.
func (f *fakeHS) invite(inviter string) string {
	room := f.room(false, inviter)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rooms[room][f.botID] = "invite"
	sk := f.botID
	f.stream = append(f.stream, entry{room: room, invite: true, evt: &fakeEvent{ID: f.newID("$inv"), Sender: inviter, Type: "m.room.member", StateKey: &sk, TS: time.Now().UnixMilli(), Content: map[string]any{"membership": "invite"}}})
	f.notify()
	return room
}

// message posts a user's m.room.message.
func (f *fakeHS) message(room, sender string, content map[string]any) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := &fakeEvent{Room: room, Sender: sender, Type: "m.room.message", Content: content}
	f.addEvent(e)
	return e.ID
}

func (f *fakeHS) sync(w http.ResponseWriter, r *http.Request) {
	since, _ := strconv.Atoi(r.URL.Query().Get("since"))
	timeout, _ := strconv.Atoi(r.URL.Query().Get("timeout"))
	deadline := time.After(time.Duration(timeout) * time.Millisecond)
	for {
		f.mu.Lock()
		if len(f.stream) > since || timeout == 0 || f.pendingToBot() {
			resp := f.syncResponse(since)
			f.mu.Unlock()
			writeJSON(w, 200, resp)
			return
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			timeout = 0
		case <-r.Context().Done():
			return
		}
	}
}

// syncResponse builds /sync from stream[since:]; f.mu is held.
func (f *fakeHS) syncResponse(since int) map[string]any {
	join := map[string]any{}
	invite := map[string]any{}
	for _, e := range f.stream[since:] {
		if e.invite {
			if f.rooms[e.room][f.botID] == "invite" {
				invite[e.room] = map[string]any{"invite_state": map[string]any{"events": []any{e.evt}}}
			}
			continue
		}
		if f.rooms[e.room][f.botID] != "join" {
			continue
		}
		jr, ok := join[e.room].(map[string]any)
		if !ok {
			jr = map[string]any{"timeline": map[string]any{"events": []any{}, "limited": false}, "state": map[string]any{"events": []any{}}}
			join[e.room] = jr
		}
		tl := jr["timeline"].(map[string]any)
		tl["events"] = append(tl["events"].([]any), e.evt)
	}
	resp := map[string]any{"next_batch": strconv.Itoa(len(f.stream)), "rooms": map[string]any{"join": join, "invite": invite}}
	f.syncKeys(resp)
	return resp
}

func (f *fakeHS) send(w http.ResponseWriter, r *http.Request) {
	room, txn := r.PathValue("room"), r.PathValue("txn")
	var content map[string]any
	if err := json.NewDecoder(r.Body).Decode(&content); err != nil {
		writeJSON(w, 400, map[string]any{"errcode": "M_NOT_JSON", "error": err.Error()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.txns[f.token+"|"+txn]; ok { // idempotent per transaction id
		writeJSON(w, 200, map[string]any{"event_id": e.ID})
		return
	}
	if f.rooms[room][f.botID] != "join" {
		writeJSON(w, 403, map[string]any{"errcode": "M_FORBIDDEN", "error": "not in room"})
		return
	}
	e := &fakeEvent{Room: room, Sender: f.botID, Type: r.PathValue("type"), Content: content, Txn: txn}
	f.addEvent(e)
	f.txns[f.token+"|"+txn] = e
	writeJSON(w, 200, map[string]any{"event_id": e.ID})
}

func (f *fakeHS) redact(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.events {
		if e.ID == r.PathValue("event") && e.Room == r.PathValue("room") {
			e.Redacted = "redacted: " + req.Reason
			e.Content = map[string]any{}
			f.notify()
			writeJSON(w, 200, map[string]any{"event_id": f.newID("$redaction")})
			return
		}
	}
	writeJSON(w, 404, map[string]any{"errcode": "M_NOT_FOUND", "error": "no such event"})
}

func (f *fakeHS) join(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rooms[room][f.botID] != "invite" {
		writeJSON(w, 403, map[string]any{"errcode": "M_FORBIDDEN", "error": "not invited"})
		return
	}
	f.joins = append(f.joins, room)
	f.member(room, f.botID, "join")
	writeJSON(w, 200, map[string]any{"room_id": room})
}

func (f *fakeHS) leave(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	room := r.PathValue("room")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaves[room] = req.Reason
	f.rooms[room][f.botID] = "leave"
	f.notify()
	writeJSON(w, 200, map[string]any{})
}

func (f *fakeHS) joinedMembers(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	joined := map[string]any{}
	for u, m := range f.rooms[r.PathValue("room")] {
		if m == "join" {
			joined[u] = map[string]any{"display_name": strings.TrimPrefix(strings.Split(u, ":")[0], "@")}
		}
	}
	writeJSON(w, 200, map[string]any{"joined": joined})
}

// powerLevels: the first member of a room made it and is its admin (100).
func (f *fakeHS) powerLevels(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	admin, ok := f.creators[r.PathValue("room")]
	if !ok {
		writeJSON(w, 404, map[string]any{"errcode": "M_NOT_FOUND", "error": "no such room"})
		return
	}
	writeJSON(w, 200, map[string]any{"users": map[string]int{admin: 100}, "users_default": 0,
		"events": map[string]int{"m.room.power_levels": 100}, "state_default": 50, "events_default": 0})
}

func (f *fakeHS) upload(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	mxc := "mxc://hs.test/" + f.newID("media")
	f.uploads[mxc] = data
	writeJSON(w, 200, map[string]any{"content_uri": mxc})
}

// botEvents returns a snapshot of the events the bot sent.
func (f *fakeHS) botEvents() []fakeEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeEvent
	for _, e := range f.events {
		if e.Sender == f.botID && e.Type == "m.room.message" {
			out = append(out, *e)
		}
	}
	return out
}

// wait blocks until cond (run under the lock) holds.
func (f *fakeHS) wait(ctx context.Context, what string, cond func() bool) {
	f.t.Helper()
	for {
		f.mu.Lock()
		ok := cond()
		ch := f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			f.t.Fatalf("waiting for %s: %v\nevents:%s", what, ctx.Err(), f.dump())
		}
	}
}

// waitBot waits for a bot message (or edit) in room whose shown text
// contains want, and returns it.
func (f *fakeHS) waitBot(ctx context.Context, room, want string) fakeEvent {
	f.t.Helper()
	var got fakeEvent
	f.wait(ctx, fmt.Sprintf("a bot message with %q", want), func() bool {
		for _, e := range f.events {
			if e.Sender == f.botID && e.Room == room && e.Type == "m.room.message" && strings.Contains(shown(e.Content), want) {
				got = *e
				return true
			}
		}
		return false
	})
	return got
}

// shown is the text a client shows: m.new_content's body for an edit.
func shown(c map[string]any) string {
	if nc, ok := c["m.new_content"].(map[string]any); ok {
		s, _ := nc["body"].(string)
		return s
	}
	s, _ := c["body"].(string)
	return s
}

func (f *fakeHS) dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, e := range f.events {
		if e.Type == "m.room.message" {
			raw, _ := json.Marshal(e.Content)
			fmt.Fprintf(&b, "\n  [%s] %s %s %s%s", e.Room, e.ID, e.Sender, raw, e.Redacted)
		}
	}
	return b.String()
}
