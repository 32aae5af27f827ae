package discord

import (
	"context"
	"slices"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/hordechat/hordechat/bot"
)

// Conversation ids, made and parsed only here:
//
//	discord:<guild>:<channel or thread>   a guild channel or thread
//	discord:dm:<channel>                  a direct message channel
//
// A mention in a channel (with threads on) opens a thread from the message,
// whose id is the message id, so its conversation id is known before the
// thread exists.
func conversationID(guild, channel string) string {
	if guild == "" {
		return Name + ":dm:" + channel
	}
	return Name + ":" + guild + ":" + channel
}

func (a *Adapter) onMessage(_ *discordgo.Session, m *discordgo.MessageCreate) {
	if m.Author == nil || m.Author.Bot || m.Author.ID == a.bot() || m.WebhookID != "" {
		return // other bots, webhooks and ourselves: never answer
	}
	if m.Type != discordgo.MessageTypeDefault && m.Type != discordgo.MessageTypeReply {
		return // system messages (pins, joins, thread created...)
	}
	a.enqueue("m:"+m.ChannelID, func() { a.handleMessage(m.Message) })
}

// handleMessage decides whether a message is for the bot and hands it to
// the engine:
//   - a DM always is;
//   - in a thread the bot started (its owner is the bot user, so this
//     survives a restart) every message is, mention or not;
//   - a reply to one of the bot's messages continues the channel's
//     conversation;
//   - a mention elsewhere opens a thread from the message (threads on, in
//     text and announcement channels) or is answered in place.
func (a *Adapter) handleMessage(m *discordgo.Message) {
	ctx, cancel := a.opCtx()
	defer cancel()
	me := a.bot()
	text, mentioned := stripMention(m.Content, me, m.Mentions)
	in := bot.Incoming{Platform: Name, MessageID: m.ID, Text: text}
	if m.GuildID == "" {
		in.ConversationID, in.Target, in.Channel, in.DM = conversationID("", m.ChannelID), m.ChannelID, m.ChannelID, true
		in.Author = a.author(ctx, "", m.Author, nil, -1)
		a.engine.HandleMessage(ctx, in)
		return
	}
	ch, err := a.channelInfo(ctx, m.ChannelID)
	if err != nil {
		a.log.Warn("look up channel", "channel", m.ChannelID, "err", err)
		return
	}
	in.Server = m.GuildID
	repliesToBot := m.ReferencedMessage != nil && m.ReferencedMessage.Author != nil && m.ReferencedMessage.Author.ID == me
	switch {
	case ch.thread():
		ours := ch.owner == me
		if !mentioned && (!ours || text == "") {
			// Not for us; or, without the message content intent, unreadable.
			return
		}
		// Permission lists name channels: a thread counts as its parent.
		in.Channel = ch.parent
		in.ConversationID = conversationID(m.GuildID, m.ChannelID)
		in.Target = m.ChannelID
		if !ours {
			in.Target = target{channel: m.ChannelID, kind: kindReply, message: m.ID}.String()
		}
	case repliesToBot:
		if text == "" {
			return
		}
		in.Channel = m.ChannelID
		in.ConversationID = conversationID(m.GuildID, m.ChannelID)
		in.Target = target{channel: m.ChannelID, kind: kindReply, message: m.ID}.String()
	case mentioned:
		in.Channel = m.ChannelID
		if a.cfg.Threads && (ch.typ == discordgo.ChannelTypeGuildText || ch.typ == discordgo.ChannelTypeGuildNews) {
			// The thread is opened when the first answer goes out, so a
			// refusal does not leave an empty thread behind.
			in.ConversationID = conversationID(m.GuildID, m.ID)
			in.Target = target{channel: m.ChannelID, kind: kindThread, message: m.ID}.String()
			a.mu.Lock()
			if len(a.names) > 10000 {
				clear(a.names)
			}
			a.names[m.ID] = threadName(text, m)
			a.mu.Unlock()
		} else {
			in.ConversationID = conversationID(m.GuildID, m.ChannelID)
			in.Target = target{channel: m.ChannelID, kind: kindReply, message: m.ID}.String()
		}
	default:
		return
	}
	in.Author = a.author(ctx, m.GuildID, m.Author, m.Member, -1)
	a.engine.HandleMessage(ctx, in)
}

