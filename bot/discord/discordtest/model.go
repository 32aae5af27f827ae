package discordtest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/bwmarrin/discordgo"
)

// allPermissions is every permission bit Discord defines today.
const allPermissions int64 = 1<<51 - 1

// defaultEveryonePermissions is what Discord gives @everyone in a new guild.
const defaultEveryonePermissions int64 = discordgo.PermissionViewChannel | discordgo.PermissionSendMessages |
	discordgo.PermissionReadMessageHistory | discordgo.PermissionAddReactions | discordgo.PermissionEmbedLinks |
	discordgo.PermissionAttachFiles | discordgo.PermissionUseExternalEmojis | discordgo.PermissionCreatePublicThreads |
	discordgo.PermissionSendMessagesInThreads | discordgo.PermissionUseApplicationCommands |
	discordgo.PermissionCreateInstantInvite | discordgo.PermissionChangeNickname |
	discordgo.PermissionVoiceConnect | discordgo.PermissionVoiceSpeak

type guild struct {
	g           *discordgo.Guild // scalar fields only
	roles       []*discordgo.Role
	members     map[string]*discordgo.Member
	memberOrder []string
	channels    []string // non-thread channels, in order
	threads     []string
}

type channel struct {
	c        *discordgo.Channel
	messages []string
}

// deepCopy copies v through JSON: every discordgo type the fake keeps marshals
// to what Discord sends, so the copy is what a client would decode.
func deepCopy[T any](v *T) *T {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	return out
}

// AddUser registers a user (a person, or another bot) and returns a copy.
// An empty ID is generated; Discriminator defaults to "0" (new usernames).
// Users are also registered by AddMember and by SendMessage's Author.
func (s *Server) AddUser(u *discordgo.User) *discordgo.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return deepCopy(s.addUserLocked(u))
}

func (s *Server) addUserLocked(u *discordgo.User) *discordgo.User {
	if u == nil {
		u = &discordgo.User{}
	}
	if u.ID != "" {
		if old, ok := s.users[u.ID]; ok {
			if u.Username != "" {
				old.Username, old.GlobalName = u.Username, u.GlobalName
			}
			return old
		}
	}
	nu := deepCopy(u)
	if nu.ID == "" {
		nu.ID = s.newIDLocked()
	}
	if nu.Username == "" {
		nu.Username = "user" + nu.ID[len(nu.ID)-4:]
	}
	if nu.Discriminator == "" {
		nu.Discriminator = "0"
	}
	s.users[nu.ID] = nu
	s.notifyLocked()
	return nu
}

