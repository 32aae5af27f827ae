package matrixtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

func itoa(n int) string { return strconv.Itoa(n) }

// timelineLocked is room's events, or every room's when room is "".
// s.mu is held.
func (s *Server) timelineLocked(room string) []*Event {
	if room == "" {
		return s.order
	}
	if r := s.rooms[room]; r != nil {
		return r.events
	}
	return nil
}

// Events returns room's events in order (every room's when room is ""),
// state events included.
func (s *Server) Events(room string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.timelineLocked(room) {
		out = append(out, *e)
	}
	return out
}

// Event returns the event with this id.
func (s *Server) Event(id string) (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[id]
	if !ok {
		return Event{}, false
	}
	return *e, true
}

// BotMessages returns the bot's m.room.message events in room (every
// room when ""), edits included, in order. Encrypted ones (type
// m.room.encrypted) are not among them.
func (s *Server) BotMessages(room string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.timelineLocked(room) {
		if e.Sender == s.botID && e.Type == "m.room.message" {
			out = append(out, *e)
		}
	}
	return out
}

// CurrentText is what a client shows for the message id now: the newest
// edit's (m.replace by the same sender) m.new_content body, else its own
// body; "" once redacted or unknown.
func (s *Server) CurrentText(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	orig := s.events[id]
	if orig == nil || orig.Redacted() {
		return ""
	}
	text := orig.Body()
	for _, e := range s.rooms[orig.Room].events {
		if e.Sender == orig.Sender && e.Replaces() == id && !e.Redacted() {
			text = e.Shown()
		}
	}
	return text
}

// WaitEvent waits for the first event in room (any room when "") that
// match accepts, checking again after each change of that room. match
// runs under the fake's lock: it must not call the Server.
func (s *Server) WaitEvent(ctx context.Context, room, what string, match func(Event) bool) (Event, error) {
	for {
		s.mu.Lock()
		ch := s.changed
		if r := s.rooms[room]; r != nil {
			ch = r.changed
		}
		for _, e := range s.timelineLocked(room) {
			if match(*e) {
				got := *e
				s.mu.Unlock()
				return got, nil
			}
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Event{}, s.waitErr(ctx, what+" in "+roomName(room))
		}
	}
}

func roomName(room string) string {
	if room == "" {
		return "any room"
	}
	return room
}

// WaitBotMessage waits for a bot m.room.message (or edit) in room whose
// shown text (Event.Shown) contains want, and returns it.
func (s *Server) WaitBotMessage(ctx context.Context, room, want string) (Event, error) {
	bot := s.botID
	return s.WaitEvent(ctx, room, fmt.Sprintf("a bot message with %q", want), func(e Event) bool {
		return e.Sender == bot && e.Type == "m.room.message" && strings.Contains(e.Shown(), want)
	})
}

// WaitRedacted waits until the event id is redacted and returns it.
func (s *Server) WaitRedacted(ctx context.Context, room, id string) (Event, error) {
	return s.WaitEvent(ctx, room, "the redaction of "+id, func(e Event) bool { return e.ID == id && e.Redacted() })
}
