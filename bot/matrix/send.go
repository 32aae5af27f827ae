package matrix

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"regexp"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/hordechat/hordechat/bot"
)

// target is where answers go: a room, optionally a thread in it, and the
// event to reply to. It is serialized into bot.Incoming.Target.
type target struct {
	Room   string `json:"r"`
	Thread string `json:"t,omitempty"`
	Reply  string `json:"i,omitempty"`
}

func (t target) encode() string {
	raw, _ := json.Marshal(t)
	return string(raw)
}

func parseTarget(s string) (target, error) {
	var t target
	if err := json.Unmarshal([]byte(s), &t); err != nil || t.Room == "" {
		return t, fmt.Errorf("bad matrix target %q", s)
	}
	return t, nil
}

// relation is how a message at t relates to the conversation: in the
// thread (with a reply fallback) or as a reply.
func (t target) relation() *event.RelatesTo {
	switch {
	case t.Thread != "":
		reply := t.Reply
		if reply == "" {
			reply = t.Thread
		}
		return &event.RelatesTo{Type: event.RelThread, EventID: id.EventID(t.Thread), IsFallingBack: true,
			InReplyTo: &event.InReplyTo{EventID: id.EventID(reply)}}
	case t.Reply != "":
		return &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: id.EventID(t.Reply)}}
	}
	return nil
}

// content renders out as a notice (or text) with HTML and no mentions.
func content(out bot.Outgoing) *event.MessageEventContent {
	c := &event.MessageEventContent{MsgType: event.MsgNotice, Body: plainText(out.Text), Mentions: &event.Mentions{}}
	if h := renderMarkdown(out.Text); h != html.EscapeString(c.Body) {
		c.Format, c.FormattedBody = event.FormatHTML, h
	}
	return c
}

// fit drops formatted_body when the event would be too large.
func fit(c *event.MessageEventContent) {
	raw, _ := json.Marshal(c)
	if len(raw) <= maxEventBytes {
		return
	}
	c.Format, c.FormattedBody = "", ""
	if c.NewContent != nil {
		c.NewContent.Format, c.NewContent.FormattedBody = "", ""
	}
}

func (a *Adapter) send(ctx context.Context, room string, c *event.MessageEventContent, key string) (string, error) {
	if err := a.waitLogin(ctx); err != nil {
		return "", err
	}
	fit(c)
	typ, payload := event.EventMessage, any(c)
	if a.e2e != nil {
		var err error
		if typ, payload, err = a.e2e.encrypt(ctx, id.RoomID(room), c); err != nil {
			return "", err
		}
	}
	resp, err := a.cli.SendMessageEvent(ctx, id.RoomID(room), typ, payload, mautrix.ReqSendEvent{TransactionID: txnID(key)})
	if err != nil {
		return "", fmt.Errorf("matrix send: %w", err)
	}
	a.mu.Lock()
	remember(a.mine, resp.EventID)
	a.mu.Unlock()
	return resp.EventID.String(), nil
}

// Send posts a notice at target; Out.Key becomes the transaction id, so
// the same key never posts twice. Buttons are not shown (Matrix has none).
func (a *Adapter) Send(ctx context.Context, targetStr string, out bot.Outgoing) (string, error) {
	t, err := parseTarget(targetStr)
	if err != nil {
		return "", err
	}
	c := content(out)
	c.RelatesTo = t.relation()
	return a.send(ctx, t.Room, c, out.Key)
}

// Edit replaces a message of the bot (m.replace). Progress edits (without
// a key) stop after matrix.max_edits per message; the keyed edit that puts
// the answer in place always goes.
func (a *Adapter) Edit(ctx context.Context, targetStr, messageID string, out bot.Outgoing) error {
	t, err := parseTarget(targetStr)
	if err != nil {
		return err
	}
	if out.Key == "" {
		a.mu.Lock()
		n := a.edits[messageID]
		if n < a.cfg.MaxEdits {
			if len(a.edits) > 10000 {
				clear(a.edits)
			}
			a.edits[messageID] = n + 1
		}
		a.mu.Unlock()
		if n >= a.cfg.MaxEdits {
			return fmt.Errorf("matrix edit: message %s was edited %d times already", messageID, n)
		}
	}
	nc := content(out)
	c := &event.MessageEventContent{
		MsgType:    nc.MsgType,
		Body:       "* " + nc.Body,
		Mentions:   &event.Mentions{},
		NewContent: nc,
		RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: id.EventID(messageID)},
	}
	if nc.FormattedBody != "" {
		c.Format, c.FormattedBody = event.FormatHTML, "* "+nc.FormattedBody
	}
	_, err = a.send(ctx, t.Room, c, out.Key)
	return err
}

