package matrix

import (
	"context"
	"errors"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/hordechat/hordechat/bot"
)

// handleSync queues the work a sync response asks for. On the first sync
// (backlog) only invites are handled: old messages are not answered.
func (a *Adapter) handleSync(ctx context.Context, resp *mautrix.RespSync, first bool) {
	for roomID, inv := range resp.Rooms.Invite {
		for _, evt := range inv.State.Events {
			if evt.Type != event.StateMember || evt.GetStateKey() != a.cfg.UserID {
				continue
			}
			_ = evt.Content.ParseRaw(evt.Type)
			if evt.Content.AsMember().Membership != event.MembershipInvite {
				continue
			}
			inviter := evt.Sender
			room := roomID
			a.enqueue(ctx, func(ctx context.Context) { a.onInvite(ctx, room, inviter) })
		}
	}
	for roomID, room := range resp.Rooms.Join {
		for _, evt := range append(room.State.Events, room.Timeline.Events...) {
			if evt.Type == event.StateMember || evt.Type == event.StatePowerLevels {
				a.forgetMembers(roomID) // reload on next use
			}
		}
		if first {
			continue
		}
		for _, evt := range room.Timeline.Events {
			if evt.Sender.String() == a.cfg.UserID {
				continue
			}
			if evt.Type == event.EventEncrypted && a.e2e == nil {
				a.noticeEncrypted(ctx, roomID, evt)
				continue
			}
			if evt.Type != event.EventMessage && evt.Type != event.EventEncrypted {
				continue
			}
			evt.RoomID = roomID
			a.mu.Lock()
			old := a.seen[evt.ID] || evt.Timestamp < a.startedAt.Add(-oldEventMargin).UnixMilli()
			remember(a.seen, evt.ID)
			a.mu.Unlock()
			if old {
				continue
			}
			e := evt
			if e.Type == event.EventEncrypted {
				a.enqueue(ctx, func(ctx context.Context) { a.onEncrypted(ctx, e) })
				continue
			}
			a.enqueue(ctx, func(ctx context.Context) { a.onMessage(ctx, e) })
		}
	}
	for roomID := range resp.Rooms.Leave {
		a.forgetMembers(roomID)
	}
}

// noticeEncrypted tells a room once per run that the bot cannot read
// encrypted messages (matrix.encryption is off).
func (a *Adapter) noticeEncrypted(ctx context.Context, room id.RoomID, evt *event.Event) {
	a.mu.Lock()
	told := a.toldEncrypted[room] || evt.Timestamp < a.startedAt.Add(-oldEventMargin).UnixMilli()
	a.toldEncrypted[room] = true
	a.mu.Unlock()
	if told {
		return
	}
	t := target{Room: room.String(), Reply: evt.ID.String()}
	a.enqueue(ctx, func(ctx context.Context) {
		msg := "🔒 I cannot read encrypted messages, so I did not see what you wrote. " +
			"Talk to me in a room without end-to-end encryption (create a new room and leave encryption off, " +
			"or invite me to an unencrypted direct chat)."
		if _, err := a.Send(ctx, t.encode(), bot.Outgoing{Text: msg, Notice: true}); err != nil {
			a.log.Warn("send encryption notice", "room", room, "err", err)
		}
	})
}

// onInvite joins when the inviter and their homeserver are allowed, else
// declines with a reason.
func (a *Adapter) onInvite(ctx context.Context, room id.RoomID, inviter id.UserID) {
	if reason := a.inviteRefusal(inviter); reason != "" {
		a.log.Info("declining matrix invite", "room", room, "inviter", inviter)
		if _, err := a.cli.LeaveRoom(ctx, room, &mautrix.ReqLeave{Reason: reason}); err != nil {
			a.log.Warn("decline invite", "room", room, "err", err)
		}
		return
	}
	if _, err := a.cli.JoinRoomByID(ctx, room); err != nil {
		a.log.Warn("join room", "room", room, "err", err)
		return
	}
	a.log.Info("joined matrix room", "room", room, "inviter", inviter)
}

func (a *Adapter) inviteRefusal(inviter id.UserID) string {
	server := inviter.Homeserver()
	servers := a.cfg.InviteServers
	if len(servers) == 0 {
		servers = []string{a.server}
	}
	okServer := false
	for _, s := range servers {
		if s == "*" || strings.EqualFold(s, server) {
			okServer = true
		}
	}
	if !okServer {
		return "This bot only accepts invites from users of " + strings.Join(servers, ", ") + "."
	}
	if len(a.cfg.InviteUsers) == 0 {
		return ""
	}
	for _, u := range a.cfg.InviteUsers {
		if u == inviter.String() {
			return ""
		}
	}
	return "This bot only accepts invites from its allowed users."
}

func (a *Adapter) forgetMembers(room id.RoomID) {
	a.mu.Lock()
	delete(a.members, room)
	delete(a.powers, room)
	a.mu.Unlock()
}