// AddGuild seeds a guild the bot is in, with its Roles, Channels, Threads
// and Members (each added as by AddRole, AddChannel and AddMember). An empty
// ID is generated. The @everyone role (id = guild id) and the bot's member
// are created when missing. If a client is connected the guild is
// dispatched as GUILD_CREATE (the bot joined it). It returns the guild as
// GUILD_CREATE carries it.
func (s *Server) AddGuild(g *discordgo.Guild) *discordgo.Guild {
	s.mu.Lock()
	gl, err := s.addGuildLocked(g)
	var out *discordgo.Guild
	if err == nil {
		out = s.guildCreateLocked(gl, true)
		s.dispatchLocked(event{name: "GUILD_CREATE", guildID: gl.g.ID, intent: discordgo.IntentGuilds,
			build: func(ss *session) any { return s.guildCreateLocked(gl, ss.intents&discordgo.IntentGuildPresences != 0) }})
	}
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

func (s *Server) addGuildLocked(in *discordgo.Guild) (*guild, error) {
	if in == nil {
		in = &discordgo.Guild{}
	}
	id := in.ID
	if id == "" {
		id = s.newIDLocked()
	}
	if _, ok := s.guilds[id]; ok {
		return nil, fmt.Errorf("guild %s already exists", id)
	}
	g := &discordgo.Guild{
		ID: id, Name: in.Name, Icon: in.Icon, OwnerID: in.OwnerID, Description: in.Description,
		JoinedAt: s.now(), Features: slices.Clone(in.Features), PreferredLocale: in.PreferredLocale,
		VerificationLevel: in.VerificationLevel, SystemChannelID: in.SystemChannelID,
		MaxMembers: 500000, Emojis: []*discordgo.Emoji{}, Stickers: []*discordgo.Sticker{},
		VoiceStates: []*discordgo.VoiceState{}, Presences: []*discordgo.Presence{},
	}
	if g.Name == "" {
		g.Name = "guild " + id
	}
	if g.PreferredLocale == "" {
		g.PreferredLocale = "en-US"
	}
	if g.Features == nil {
		g.Features = []discordgo.GuildFeature{}
	}
	gl := &guild{g: g, members: map[string]*discordgo.Member{}}
	s.guilds[id] = gl
	s.guildOrder = append(s.guildOrder, id)
	hasEveryone := false
	for _, r := range in.Roles {
		if r.ID == id {
			hasEveryone = true
		}
	}
	if !hasEveryone {
		gl.roles = append(gl.roles, &discordgo.Role{ID: id, Name: "@everyone", Permissions: defaultEveryonePermissions})
	}
	for _, r := range in.Roles {
		if _, err := s.addRoleLocked(id, r); err != nil {
			return nil, err
		}
	}
	if _, err := s.addMemberLocked(id, &discordgo.Member{User: s.bot}); err != nil {
		return nil, err
	}
	for _, m := range in.Members {
		if _, err := s.addMemberLocked(id, m); err != nil {
			return nil, err
		}
	}
	for _, c := range in.Channels {
		c = deepCopy(c)
		c.GuildID = id
		if _, err := s.addChannelLocked(c); err != nil {
			return nil, err
		}
	}
	for _, c := range in.Threads {
		c = deepCopy(c)
		c.GuildID = id
		if _, err := s.addChannelLocked(c); err != nil {
			return nil, err
		}
	}
	s.notifyLocked()
	return gl, nil
}

// guildCreateLocked builds the GUILD_CREATE payload. Without the
// GUILD_PRESENCES intent Discord only lists the bot's own member.
func (s *Server) guildCreateLocked(gl *guild, allMembers bool) *discordgo.Guild {
	g := deepCopy(gl.g)
	g.Unavailable = false
	g.Roles = []*discordgo.Role{}
	for _, r := range gl.roles {
		g.Roles = append(g.Roles, deepCopy(r))
	}
	g.Channels = []*discordgo.Channel{}
	for _, id := range gl.channels {
		g.Channels = append(g.Channels, deepCopy(s.channels[id].c))
	}
	g.Threads = []*discordgo.Channel{}
	for _, id := range gl.threads {
		c := s.channels[id].c
		if c.ThreadMetadata == nil || !c.ThreadMetadata.Archived {
			g.Threads = append(g.Threads, deepCopy(c))
		}
	}
	g.Members = []*discordgo.Member{}
	for _, uid := range gl.memberOrder {
		if allMembers || uid == s.bot.ID {
			g.Members = append(g.Members, s.memberCopyLocked(gl, uid, true))
		}
	}
	g.MemberCount = len(gl.memberOrder)
	return g
}

// AddRole adds a role to a guild; an empty ID is generated. A connected
// client gets GUILD_ROLE_CREATE.
func (s *Server) AddRole(guildID string, r *discordgo.Role) *discordgo.Role {
	s.mu.Lock()
	out, err := s.addRoleLocked(guildID, r)
	if err == nil {
		gr := &discordgo.GuildRole{GuildID: guildID, Role: deepCopy(out)}
		s.dispatchLocked(event{name: "GUILD_ROLE_CREATE", guildID: guildID, intent: discordgo.IntentGuilds,
			build: func(*session) any { return gr }})
		out = deepCopy(out)
	}
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

func (s *Server) addRoleLocked(guildID string, r *discordgo.Role) (*discordgo.Role, error) {
	gl, ok := s.guilds[guildID]
	if !ok {
		return nil, fmt.Errorf("unknown guild %q", guildID)
	}
	nr := deepCopy(r)
	if nr == nil {
		nr = &discordgo.Role{}
	}
	if nr.ID == "" {
		nr.ID = s.newIDLocked()
	}
	for i, old := range gl.roles {
		if old.ID == nr.ID {
			gl.roles[i] = nr
			return nr, nil
		}
	}
	if nr.Name == "" {
		nr.Name = "role " + nr.ID
	}
	if nr.Position == 0 {
		nr.Position = len(gl.roles)
	}
	gl.roles = append(gl.roles, nr)
	s.notifyLocked()
	return nr, nil
}

// AddMember adds a member to a guild (registering m.User, which is
// required) and returns it. A connected client with the GUILD_MEMBERS intent
// gets GUILD_MEMBER_ADD.
func (s *Server) AddMember(guildID string, m *discordgo.Member) *discordgo.Member {
	s.mu.Lock()
	out, err := s.addMemberLocked(guildID, m)
	if err == nil {
		gl := s.guilds[guildID]
		uid := out.User.ID
		s.dispatchLocked(event{name: "GUILD_MEMBER_ADD", guildID: guildID, intent: discordgo.IntentGuildMembers,
			build: func(*session) any {
				mm := s.memberCopyLocked(gl, uid, true)
				mm.GuildID = guildID
				return mm
			}})
		out = s.memberCopyLocked(gl, uid, true)
	}
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

func (s *Server) addMemberLocked(guildID string, m *discordgo.Member) (*discordgo.Member, error) {
	gl, ok := s.guilds[guildID]
	if !ok {
		return nil, fmt.Errorf("unknown guild %q", guildID)
	}
	if m == nil || m.User == nil {
		return nil, fmt.Errorf("AddMember: the member needs a User")
	}
	u := s.addUserLocked(m.User)
	nm := deepCopy(m)
	nm.User = nil
	nm.GuildID = ""
	if nm.JoinedAt.IsZero() {
		nm.JoinedAt = s.now()
	}
	if nm.Roles == nil {
		nm.Roles = []string{}
	}
	if _, ok := gl.members[u.ID]; !ok {
		gl.memberOrder = append(gl.memberOrder, u.ID)
	}
	gl.members[u.ID] = nm
	s.notifyLocked()
	nm = deepCopy(nm)
	nm.User = deepCopy(u)
	return nm, nil
}

// ensureMemberLocked makes u a member of the guild if it is not one yet.
func (s *Server) ensureMemberLocked(gl *guild, u *discordgo.User) {
	if _, ok := gl.members[u.ID]; !ok {
		gl.members[u.ID] = &discordgo.Member{JoinedAt: s.now(), Roles: []string{}}
		gl.memberOrder = append(gl.memberOrder, u.ID)
	}
}

// memberCopyLocked is the member as Discord serializes it, with the user
// when withUser, and without guild_id.
func (s *Server) memberCopyLocked(gl *guild, uid string, withUser bool) *discordgo.Member {
	m, ok := gl.members[uid]
	if !ok {
		return nil
	}
	out := deepCopy(m)
	if withUser {
		out.User = deepCopy(s.users[uid])
	}
	return out
}

// permissionsLocked is the member's guild-wide permissions: @everyone plus
// its roles, everything for the owner or an administrator. Channel
// overwrites are not modelled.
func (s *Server) permissionsLocked(gl *guild, uid string) int64 {
	if gl.g.OwnerID == uid {
		return allPermissions
	}
	m := gl.members[uid]
	var p int64
	for _, r := range gl.roles {
		if r.ID == gl.g.ID || (m != nil && slices.Contains(m.Roles, r.ID)) {
			p |= r.Permissions
		}
	}
	if p&discordgo.PermissionAdministrator != 0 {
		return allPermissions
	}
	return p
}

// AddChannel seeds a channel: GuildID is required except for DMs (use
// DMChannel for those); an empty ID is generated; threads (types 10, 11,
// 12) need ParentID and get thread metadata. A connected client gets
// CHANNEL_CREATE or THREAD_CREATE.
func (s *Server) AddChannel(c *discordgo.Channel) *discordgo.Channel {
	s.mu.Lock()
	ch, err := s.addChannelLocked(deepCopy(c))
	var out *discordgo.Channel
	if err == nil {
		out = deepCopy(ch.c)
		name := "CHANNEL_CREATE"
		var payload any = out
		if out.IsThread() {
			name = "THREAD_CREATE"
			payload = &discordgo.ThreadCreate{Channel: out, NewlyCreated: true}
		}
		s.dispatchLocked(event{name: name, guildID: out.GuildID, intent: discordgo.IntentGuilds,
			build: func(*session) any { return payload }})
	}
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

func (s *Server) addChannelLocked(c *discordgo.Channel) (*channel, error) {
	if c == nil {
		c = &discordgo.Channel{}
	}
	if c.ID == "" {
		c.ID = s.newIDLocked()
	}
	if _, ok := s.channels[c.ID]; ok {
		return nil, fmt.Errorf("channel %s already exists", c.ID)
	}
	if c.Type == discordgo.ChannelTypeDM || c.Type == discordgo.ChannelTypeGroupDM {
		return nil, fmt.Errorf("AddChannel: use DMChannel for DMs")
	}
	gl, ok := s.guilds[c.GuildID]
	if !ok {
		return nil, fmt.Errorf("AddChannel %s: unknown guild %q", c.ID, c.GuildID)
	}
	if c.Name == "" {
		c.Name = "channel-" + c.ID
	}
	if c.PermissionOverwrites == nil {
		c.PermissionOverwrites = []*discordgo.PermissionOverwrite{}
	}
	if c.IsThread() {
		parent, ok := s.channels[c.ParentID]
		if !ok || parent.c.GuildID != c.GuildID {
			return nil, fmt.Errorf("AddChannel: thread %s needs the ParentID of a channel in its guild", c.ID)
		}
		if c.ThreadMetadata == nil {
			c.ThreadMetadata = &discordgo.ThreadMetadata{AutoArchiveDuration: 1440}
		}
		if c.ThreadMetadata.ArchiveTimestamp.IsZero() {
			c.ThreadMetadata.ArchiveTimestamp = s.now()
		}
		gl.threads = append(gl.threads, c.ID)
	} else {
		if c.Position == 0 {
			c.Position = len(gl.channels)
		}
		gl.channels = append(gl.channels, c.ID)
	}
	ch := &channel{c: c}
	s.channels[c.ID] = ch
	s.channelOrder = append(s.channelOrder, c.ID)
	s.notifyLocked()
	return ch, nil
}

// DMChannel returns the DM channel between the bot and a user (creating it,
// and registering the user, on first use), as POST /users/@me/channels does.
func (s *Server) DMChannel(userID string) *discordgo.Channel {
	s.mu.Lock()
	ch, err := s.dmChannelLocked(userID)
	var out *discordgo.Channel
	if err == nil {
		out = deepCopy(ch.c)
	}
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

func (s *Server) dmChannelLocked(userID string) (*channel, error) {
	u, ok := s.users[userID]
	if !ok {
		return nil, fmt.Errorf("unknown user %q (AddUser first)", userID)
	}
	if id, ok := s.dms[userID]; ok {
		return s.channels[id], nil
	}
	c := &discordgo.Channel{
		ID: s.newIDLocked(), Type: discordgo.ChannelTypeDM,
		Recipients: []*discordgo.User{deepCopy(u)}, PermissionOverwrites: []*discordgo.PermissionOverwrite{},
	}
	ch := &channel{c: c}
	s.channels[c.ID] = ch
	s.channelOrder = append(s.channelOrder, c.ID)
	s.dms[userID] = c.ID
	s.notifyLocked()
	return ch, nil
}

// Channel returns a copy of a channel (or thread, or DM).
func (s *Server) Channel(id string) (*discordgo.Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.channels[id]
	if !ok {
		return nil, false
	}
	return deepCopy(ch.c), true
}

// Guild returns the guild as GUILD_CREATE with all members would carry it.
func (s *Server) Guild(id string) (*discordgo.Guild, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gl, ok := s.guilds[id]
	if !ok {
		return nil, false
	}
	return s.guildCreateLocked(gl, true), true
}

// Member returns a guild member with its user.
func (s *Server) Member(guildID, userID string) (*discordgo.Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gl, ok := s.guilds[guildID]
	if !ok {
		return nil, false
	}
	m := s.memberCopyLocked(gl, userID, true)
	return m, m != nil
}

// Threads returns the threads the bot created through the REST API, in
// order (seeded threads are not included).
func (s *Server) Threads() []*discordgo.Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*discordgo.Channel, 0, len(s.threads))
	for _, id := range s.threads {
		out = append(out, deepCopy(s.channels[id].c))
	}
	return out
}

// guildShard is the shard a guild's events go to.
func guildShard(guildID string, count int) int {
	if count <= 1 || guildID == "" {
		return 0
	}
	id, err := strconv.ParseUint(guildID, 10, 64)
	if err != nil {
		return 0
	}
	return int((id >> 22) % uint64(count))
}

// timePtr returns a pointer to a copy of t.
func timePtr(t time.Time) *time.Time { return &t }
