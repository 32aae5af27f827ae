package matrixtest

import (
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// room is one room's state and timeline.
type room struct {
	id      string
	seq     int               // creation order, for Dump
	members map[string]string // user -> membership
	state   map[string]*Event // type|state_key -> current state event
	events  []*Event          // timeline, in order
	leaves  map[string]string // user -> reason of their last leave
	changed chan struct{}     // closed and replaced on every change here
}

// addEventLocked appends e to its room's timeline and the sync stream.
// s.mu is held.
func (s *Server) addEventLocked(e *Event) {
	r := s.rooms[e.Room]
	if e.ID == "" {
		e.ID = s.newIDLocked("$")
	}
	if e.TS == 0 {
		e.TS = time.Now().UnixMilli()
	}
	s.events[e.ID] = e
	s.order = append(s.order, e)
	r.events = append(r.events, e)
	if e.StateKey != nil {
		r.state[e.Type+"|"+*e.StateKey] = e
	}
	s.stream = append(s.stream, entry{room: e.Room, evt: e})
	e.pos = len(s.stream)
	s.notifyLocked(e.Room)
}

func (s *Server) stateEventLocked(room, sender, typ, key string, content map[string]any) *Event {
	sk := key
	e := &Event{Room: room, Sender: sender, Type: typ, StateKey: &sk, Content: content}
	s.addEventLocked(e)
	return e
}

// memberLocked sets user's membership in room with an m.room.member
// event. s.mu is held.
func (s *Server) memberLocked(room, sender, user, membership, reason string) *Event {
	r := s.rooms[room]
	r.members[user] = membership
	c := map[string]any{"membership": membership}
	if membership == "join" {
		c["displayname"] = localpart(user)
	}
	if reason != "" {
		c["reason"] = reason
	}
	if membership == "leave" {
		r.leaves[user] = reason
	}
	return s.stateEventLocked(room, sender, "m.room.member", user, c)
}

// newRoomLocked makes a room created by creator, who is its admin
// (power level 100). s.mu is held.
func (s *Server) newRoomLocked(creator string) string {
	id := s.newIDLocked("!")
	s.rooms[id] = &room{id: id, seq: len(s.rooms), members: map[string]string{}, state: map[string]*Event{},
		leaves: map[string]string{}, changed: make(chan struct{})}
	s.stateEventLocked(id, creator, "m.room.create", "", map[string]any{"creator": creator, "room_version": "10"})
	s.memberLocked(id, creator, creator, "join", "")
	s.stateEventLocked(id, creator, "m.room.power_levels", "", map[string]any{
		"users": map[string]any{creator: 100}, "users_default": 0, "events": map[string]any{"m.room.power_levels": 100},
		"state_default": 50, "events_default": 0, "redact": 50, "kick": 50, "ban": 50, "invite": 0})
	return id
}

// NewRoom makes a room where members and the bot are joined; the first
// member created it and is its only admin (power level 100). One member
// makes a direct chat (the adapter treats a two-person room as a DM).
func (s *Server) NewRoom(members ...string) string {
	id := s.NewRoomWithoutBot(members...)
	s.Join(id, s.botID)
	return id
}

// NewDM makes a direct chat between user and the bot.
func (s *Server) NewDM(user string) string { return s.NewRoom(user) }

// NewRoomWithoutBot makes a room where members are joined, not the bot;
// the first member created it. With no members the bot made it and left.
func (s *Server) NewRoomWithoutBot(members ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(members) == 0 {
		id := s.newRoomLocked(s.botID)
		s.memberLocked(id, s.botID, s.botID, "leave", "")
		return id
	}
	id := s.newRoomLocked(members[0])
	for _, m := range members[1:] {
		s.memberLocked(id, m, m, "join", "")
	}
	return id
}

// Invite makes a room of inviter and invites the bot to it: the bot sees
// it under rooms.invite until it joins or declines.
func (s *Server) Invite(inviter string) string {
	id := s.NewRoomWithoutBot(inviter)
	s.InviteTo(id, inviter)
	return id
}

// InviteTo has inviter (a member) invite the bot to room.
func (s *Server) InviteTo(room, inviter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustRoomLocked(room)
	e := s.memberLocked(room, inviter, s.botID, "invite", "")
	s.stream = append(s.stream, entry{room: room, invite: true, evt: e})
	s.notifyLocked(room)
}

// Join makes user a joined member of room (the bot too, without asking
// it).
func (s *Server) Join(room, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustRoomLocked(room)
	s.memberLocked(room, user, user, "join", "")
}

// Leave has user leave room.
func (s *Server) Leave(room, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustRoomLocked(room)
	s.memberLocked(room, user, user, "leave", "")
}

// EncryptRoom turns on encryption (an m.room.encryption state event sent
// by the room's creator).
func (s *Server) EncryptRoom(room string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRoomLocked(room)
	creator, _ := r.state["m.room.create|"].Content["creator"].(string)
	s.stateEventLocked(room, creator, "m.room.encryption", "", map[string]any{"algorithm": "m.megolm.v1.aes-sha2"})
}

func (s *Server) mustRoomLocked(room string) *room {
	r := s.rooms[room]
	if r == nil {
		panic("matrixtest: no room " + room + " (make it with NewRoom, NewDM or Invite)")
	}
	return r
}

// Post adds an event of any type from sender to room and returns its id;
// the sender need not be joined (the fake does not check).
func (s *Server) Post(room, sender, typ string, content map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustRoomLocked(room)
	e := &Event{Room: room, Sender: sender, Type: typ, Content: content}
	s.addEventLocked(e)
	return e.ID
}

// Message posts sender's m.room.message (see Text, Mention, InThread).
func (s *Server) Message(room, sender string, content map[string]any) string {
	return s.Post(room, sender, "m.room.message", content)
}

// Say posts sender's plain m.text body.
func (s *Server) Say(room, sender, body string) string { return s.Message(room, sender, Text(body)) }

// Membership is user's membership of room ("join", "invite", "leave" or
// "").
func (s *Server) Membership(room, user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[room]; r != nil {
		return r.members[user]
	}
	return ""
}

// Joins returns the rooms the bot joined through the API, in order.
func (s *Server) Joins() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.joins...)
}