// roomAdmin reports whether user may change the room's power levels: a
// room administrator. Errors count as no.
func (a *Adapter) roomAdmin(ctx context.Context, room id.RoomID, user id.UserID) bool {
	a.mu.Lock()
	pl, ok := a.powers[room]
	a.mu.Unlock()
	if !ok {
		pl = &event.PowerLevelsEventContent{}
		if err := a.cli.StateEvent(ctx, room, event.StatePowerLevels, "", pl); err != nil {
			a.log.Debug("power levels", "room", room, "err", err)
			return false
		}
		a.mu.Lock()
		a.powers[room] = pl
		a.mu.Unlock()
	}
	return pl.GetUserLevel(user) >= pl.GetEventLevel(event.StatePowerLevels)
}

// roomMembers returns the joined members and their display names.
func (a *Adapter) roomMembers(ctx context.Context, room id.RoomID) (map[id.UserID]string, error) {
	a.mu.Lock()
	m, ok := a.members[room]
	a.mu.Unlock()
	if ok {
		return m, nil
	}
	resp, err := a.cli.JoinedMembers(ctx, room)
	if err != nil {
		return nil, err
	}
	m = make(map[id.UserID]string, len(resp.Joined))
	for u, info := range resp.Joined {
		m[u] = info.DisplayName
	}
	a.mu.Lock()
	a.members[room] = m
	a.mu.Unlock()
	return m, nil
}

// onMessage turns a user's message into a chat turn or a command.
func (a *Adapter) onMessage(ctx context.Context, evt *event.Event) {
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return
	}
	msg := evt.Content.AsMessage()
	if msg == nil || (msg.MsgType != event.MsgText && msg.MsgType != event.MsgEmote) {
		return // notices (other bots), media, ...
	}
	rel := msg.RelatesTo
	if rel != nil && rel.Type == event.RelReplace {
		return // edits are not new questions
	}
	members, err := a.roomMembers(ctx, evt.RoomID)
	if err != nil {
		a.log.Warn("room members", "room", evt.RoomID, "err", err)
		return
	}
	dm := len(members) == 2
	if dm {
		a.rememberDM(evt.Sender, evt.RoomID)
	}
	body := msg.Body
	if rel.GetNonFallbackReplyTo() != "" { // a real reply, not a thread's fallback
		body = stripReplyFallback(body)
	}
	text, mentioned := a.stripMention(body, msg, members)
	threadRoot := rel.GetThreadParent()
	repliedToMe := false
	if r := rel.GetNonFallbackReplyTo(); r != "" {
		a.mu.Lock()
		repliedToMe = a.mine[r]
		a.mu.Unlock()
	}
	a.mu.Lock()
	inMyThread := threadRoot != "" && a.threads[evt.RoomID.String()+"|"+threadRoot.String()]
	a.mu.Unlock()
	if threadRoot != "" && !inMyThread && !mentioned && !dm {
		// After a restart the in-memory list is empty: a stored
		// conversation says the bot took part in this thread.
		inMyThread = a.engine.Knows(ctx, "matrix:"+evt.RoomID.String()+":"+threadRoot.String())
	}

	name := members[evt.Sender]
	if name == "" {
		name = evt.Sender.Localpart()
	}
	in := bot.Incoming{
		Platform:  "matrix",
		MessageID: evt.ID.String(),
		Author:    bot.Author{ID: evt.Sender.String(), DisplayName: name, Admin: a.roomAdmin(ctx, evt.RoomID, evt.Sender)},
		Text:      strings.TrimSpace(text),
		Server:    evt.RoomID.String(),
		Channel:   evt.RoomID.String(),
		DM:        dm,
	}
	t := target{Room: evt.RoomID.String()}
	switch {
	case threadRoot != "":
		in.ConversationID = "matrix:" + evt.RoomID.String() + ":" + threadRoot.String()
		t.Thread, t.Reply = threadRoot.String(), evt.ID.String()
	case dm:
		in.ConversationID = "matrix:" + evt.RoomID.String()
	case a.cfg.Threads:
		in.ConversationID = "matrix:" + evt.RoomID.String() + ":" + evt.ID.String()
		t.Thread, t.Reply = evt.ID.String(), evt.ID.String()
	default:
		in.ConversationID = "matrix:" + evt.RoomID.String()
		t.Reply = evt.ID.String()
	}
	in.Target = t.encode()

	prefix := a.cfg.CommandPrefix
	if strings.HasPrefix(strings.TrimSpace(text), prefix) {
		a.runCommand(ctx, in, t, strings.TrimSpace(text))
		return
	}
	if !dm && !mentioned && !repliedToMe && !inMyThread {
		return // group chatter not meant for the bot
	}
	if !dm {
		a.keepThread(t)
	}
	a.engine.HandleMessage(ctx, in)
}

