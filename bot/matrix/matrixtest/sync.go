package matrixtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// entry is one item of the sync stream.
type entry struct {
	room   string
	invite bool // the bot's invite: goes to rooms.invite, not the timeline
	evt    *Event
}

// syncFilter is the part of a filter the fake honours.
type syncFilter struct {
	Room struct {
		Timeline struct {
			Limit int `json:"limit"`
		} `json:"timeline"`
	} `json:"room"`
}

// parseSince reads a next_batch token ("s<n>"); "" is an initial sync.
func parseSince(since string) (int, bool) {
	if since == "" {
		return 0, true
	}
	n, err := strconv.Atoi(strings.TrimPrefix(since, "s"))
	return n, err == nil && strings.HasPrefix(since, "s") && n >= 0
}

func (s *Server) sync(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	timeout, err := strconv.Atoi(q.Get("timeout"))
	if q.Get("timeout") == "" {
		timeout, err = 0, nil
	}
	if err != nil || timeout < 0 {
		writeJSON(w, 400, merr("M_INVALID_PARAM", "timeout must be a non-negative integer"))
		return
	}
	var filter syncFilter
	if f := q.Get("filter"); f != "" {
		if strings.HasPrefix(f, "{") {
			err = json.Unmarshal([]byte(f), &filter)
		} else {
			s.mu.Lock()
			raw, ok := s.filters[f]
			s.mu.Unlock()
			if !ok {
				writeJSON(w, 400, merr("M_INVALID_PARAM", "unknown filter id "+f))
				return
			}
			err = json.Unmarshal(raw, &filter)
		}
		if err != nil {
			writeJSON(w, 400, merr("M_INVALID_PARAM", "filter is not valid JSON"))
			return
		}
	}
	deadline := time.NewTimer(time.Duration(timeout) * time.Millisecond)
	defer deadline.Stop()
	s.mu.Lock()
	since, ok := parseSince(q.Get("since"))
	if !ok || since > len(s.stream) {
		s.mu.Unlock()
		writeJSON(w, 400, merr("M_INVALID_PARAM", "unknown since token "+q.Get("since")))
		return
	}
	s.mu.Unlock()
	polling := false // counted in s.polls while waiting
	defer func() {
		if polling {
			s.mu.Lock()
			s.polls--
			s.notifyLocked("")
			s.mu.Unlock()
		}
	}()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			writeJSON(w, 503, merr("M_UNKNOWN", "Server is shutting down"))
			return
		}
		if f, ok := s.nextFaultLocked(); ok {
			s.mu.Unlock()
			s.serveFault(w, f)
			return
		}
		if len(s.stream) > since || timeout == 0 || s.keys.pendingFor(s.botID, s.device) {
			resp := s.syncResponseLocked(since, filter.Room.Timeline.Limit)
			s.faults.ok++
			s.notifyLocked("")
			s.mu.Unlock()
			writeJSON(w, 200, resp)
			return
		}
		if !polling {
			polling = true
			s.polls++
			s.notifyLocked("")
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			timeout = 0
		case <-r.Context().Done():
			return
		}
	}
}

// joinedRoom is a room of rooms.join being built.
type joinedRoom struct {
	timeline []*Event
	joinedAt int // stream position of the bot's join, when in range
}

// syncResponseLocked builds /sync from stream[since:]; limit > 0 keeps
// that many timeline events per room (the rest of the state goes to
// "state", limited is set). s.mu is held.
func (s *Server) syncResponseLocked(since, limit int) map[string]any {
	joined := map[string]*joinedRoom{}
	invite := map[string]any{}
	leave := map[string]any{}
	for _, e := range s.stream[since:] {
		r := s.rooms[e.room]
		membership := r.members[s.botID]
		if e.invite {
			if membership == "invite" {
				invite[e.room] = map[string]any{"invite_state": map[string]any{"events": s.strippedStateLocked(r, e.evt)}}
			}
			continue
		}
		mine := e.evt.Type == "m.room.member" && e.evt.StateKey != nil && *e.evt.StateKey == s.botID
		switch {
		case membership == "join":
			jr := joined[e.room]
			if jr == nil {
				jr = &joinedRoom{}
				joined[e.room] = jr
			}
			jr.timeline = append(jr.timeline, e.evt)
			if mine && e.evt.Content["membership"] == "join" && jr.joinedAt == 0 {
				jr.joinedAt = e.evt.pos
			}
		case mine && (membership == "leave" || membership == "ban"):
			leave[e.room] = map[string]any{"timeline": map[string]any{"events": []any{e.evt.wire(s.botID)}, "limited": false},
				"state": map[string]any{"events": []any{}}}
		}
	}
	join := map[string]any{}
	for id, jr := range joined {
		var state []*Event
		if jr.joinedAt > 0 {
			// Newly joined: the state from before the range comes along.
			for _, e := range s.rooms[id].events {
				if e.pos <= since && e.StateKey != nil && s.rooms[id].state[e.Type+"|"+*e.StateKey] == e {
					state = append(state, e)
				}
			}
		}
		tl, limited := jr.timeline, false
		if limit > 0 && len(tl) > limit {
			for _, e := range tl[:len(tl)-limit] {
				if e.StateKey != nil && s.rooms[id].state[e.Type+"|"+*e.StateKey] == e {
					state = append(state, e)
				}
			}
			tl, limited = tl[len(tl)-limit:], true
		}
		join[id] = map[string]any{
			"timeline":             map[string]any{"events": wireAll(tl, s.botID), "limited": limited, "prev_batch": "s" + itoa(tl[0].pos-1)},
			"state":                map[string]any{"events": wireAll(state, s.botID)},
			"ephemeral":            map[string]any{"events": []any{}},
			"account_data":         map[string]any{"events": []any{}},
			"unread_notifications": map[string]any{"notification_count": 0, "highlight_count": 0},
		}
	}
	resp := map[string]any{
		"next_batch":   "s" + itoa(len(s.stream)),
		"rooms":        map[string]any{"join": join, "invite": invite, "leave": leave},
		"account_data": map[string]any{"events": []any{}},
		"presence":     map[string]any{"events": []any{}},
	}
	s.keys.syncInto(resp, s.botID, s.device)
	return resp
}

func wireAll(evts []*Event, viewer string) []any {
	out := make([]any, 0, len(evts))
	for _, e := range evts {
		out = append(out, e.wire(viewer))
	}
	return out
}

// strippedStateLocked is an invite's invite_state: stripped create, name
// and the invite itself. s.mu is held.
func (s *Server) strippedStateLocked(r *room, inv *Event) []any {
	var out []any
	for _, key := range []string{"m.room.create|", "m.room.name|", "m.room.encryption|"} {
		if e := r.state[key]; e != nil {
			out = append(out, map[string]any{"type": e.Type, "state_key": *e.StateKey, "sender": e.Sender, "content": e.Content})
		}
	}
	return append(out, inv.wire(s.botID))
}

// createFilter serves POST /user/{user}/filter.
func (s *Server) createFilter(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		writeJSON(w, 400, merr("M_NOT_JSON", "Content not JSON"))
		return
	}
	if r.PathValue("user") != s.botID {
		writeJSON(w, 403, merr("M_FORBIDDEN", "Cannot create filters for other users"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := itoa(len(s.filters) + 1)
	s.filters[id] = raw
	writeJSON(w, 200, map[string]any{"filter_id": id})
}