// LeaveReason returns the reason user gave when last leaving (or
// declining an invite to) room, and whether they left.
func (s *Server) LeaveReason(room, user string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		return "", false
	}
	reason, ok := r.leaves[user]
	return reason, ok
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	var content map[string]any
	if err := json.NewDecoder(r.Body).Decode(&content); err != nil {
		writeJSON(w, 400, merr("M_NOT_JSON", "Content not JSON: "+err.Error()))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.token + "|" + r.URL.Path
	if id, ok := s.txns[txn]; ok { // a repeated transaction: the same event
		writeJSON(w, 200, map[string]any{"event_id": id})
		return
	}
	if rm := s.rooms[room]; rm == nil || rm.members[s.botID] != "join" {
		writeJSON(w, 403, merr("M_FORBIDDEN", "User "+s.botID+" not in room "+room))
		return
	}
	e := &Event{Room: room, Sender: s.botID, Type: r.PathValue("type"), Content: content, TxnID: r.PathValue("txn")}
	s.addEventLocked(e)
	s.txns[txn] = e.ID
	writeJSON(w, 200, map[string]any{"event_id": e.ID})
}

func (s *Server) redact(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	room, target := r.PathValue("room"), r.PathValue("event")
	s.mu.Lock()
	defer s.mu.Unlock()
	txn := s.token + "|" + r.URL.Path
	if id, ok := s.txns[txn]; ok {
		writeJSON(w, 200, map[string]any{"event_id": id})
		return
	}
	if rm := s.rooms[room]; rm == nil || rm.members[s.botID] != "join" {
		writeJSON(w, 403, merr("M_FORBIDDEN", "User "+s.botID+" not in room "+room))
		return
	}
	e := s.events[target]
	if e == nil || e.Room != room {
		writeJSON(w, 404, merr("M_NOT_FOUND", "Event not found"))
		return
	}
	c := map[string]any{"redacts": target}
	if req.Reason != "" {
		c["reason"] = req.Reason
	}
	red := &Event{Room: room, Sender: s.botID, Type: "m.room.redaction", Content: c, Redacts: target, TxnID: r.PathValue("txn")}
	s.addEventLocked(red)
	e.Content = map[string]any{}
	e.RedactedBy, e.RedactReason, e.redactor = red.ID, req.Reason, s.botID
	s.txns[txn] = red.ID
	s.notifyLocked(room)
	writeJSON(w, 200, map[string]any{"event_id": red.ID})
}

func (s *Server) typingHandler(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Typing  *bool `json:"typing"`
		Timeout int   `json:"timeout"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Typing == nil {
		writeJSON(w, 400, merr("M_BAD_JSON", "typing is required"))
		return
	}
	if r.PathValue("user") != s.botID {
		writeJSON(w, 403, merr("M_FORBIDDEN", "Cannot set another user's typing state"))
		return
	}
	s.mu.Lock()
	s.typing++
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{})
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	s.mu.Lock()
	defer s.mu.Unlock()
	rm := s.rooms[room]
	if rm == nil || (rm.members[s.botID] != "invite" && rm.members[s.botID] != "join") {
		writeJSON(w, 403, merr("M_FORBIDDEN", "You are not invited to this room."))
		return
	}
	s.joins = append(s.joins, room)
	if rm.members[s.botID] != "join" {
		s.memberLocked(room, s.botID, s.botID, "join", "")
	}
	writeJSON(w, 200, map[string]any{"room_id": room})
}

func (s *Server) leave(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	room := r.PathValue("room")
	s.mu.Lock()
	defer s.mu.Unlock()
	rm := s.rooms[room]
	if rm == nil || (rm.members[s.botID] != "join" && rm.members[s.botID] != "invite") {
		writeJSON(w, 403, merr("M_FORBIDDEN", "User "+s.botID+" is not in room "+room))
		return
	}
	s.memberLocked(room, s.botID, s.botID, "leave", req.Reason)
	writeJSON(w, 200, map[string]any{})
}

func (s *Server) joinedMembers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rm := s.rooms[r.PathValue("room")]
	if rm == nil || rm.members[s.botID] != "join" {
		writeJSON(w, 403, merr("M_FORBIDDEN", "You aren't a member of the room and weren't previously a member of the room."))
		return
	}
	joined := map[string]any{}
	for u, m := range rm.members {
		if m == "join" {
			joined[u] = map[string]any{"display_name": localpart(u), "avatar_url": nil}
		}
	}
	writeJSON(w, 200, map[string]any{"joined": joined})
}

// stateEvent serves GET .../state/{type}/{key}: the current content.
func (s *Server) stateEvent(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rm := s.rooms[r.PathValue("room")]
	if rm == nil || rm.members[s.botID] != "join" {
		writeJSON(w, 403, merr("M_FORBIDDEN", "You aren't a member of the room and weren't previously a member of the room."))
		return
	}
	e := rm.state[r.PathValue("type")+"|"+r.PathValue("key")]
	if e == nil {
		writeJSON(w, 404, merr("M_NOT_FOUND", "Event not found."))
		return
	}
	writeJSON(w, 200, e.Content)
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	mxc := "mxc://" + ServerName + "/media" + itoa(s.nextID)
	s.uploads[mxc] = data
	writeJSON(w, 200, map[string]any{"content_uri": mxc})
}