// runCommand parses and runs a !command. A secret command (!link) sent
// outside a DM is refused before the engine sees it, and its message is
// redacted either way.
func (a *Adapter) runCommand(ctx context.Context, in bot.Incoming, t target, line string) {
	prefix := a.cfg.CommandPrefix
	name, rest, _ := strings.Cut(strings.TrimPrefix(line, prefix), " ")
	if _, known := a.engine.Commands().Get(strings.TrimSpace(name)); !known && !in.DM {
		return // another bot's command, in a shared room
	}
	if c, ok := a.engine.Commands().Get(strings.TrimSpace(name)); ok && c.Secret && strings.TrimSpace(rest) != "" {
		if err := a.Redact(ctx, in.Target, in.MessageID, "contained a secret"); err != nil {
			a.log.Warn("redact secret command", "err", err)
		}
		if !in.DM {
			msg := "⚠️ I removed your message: never post a Horde key in a shared room. " +
				"Anyone here may have seen it, so regenerate it at https://aihorde.net/register, " +
				"then send " + prefix + c.Name + " <key> to me in a direct message."
			// In the room itself: a thread or reply would hang on the
			// redacted message.
			if _, err := a.Send(ctx, target{Room: t.Room}.encode(), bot.Outgoing{Text: msg, Notice: true}); err != nil {
				a.log.Warn("send secret warning", "err", err)
			}
			return
		}
	}
	if c, ok := a.engine.Commands().Get(strings.TrimSpace(name)); ok && dmOnly[c.Name] && !in.DM {
		msg := "Send " + prefix + c.Name + " to me in a direct message: its answer is private and Matrix has no private replies in a shared room."
		if _, err := a.Send(ctx, in.Target, bot.Outgoing{Text: msg, Notice: true}); err != nil {
			a.log.Warn("send dm-only notice", "err", err)
		}
		return
	}
	cmd, args, err := a.engine.Commands().ParseText(prefix, line)
	if err != nil {
		var pe *bot.ParseError
		msg := "⚠️ That command did not parse."
		if errors.As(err, &pe) {
			msg = "⚠️ " + pe.Msg
		}
		if _, err := a.Send(ctx, in.Target, bot.Outgoing{Text: msg, Notice: true}); err != nil {
			a.log.Warn("send parse error", "err", err)
		}
		return
	}
	if cmd == nil {
		return
	}
	if privateAnswers[cmd.Name] && !in.DM {
		a.runPrivate(ctx, in, cmd, args)
		return
	}
	if !in.DM {
		a.keepThread(t)
	}
	a.engine.RunCommand(ctx, &bot.Call{
		Command: cmd, In: in, Args: args, Prefix: prefix,
		Respond: func(ctx context.Context, out bot.Outgoing) error {
			out.Notice = true
			_, err := a.Send(ctx, in.Target, out)
			return err
		},
	})
}

// dmOnly are the commands whose answer holds a secret (a new /v1 token):
// in a shared room it would be public, so they run only in a DM.
var dmOnly = map[string]bool{"token": true}

// stripMention reports whether the message is addressed to the bot and
// removes the address ("hordechat: ", the user id) from the text.
func (a *Adapter) stripMention(body string, msg *event.MessageEventContent, members map[id.UserID]string) (string, bool) {
	me := id.UserID(a.cfg.UserID)
	mentioned := msg.Mentions != nil && msg.Mentions.Has(me)
	names := []string{a.cfg.UserID, me.Localpart()}
	if dn := members[me]; dn != "" {
		names = append([]string{dn}, names...)
	}
	trimmed := strings.TrimSpace(body)
	for _, n := range names {
		if len(trimmed) >= len(n) && strings.EqualFold(trimmed[:len(n)], n) {
			rest := trimmed[len(n):]
			if rest == "" || strings.ContainsAny(rest[:1], ":, \n") {
				return strings.TrimLeft(rest, ":, \n"), true
			}
		}
	}
	if strings.Contains(body, a.cfg.UserID) {
		return strings.ReplaceAll(body, a.cfg.UserID, ""), true
	}
	return body, mentioned
}

// stripReplyFallback removes the "> <@user> quoted" lines older clients
// put before a reply.
func stripReplyFallback(body string) string {
	if !strings.HasPrefix(body, "> ") {
		return body
	}
	lines := strings.Split(body, "\n")
	i := 0
	for i < len(lines) && strings.HasPrefix(lines[i], ">") {
		i++
	}
	return strings.TrimLeft(strings.Join(lines[i:], "\n"), "\n")
}

// keepThread remembers a thread the bot answers in, so later messages in
// it need no mention (until a restart; bounded).
func (a *Adapter) keepThread(t target) {
	if t.Thread == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.threads) >= 10000 {
		clear(a.threads)
	}
	a.threads[t.Room+"|"+t.Thread] = true
}