// Typing shows the bot typing for up to 30 seconds.
func (a *Adapter) Typing(ctx context.Context, targetStr string) error {
	t, err := parseTarget(targetStr)
	if err != nil {
		return err
	}
	if err := a.waitLogin(ctx); err != nil {
		return err
	}
	if _, err := a.cli.UserTyping(ctx, id.RoomID(t.Room), true, 30*time.Second); err != nil {
		return fmt.Errorf("matrix typing: %w", err)
	}
	return nil
}

// Redact removes a message (the user's, when it held a secret).
func (a *Adapter) Redact(ctx context.Context, targetStr, messageID, reason string) error {
	t, err := parseTarget(targetStr)
	if err != nil {
		return err
	}
	if err := a.waitLogin(ctx); err != nil {
		return err
	}
	if _, err := a.cli.RedactEvent(ctx, id.RoomID(t.Room), id.EventID(messageID), mautrix.ReqRedact{Reason: reason, TxnID: txnID("redact:" + messageID)}); err != nil {
		return fmt.Errorf("matrix redact: %w", err)
	}
	return nil
}

// SendFile uploads f to the media repository and posts it as m.file.
func (a *Adapter) SendFile(ctx context.Context, targetStr string, f bot.File, out bot.Outgoing) (string, error) {
	t, err := parseTarget(targetStr)
	if err != nil {
		return "", err
	}
	if err := a.waitLogin(ctx); err != nil {
		return "", err
	}
	up, err := a.cli.UploadBytesWithName(ctx, f.Data, f.ContentType, f.Name)
	if err != nil {
		return "", fmt.Errorf("matrix upload: %w", err)
	}
	c := &event.MessageEventContent{
		MsgType:   event.MsgFile,
		Body:      f.Name,
		FileName:  f.Name,
		URL:       up.ContentURI.CUString(),
		Info:      &event.FileInfo{MimeType: f.ContentType, Size: len(f.Data)},
		Mentions:  &event.Mentions{},
		RelatesTo: t.relation(),
	}
	return a.send(ctx, t.Room, c, out.Key)
}

// plainText is the body: the markdown as typed, minus Discord-only "-# ".
func plainText(md string) string {
	lines := strings.Split(md, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "-# ")
	}
	return strings.Join(lines, "\n")
}

var (
	reBold   = regexp.MustCompile(`\*\*([^*\n]+)\*\*`)
	reItalic = regexp.MustCompile(`(^|[^*\w])\*([^*\s][^*\n]*?)\*([^*\w]|$)`)
	reLink   = regexp.MustCompile(`\[([^\]\n]+)\]\((https?://[^)\s"]+)\)`)
	reHead   = regexp.MustCompile(`^(#{1,6}) (.+)$`)
)

// renderMarkdown renders the small markdown subset answers use (code
// fences, inline code, bold, italics, links, headings, "-# " notes) to
// the HTML Matrix clients show. Everything else is escaped text, so model
// output can never inject markup. (mautrix's format.RenderMarkdown needs
// goldmark, which is not in this module's graph.)
func renderMarkdown(md string) string {
	var b strings.Builder
	lines := strings.Split(md, "\n")
	inFence := false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "```") {
			if !inFence {
				lang := strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))
				if lang != "" && !strings.ContainsAny(lang, `"<> `) {
					b.WriteString(`<pre><code class="language-` + html.EscapeString(lang) + `">`)
				} else {
					b.WriteString("<pre><code>")
				}
				inFence = true
			} else {
				b.WriteString("</code></pre>")
				inFence = false
			}
			continue
		}
		if inFence {
			b.WriteString(html.EscapeString(l) + "\n")
			continue
		}
		switch {
		case strings.HasPrefix(l, "-# "):
			b.WriteString("<sub>" + inline(l[3:]) + "</sub>")
		case reHead.MatchString(l):
			m := reHead.FindStringSubmatch(l)
			n := fmt.Sprint(len(m[1]))
			b.WriteString("<h" + n + ">" + inline(m[2]) + "</h" + n + ">")
			continue
		default:
			b.WriteString(inline(l))
		}
		if i < len(lines)-1 {
			b.WriteString("<br>")
		}
	}
	if inFence {
		b.WriteString("</code></pre>")
	}
	return strings.TrimSuffix(b.String(), "<br>")
}

// inline renders code spans, bold, italics and links of one line.
func inline(s string) string {
	var b strings.Builder
	parts := strings.Split(s, "`")
	if len(parts)%2 == 0 { // an unpaired backtick: plain text
		return emphasis(html.EscapeString(s))
	}
	for i, p := range parts {
		if i%2 == 1 {
			b.WriteString("<code>" + html.EscapeString(p) + "</code>")
			continue
		}
		b.WriteString(emphasis(html.EscapeString(p)))
	}
	return b.String()
}

func emphasis(escaped string) string {
	s := reLink.ReplaceAllString(escaped, `<a href="$2">$1</a>`)
	s = reBold.ReplaceAllString(s, "<strong>$1</strong>")
	return reItalic.ReplaceAllString(s, "$1<em>$2</em>$3")
}
