package discordtest

import (
	"net/http"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// GET /gateway
func (s *Server) handleGateway(c *call) reply {
	return jsonReply(http.StatusOK, map[string]string{"url": s.gatewayURL(c.r.Host)})
}

// GET /gateway/bot
func (s *Server) handleGatewayBot(c *call) reply {
	return jsonReply(http.StatusOK, map[string]any{
		"url":    s.gatewayURL(c.r.Host),
		"shards": 1,
		"session_start_limit": map[string]int{
			"total": 1000, "remaining": 1000 - s.nIdentified, "reset_after": 86400000, "max_concurrency": 1,
		},
	})
}

// GET /users/@me
func (s *Server) handleMe(*call) reply { return jsonReply(http.StatusOK, s.bot) }

// GET /users/{user}
func (s *Server) handleUser(c *call) reply {
	u, ok := s.users[c.p["user"]]
	if !ok {
		return errUnknown(codeUnknownUser, "User")
	}
	return jsonReply(http.StatusOK, u)
}

// GET /oauth2/applications/@me and /applications/@me
func (s *Server) handleApplication(*call) reply {
	return jsonReply(http.StatusOK, map[string]any{
		"id":                     s.opts.ApplicationID,
		"name":                   s.bot.Username,
		"icon":                   nil,
		"description":            "",
		"summary":                "",
		"bot_public":             true,
		"bot_require_code_grant": false,
		"verify_key":             "0000000000000000000000000000000000000000000000000000000000000000",
		"flags":                  s.applicationFlags(),
		"bot":                    s.bot,
		"owner":                  map[string]any{"id": "1", "username": "owner", "discriminator": "0"},
		"team":                   nil,
		"hook":                   true,
		"integration_types_config": map[string]any{
			"0": map[string]any{},
		},
	})
}

// POST /users/@me/channels {"recipient_id": ...}
func (s *Server) handleCreateDM(c *call) reply {
	f, _, err := parseBody(c)
	if err != nil {
		return errInvalidJSON()
	}
	var rid string
	if !f.get("recipient_id", &rid) {
		return formError(requiredError("recipient_id"))
	}
	ch, derr := s.dmChannelLocked(rid)
	if derr != nil {
		return apiError(http.StatusBadRequest, codeInvalidRecipient, "Invalid Recipient(s)")
	}
	return jsonReply(http.StatusOK, ch.c)
}

// GET /channels/{channel}
func (s *Server) handleGetChannel(c *call) reply {
	ch, ok := s.channels[c.p["channel"]]
	if !ok {
		return errUnknown(codeUnknownChannel, "Channel")
	}
	return jsonReply(http.StatusOK, ch.c)
}

// GET /guilds/{guild}: the guild without channels, threads and members.
func (s *Server) handleGetGuild(c *call) reply {
	gl, ok := s.guilds[c.p["guild"]]
	if !ok {
		return errUnknown(codeUnknownGuild, "Guild")
	}
	g := s.guildCreateLocked(gl, false)
	g.Channels, g.Threads, g.Members, g.Presences, g.VoiceStates = nil, nil, nil, nil, nil
	return jsonReply(http.StatusOK, g)
}

// GET /guilds/{guild}/members/{user}
func (s *Server) handleGetMember(c *call) reply {
	gl, ok := s.guilds[c.p["guild"]]
	if !ok {
		return errUnknown(codeUnknownGuild, "Guild")
	}
	m := s.memberCopyLocked(gl, c.p["user"], true)
	if m == nil {
		return errUnknown(codeUnknownMember, "Member")
	}
	return jsonReply(http.StatusOK, m)
}

var validArchive = map[int]bool{0: true, 60: true, 1440: true, 4320: true, 10080: true}

// threadFields validates name and auto_archive_duration.
func threadFields(f *fields) (name string, archive, slowmode int, errs []fieldError) {
	if !f.get("name", &name) || name == "" {
		errs = append(errs, fieldError{"name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."})
	} else if utf8.RuneCountInString(name) > 100 {
		errs = append(errs, fieldError{"name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."})
	}
	f.get("auto_archive_duration", &archive)
	if !validArchive[archive] {
		errs = append(errs, fieldError{"auto_archive_duration", "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}."})
	}
	if archive == 0 {
		archive = 1440
	}
	f.get("rate_limit_per_user", &slowmode)
	return name, archive, slowmode, append(f.errs, errs...)
}

// newThreadLocked creates a thread channel and dispatches THREAD_CREATE.
func (s *Server) newThreadLocked(parent *channel, id, name string, typ discordgo.ChannelType, archive, slowmode int, invitable bool) *channel {
	t := &discordgo.Channel{
		ID: id, GuildID: parent.c.GuildID, ParentID: parent.c.ID, Name: name, Type: typ,
		OwnerID: s.bot.ID, RateLimitPerUser: slowmode, MemberCount: 1,
		ThreadMetadata: &discordgo.ThreadMetadata{
			AutoArchiveDuration: archive, ArchiveTimestamp: s.now(), Invitable: invitable,
		},
		PermissionOverwrites: []*discordgo.PermissionOverwrite{},
		AppliedTags:          []string{},
	}
	ch := &channel{c: t}
	s.channels[id] = ch
	s.channelOrder = append(s.channelOrder, id)
	s.guilds[t.GuildID].threads = append(s.guilds[t.GuildID].threads, id)
	s.threads = append(s.threads, id)
	payload := &discordgo.ThreadCreate{Channel: deepCopy(t), NewlyCreated: true}
	s.dispatchLocked(event{name: "THREAD_CREATE", guildID: t.GuildID, intent: discordgo.IntentGuilds,
		build: func(*session) any { return payload }})
	return ch
}

// POST /channels/{channel}/messages/{message}/threads: the thread's id is
// the message's id.
func (s *Server) handleThreadFromMessage(c *call) reply {
	parent, m, errr := s.channelMessageLocked(c)
	if errr != nil {
		return *errr
	}
	typ := discordgo.ChannelTypeGuildPublicThread
	switch parent.c.Type {
	case discordgo.ChannelTypeGuildText:
	case discordgo.ChannelTypeGuildNews:
		typ = discordgo.ChannelTypeGuildNewsThread
	default:
		return apiError(http.StatusBadRequest, codeWrongChannelType, "Cannot execute action on this channel type")
	}
	if _, exists := s.channels[m.m.ID]; exists || m.m.Thread != nil {
		return apiError(http.StatusBadRequest, codeThreadAlreadyCreated, "A thread has already been created for this message")
	}
	f, _, err := parseBody(c)
	if err != nil {
		return errInvalidJSON()
	}
	name, archive, slowmode, errs := threadFields(f)
	if len(errs) > 0 {
		return formError(errs...)
	}
	th := s.newThreadLocked(parent, m.m.ID, name, typ, archive, slowmode, false)
	m.m.Thread = deepCopy(th.c)
	m.m.Flags |= discordgo.MessageFlagsHasThread
	s.dispatchMessageLocked("MESSAGE_UPDATE", m)
	return jsonReply(http.StatusCreated, th.c)
}

// POST /channels/{channel}/threads: a thread without a starter message. In
// API v9 the type defaults to 12 (private thread); v10 requires it.
func (s *Server) handleThreadWithoutMessage(c *call) reply {
	parent, ok := s.channels[c.p["channel"]]
	if !ok {
		return errUnknown(codeUnknownChannel, "Channel")
	}
	f, _, err := parseBody(c)
	if err != nil {
		return errInvalidJSON()
	}
	name, archive, slowmode, errs := threadFields(f)
	var typ int
	if !f.get("type", &typ) {
		if c.version == "v10" {
			errs = append(errs, requiredError("type"))
		}
		typ = int(discordgo.ChannelTypeGuildPrivateThread)
	}
	var invitable bool
	if !f.get("invitable", &invitable) {
		invitable = true
	}
	if len(errs) > 0 {
		return formError(errs...)
	}
	t := discordgo.ChannelType(typ)
	okType := (parent.c.Type == discordgo.ChannelTypeGuildText && (t == discordgo.ChannelTypeGuildPublicThread || t == discordgo.ChannelTypeGuildPrivateThread)) ||
		(parent.c.Type == discordgo.ChannelTypeGuildNews && t == discordgo.ChannelTypeGuildNewsThread)
	if !okType {
		return apiError(http.StatusBadRequest, codeWrongChannelType, "Cannot execute action on this channel type")
	}
	th := s.newThreadLocked(parent, s.newIDLocked(), name, t, archive, slowmode, invitable && t == discordgo.ChannelTypeGuildPrivateThread)
	return jsonReply(http.StatusCreated, th.c)
}
