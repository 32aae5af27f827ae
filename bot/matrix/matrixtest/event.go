package matrixtest

import "encoding/json"

// Event is a room event as the fake stores it. Snapshots share Content
// with the fake: read it, do not modify it.
type Event struct {
	Room     string
	ID       string
	Sender   string
	Type     string
	StateKey *string // nil for a message-like event
	TS       int64   // origin_server_ts, ms
	Content  map[string]any
	// Redacts is, for an m.room.redaction, the event it removed.
	Redacts string
	// RedactedBy is the redaction event that removed this one (its
	// content is then empty), RedactReason the reason it gave.
	RedactedBy   string
	RedactReason string
	// TxnID is the transaction id the bot sent it with.
	TxnID string

	redactor string // sender of the redaction
	pos      int    // position in the sync stream, from 1
}

// Redacted reports whether the event was redacted.
func (e Event) Redacted() bool { return e.RedactedBy != "" }

// Body is content.body.
func (e Event) Body() string { s, _ := e.Content["body"].(string); return s }

// MsgType is content.msgtype (m.text, m.notice, m.file, ...).
func (e Event) MsgType() string { s, _ := e.Content["msgtype"].(string); return s }

// Shown is the text a client shows for the event: m.new_content's body
// for an edit (m.replace), else body.
func (e Event) Shown() string { return Shown(e.Content) }

// Shown is the text a client shows for an event's content: m.new_content's
// body for an edit, else body.
func Shown(content map[string]any) string {
	if nc, ok := content["m.new_content"].(map[string]any); ok {
		s, _ := nc["body"].(string)
		return s
	}
	s, _ := content["body"].(string)
	return s
}

// relates is content["m.relates_to"].
func (e Event) relates() map[string]any { m, _ := e.Content["m.relates_to"].(map[string]any); return m }

// RelType is m.relates_to.rel_type: "m.replace", "m.thread" or "".
func (e Event) RelType() string { s, _ := e.relates()["rel_type"].(string); return s }

// Replaces is the event an edit (m.replace) replaces, or "".
func (e Event) Replaces() string {
	if e.RelType() != "m.replace" {
		return ""
	}
	s, _ := e.relates()["event_id"].(string)
	return s
}

// ThreadRoot is the root of the thread the event is in, or "".
func (e Event) ThreadRoot() string {
	if e.RelType() != "m.thread" {
		return ""
	}
	s, _ := e.relates()["event_id"].(string)
	return s
}

// ReplyTo is m.relates_to.m.in_reply_to.event_id (in a thread, the
// fallback reply too), or "".
func (e Event) ReplyTo() string {
	irt, _ := e.relates()["m.in_reply_to"].(map[string]any)
	s, _ := irt["event_id"].(string)
	return s
}

// Mentions is content["m.mentions"] (nil when absent).
func (e Event) Mentions() map[string]any { m, _ := e.Content["m.mentions"].(map[string]any); return m }

// wire is the event as /sync serves it (ClientEventWithoutRoomID).
func (e *Event) wire(viewer string) map[string]any {
	m := map[string]any{"event_id": e.ID, "sender": e.Sender, "type": e.Type, "origin_server_ts": e.TS, "content": e.Content}
	if e.StateKey != nil {
		m["state_key"] = *e.StateKey
	}
	unsigned := map[string]any{}
	if e.Redacts != "" {
		m["redacts"] = e.Redacts // before room v11; from v11 it is in content too
	}
	if e.RedactedBy != "" {
		unsigned["redacted_because"] = map[string]any{"event_id": e.RedactedBy, "type": "m.room.redaction", "sender": e.redactor,
			"content": map[string]any{"redacts": e.ID, "reason": e.RedactReason}}
	}
	if e.TxnID != "" && e.Sender == viewer {
		unsigned["transaction_id"] = e.TxnID
	}
	if len(unsigned) > 0 {
		m["unsigned"] = unsigned
	}
	return m
}

// Text is an m.text content.
func Text(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

// Mention is an m.text content addressed to user the way Element writes
// it: "name: body" with m.mentions.
func Mention(user, body string) map[string]any {
	c := Text(localpart(user) + ": " + body)
	c["m.mentions"] = map[string]any{"user_ids": []string{user}}
	return c
}

// InThread puts content in the thread rooted at root, with the reply
// fallback clients add.
func InThread(content map[string]any, root string) map[string]any {
	c := clone(content)
	c["m.relates_to"] = map[string]any{"rel_type": "m.thread", "event_id": root, "is_falling_back": true,
		"m.in_reply_to": map[string]any{"event_id": root}}
	return c
}

// ReplyTo makes content a reply to the event id.
func ReplyTo(content map[string]any, id string) map[string]any {
	c := clone(content)
	c["m.relates_to"] = map[string]any{"m.in_reply_to": map[string]any{"event_id": id}}
	return c
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ContentOf turns a typed content (such as a mautrix event content) into
// the map the fake stores.
func ContentOf(v any) map[string]any {
	raw, err := json.Marshal(v)
	if err != nil {
		panic("matrixtest: content does not marshal: " + err.Error())
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		panic("matrixtest: content is not a JSON object: " + err.Error())
	}
	return m
}