// stripMention removes the bot's mentions (<@id> and the older <@!id>)
// and reports whether the message mentions the bot at all (a reply that
// pings the bot lists it in mentions without text).
func stripMention(content, botID string, mentions []*discordgo.User) (string, bool) {
	if botID == "" {
		return strings.TrimSpace(content), false
	}
	mentioned := slices.ContainsFunc(mentions, func(u *discordgo.User) bool { return u != nil && u.ID == botID })
	for _, tag := range []string{"<@" + botID + ">", "<@!" + botID + ">"} {
		if strings.Contains(content, tag) {
			mentioned = true
			content = strings.ReplaceAll(content, tag, "")
		}
	}
	// Line breaks stay: people paste code.
	return strings.TrimSpace(content), mentioned
}

// threadName names a new thread after the question.
func threadName(text string, m *discordgo.Message) string {
	name := strings.TrimSpace(text)
	if i := strings.IndexByte(name, '\n'); i >= 0 {
		name = name[:i]
	}
	if name == "" {
		name = "Chat with " + displayName(m.Author, m.Member)
	}
	return truncateRunes(name, 90)
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// chanInfo is what the adapter needs of a channel.
type chanInfo struct {
	guild, parent, owner string
	typ                  discordgo.ChannelType
}

func (c chanInfo) thread() bool {
	return c.typ == discordgo.ChannelTypeGuildPublicThread || c.typ == discordgo.ChannelTypeGuildPrivateThread ||
		c.typ == discordgo.ChannelTypeGuildNewsThread
}

// channelInfo reads a channel from the gateway state (GUILD_CREATE lists
// channels and active threads, THREAD_CREATE adds new ones), or from REST
// when the state lacks it.
func (a *Adapter) channelInfo(ctx context.Context, id string) (chanInfo, error) {
	st := a.s.State
	if c, err := st.Channel(id); err == nil {
		// discordgo updates channels in place under the state lock.
		st.RLock()
		defer st.RUnlock()
		return chanInfo{guild: c.GuildID, parent: c.ParentID, owner: c.OwnerID, typ: c.Type}, nil
	}
	c, err := a.s.Channel(id, discordgo.WithContext(ctx))
	if err != nil {
		return chanInfo{}, scrub(err)
	}
	_ = st.ChannelAdd(c) // best effort: fails when the guild is not in the state
	return chanInfo{guild: c.GuildID, parent: c.ParentID, owner: c.OwnerID, typ: c.Type}, nil
}

func displayName(u *discordgo.User, m *discordgo.Member) string {
	switch {
	case m != nil && m.Nick != "":
		return m.Nick
	case u == nil:
		return ""
	case u.GlobalName != "":
		return u.GlobalName
	}
	return u.Username
}

// author builds the bot.Author. perms are the member's permissions when the
// event carries them (interactions), else -1 and they are computed from the
// guild's roles in the state.
func (a *Adapter) author(ctx context.Context, guild string, u *discordgo.User, m *discordgo.Member, perms int64) bot.Author {
	if u == nil && m != nil {
		u = m.User
	}
	out := bot.Author{DisplayName: displayName(u, m)}
	if u != nil {
		out.ID = u.ID
	}
	if m != nil {
		out.Roles = slices.Clone(m.Roles)
	}
	if guild == "" || out.ID == "" {
		return out
	}
	owner, rolePerms := a.guildPerms(ctx, guild, out.Roles)
	if perms < 0 {
		perms = rolePerms
	}
	out.Admin = owner == out.ID || perms&discordgo.PermissionAdministrator != 0
	return out
}

// guildPerms returns the guild's owner and the permissions of @everyone
// plus the given roles.
func (a *Adapter) guildPerms(ctx context.Context, guild string, roles []string) (string, int64) {
	st := a.s.State
	g, err := st.Guild(guild)
	if err == nil {
		st.RLock()
		defer st.RUnlock()
	} else if g, err = a.s.Guild(guild, discordgo.WithContext(ctx)); err != nil {
		a.log.Warn("look up guild", "guild", guild, "err", scrub(err))
		return "", 0
	}
	var p int64
	for _, r := range g.Roles {
		if r != nil && (r.ID == guild || slices.Contains(roles, r.ID)) {
			p |= r.Permissions
		}
	}
	return g.OwnerID, p
}
