package discordtest

import (
	"context"
	"encoding/json"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// Message is the fake's record of one message: the message as Discord would
// serve it now (after edits), plus what the wire form does not show.
type Message struct {
	*discordgo.Message
	// Nonce is the nonce the bot sent ("" when none).
	Nonce string
	// History holds the earlier contents, oldest first; one entry per edit
	// that changed the content.
	History []string
	// AllowedMentions is what the last create or edit sent (nil when absent).
	AllowedMentions *discordgo.MessageAllowedMentions
	// Files are the attachments with their bytes, in Attachments order.
	Files []Attachment
	// Ephemeral messages are only in the interaction's record, never in the
	// channel nor on the gateway.
	Ephemeral bool
	// InteractionID is set for interaction responses and follow-ups.
	InteractionID string
	// Deleted is true once the message was deleted.
	Deleted bool
}

// Attachment is an uploaded file.
type Attachment struct {
	*discordgo.MessageAttachment
	Data []byte
}

type message struct {
	m             *discordgo.Message // canonical state; Components included
	appID         string
	nonce         json.RawMessage
	history       []string
	allowed       *discordgo.MessageAllowedMentions
	ephemeral     bool
	interactionID string
	refID         string
	deleted       bool
}

type storedFile struct {
	data        []byte
	contentType string
}

type nonceEntry struct {
	msgID string
	at    time.Time
}

// Typing is one POST /channels/{id}/typing.
type Typing struct {
	ChannelID string
	At        time.Time
}

// Reaction is one reaction the bot added or removed.
type Reaction struct {
	ChannelID, MessageID, Emoji string
	Removed                     bool
}

// wireMessage is a message as Discord serializes it; discordgo.Message
// alone would drop components.
type wireMessage struct {
	*discordgo.Message
	Components        []discordgo.MessageComponent `json:"components"`
	Nonce             json.RawMessage              `json:"nonce,omitempty"`
	ApplicationID     string                       `json:"application_id,omitempty"`
	ReferencedMessage json.RawMessage              `json:"referenced_message,omitempty"`
}

// contentVisible reports whether a client with these intents sees the
// message's content: with MESSAGE_CONTENT, in DMs, for the bot's own
// messages and for messages that mention the bot.
func (s *Server) contentVisible(m *message, intents discordgo.Intent) bool {
	if intents&discordgo.IntentMessageContent != 0 || m.m.GuildID == "" {
		return true
	}
	if m.m.Author != nil && m.m.Author.ID == s.bot.ID {
		return true
	}
	for _, u := range m.m.Mentions {
		if u.ID == s.bot.ID {
			return true
		}
	}
	return false
}

// wireLocked serializes a message for a client with the given intents.
func (s *Server) wireLocked(m *message, intents discordgo.Intent, withRef bool) json.RawMessage {
	dm := *m.m
	if !s.contentVisible(m, intents) {
		dm.Content = ""
		dm.Embeds = []*discordgo.MessageEmbed{}
		dm.Attachments = []*discordgo.MessageAttachment{}
		dm.Components = []discordgo.MessageComponent{}
		dm.Poll = nil
	}
	w := wireMessage{Message: &dm, Components: dm.Components, Nonce: m.nonce, ApplicationID: m.appID}
	if w.Components == nil {
		w.Components = []discordgo.MessageComponent{}
	}
	dm.ReferencedMessage = nil
	if withRef && m.refID != "" {
		if ref, ok := s.messages[m.refID]; ok && !ref.deleted {
			w.ReferencedMessage = s.wireLocked(ref, intents, false)
		} else {
			w.ReferencedMessage = json.RawMessage("null")
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		panic(err)
	}
	return b
}

// restIntents is what REST reads see: everything unless the app lacks the
// MESSAGE_CONTENT privileged intent in the portal.
func (s *Server) restIntents() discordgo.Intent {
	if s.opts.DenyPrivilegedIntents&discordgo.IntentMessageContent != 0 {
		return 0
	}
	return discordgo.IntentMessageContent
}

// snapshotLocked is the exported view of a message.
func (s *Server) snapshotLocked(m *message) Message {
	var dm discordgo.Message
	if err := json.Unmarshal(s.wireLocked(m, discordgo.IntentMessageContent, true), &dm); err != nil {
		panic(err)
	}
	out := Message{
		Message: &dm, History: append([]string(nil), m.history...), AllowedMentions: deepCopy(m.allowed),
		Ephemeral: m.ephemeral, InteractionID: m.interactionID, Deleted: m.deleted,
	}
	if len(m.nonce) > 0 {
		var str string
		if json.Unmarshal(m.nonce, &str) == nil {
			out.Nonce = str
		} else {
			out.Nonce = string(m.nonce)
		}
	}
	for _, a := range dm.Attachments {
		f := s.files[a.ID]
		out.Files = append(out.Files, Attachment{MessageAttachment: a, Data: append([]byte(nil), f.data...)})
	}
	return out
}

func messageIntent(guildID string) discordgo.Intent {
	if guildID == "" {
		return discordgo.IntentDirectMessages
	}
	return discordgo.IntentGuildMessages
}

// dispatchMessageLocked sends MESSAGE_CREATE or MESSAGE_UPDATE.
func (s *Server) dispatchMessageLocked(name string, m *message) {
	if m.ephemeral {
		return
	}
	s.dispatchLocked(event{name: name, guildID: m.m.GuildID, intent: messageIntent(m.m.GuildID),
		build: func(ss *session) any { return s.wireLocked(m, ss.intents, true) }})
}

func (s *Server) dispatchMessageDeleteLocked(m *message) {
	if m.ephemeral {
		return
	}
	payload := map[string]string{"id": m.m.ID, "channel_id": m.m.ChannelID}
	if m.m.GuildID != "" {
		payload["guild_id"] = m.m.GuildID
	}
	s.dispatchLocked(event{name: "MESSAGE_DELETE", guildID: m.m.GuildID, intent: messageIntent(m.m.GuildID),
		build: func(*session) any { return payload }})
}

// spec is the message part of a create, edit, interaction response or
// follow-up body.
type spec struct {
	content      *string
	embeds       *[]*discordgo.MessageEmbed
	components   *[]discordgo.MessageComponent
	allowed      *discordgo.MessageAllowedMentions
	flags        *int
	keep         *[]string // attachments listed in "attachments" (ids of existing ones)
	descriptions map[int]string
	filenames    map[int]string
	uploads      []upload
	tts          bool
	nonce        json.RawMessage
	enforceNonce bool
	reference    *discordgo.MessageReference
	stickers     []string
	hasPoll      bool
}

type attachmentRef struct {
	ID          json.RawMessage `json:"id"`
	Filename    string          `json:"filename"`
	Description string          `json:"description"`
}

// parseSpec decodes and validates the message fields of a body.
func parseSpec(f *fields, ups []upload) (*spec, []fieldError) {
	sp := &spec{uploads: ups, descriptions: map[int]string{}, filenames: map[int]string{}}
	var errs []fieldError
	if f.has("content") {
		var c string
		f.get("content", &c)
		sp.content = &c
		if utf8.RuneCountInString(c) > 2000 {
			errs = append(errs, maxLengthError("content", 2000))
		}
	}
	if f.has("embeds") {
		var e []*discordgo.MessageEmbed
		f.get("embeds", &e)
		for _, em := range e {
			if em != nil && em.Type == "" {
				em.Type = discordgo.EmbedTypeRich
			}
		}
		if e == nil {
			e = []*discordgo.MessageEmbed{}
		}
		sp.embeds = &e
		errs = append(errs, checkEmbeds("embeds", e)...)
	}
	if f.has("components") {
		var raws []json.RawMessage
		f.get("components", &raws)
		comps, cerrs := decodeComponents("components", raws)
		sp.components = &comps
		errs = append(errs, cerrs...)
	}
	if f.get("allowed_mentions", &sp.allowed) {
		errs = append(errs, checkAllowedMentions(sp.allowed)...)
	}
	var flags int
	if f.get("flags", &flags) {
		sp.flags = &flags
	}
	if f.has("attachments") {
		var refs []attachmentRef
		f.get("attachments", &refs)
		keep := []string{}
		for _, a := range refs {
			id := strings.Trim(string(a.ID), `"`)
			if n, err := strconv.Atoi(id); err == nil && n < 1000 {
				// a small integer refers to files[n] of this request
				sp.descriptions[n] = a.Description
				if a.Filename != "" {
					sp.filenames[n] = a.Filename
				}
				continue
			}
			keep = append(keep, id)
		}
		sp.keep = &keep
	}
	f.get("tts", &sp.tts)
	if raw, ok := f.m["nonce"]; ok && !f.isNull("nonce") {
		var str string
		var n json.Number
		switch {
		case json.Unmarshal(raw, &str) == nil:
			if utf8.RuneCountInString(str) > 25 {
				errs = append(errs, maxLengthError("nonce", 25))
			}
		case json.Unmarshal(raw, &n) == nil:
			if _, err := n.Int64(); err != nil {
				errs = append(errs, fieldError{"nonce", "NUMBER_TYPE_COERCE", "Value is not int."})
			}
		default:
			errs = append(errs, fieldError{"nonce", "MODEL_TYPE_CONVERT", "Could not interpret the value as string or integer."})
		}
		sp.nonce = append(json.RawMessage(nil), raw...)
	}
	f.get("enforce_nonce", &sp.enforceNonce)
	f.get("message_reference", &sp.reference)
	f.get("sticker_ids", &sp.stickers)
	if len(sp.stickers) > 3 {
		errs = append(errs, maxLengthError("sticker_ids", 3))
	}
	sp.hasPoll = f.has("poll") && !f.isNull("poll")
	return sp, append(f.errs, errs...)
}

// empty reports whether a new message would have nothing to show.
func (sp *spec) empty() bool {
	return (sp.content == nil || strings.TrimSpace(*sp.content) == "") &&
		(sp.embeds == nil || len(*sp.embeds) == 0) && len(sp.uploads) == 0 &&
		(sp.components == nil || len(*sp.components) == 0) && len(sp.stickers) == 0 && !sp.hasPoll
}

func errEmptyMessage() reply {
	return apiError(http.StatusBadRequest, codeEmptyMessage, "Cannot send an empty message")
}

// Flag masks per kind of request.
const (
	createFlags      = discordgo.MessageFlagsSuppressEmbeds | discordgo.MessageFlagsSuppressNotifications | discordgo.MessageFlagsIsVoiceMessage | discordgo.MessageFlagsIsComponentsV2
	interactionFlags = createFlags | discordgo.MessageFlagsEphemeral
	editFlags        = discordgo.MessageFlagsSuppressEmbeds | discordgo.MessageFlagsIsComponentsV2
)

// attachLocked stores uploads as attachments of a message in a channel.
func (s *Server) attachLocked(sp *spec, channelID string, ephemeral bool) []*discordgo.MessageAttachment {
	out := []*discordgo.MessageAttachment{}
	ups := append([]upload(nil), sp.uploads...)
	sort.SliceStable(ups, func(i, j int) bool { return ups[i].index < ups[j].index })
	dir := "attachments"
	if ephemeral {
		dir = "ephemeral-attachments"
	}
	for _, u := range ups {
		id := s.newIDLocked()
		name := u.filename
		if n, ok := sp.filenames[u.index]; ok {
			name = n
		}
		if name == "" {
			name = "file"
		}
		name = path.Base(name)
		p := "/" + dir + "/" + channelID + "/" + id + "/" + name
		s.files[id] = storedFile{data: u.data, contentType: u.contentType}
		out = append(out, &discordgo.MessageAttachment{
			ID: id, Filename: name, ContentType: u.contentType, Size: len(u.data), Ephemeral: ephemeral,
			URL: "https://cdn.discordapp.com" + p, ProxyURL: "https://media.discordapp.net" + p,
		})
	}
	return out
}

// newMessageLocked builds and stores a message authored by author in ch
// from a validated spec (the reference must already be resolved).
func (s *Server) newMessageLocked(ch *channel, author *discordgo.User, sp *spec, flagMask discordgo.MessageFlags, ref *message) *message {
	c := ch.c
	content := ""
	if sp.content != nil {
		content = *sp.content
	}
	flags := discordgo.MessageFlags(0)
	if sp.flags != nil {
		flags = discordgo.MessageFlags(*sp.flags) & flagMask
	}
	ephemeral := flags&discordgo.MessageFlagsEphemeral != 0
	var repliedTo *discordgo.User
	if ref != nil {
		repliedTo = ref.m.Author
	}
	mentions, roles, everyone := s.mentionsLocked(content, sp.allowed, c.GuildID, repliedTo)
	dm := &discordgo.Message{
		ID: s.newIDLocked(), ChannelID: c.ID, GuildID: c.GuildID, Content: content, Timestamp: s.now(),
		TTS: sp.tts, MentionEveryone: everyone, Author: deepCopy(author), Mentions: mentions, MentionRoles: roles,
		Attachments: s.attachLocked(sp, c.ID, ephemeral), Embeds: []*discordgo.MessageEmbed{},
		Components: []discordgo.MessageComponent{}, Reactions: []*discordgo.MessageReactions{},
		Type: discordgo.MessageTypeDefault, Flags: flags, StickerItems: []*discordgo.StickerItem{},
		MentionChannels: []*discordgo.Channel{},
	}
	if sp.embeds != nil {
		dm.Embeds = *sp.embeds
	}
	if sp.components != nil {
		dm.Components = *sp.components
	}
	if gl, ok := s.guilds[c.GuildID]; ok {
		s.ensureMemberLocked(gl, author)
		dm.Member = s.memberCopyLocked(gl, author.ID, false)
	}
	m := &message{m: dm, nonce: sp.nonce, allowed: deepCopy(sp.allowed), ephemeral: ephemeral}
	if ref != nil {
		dm.Type = discordgo.MessageTypeReply
		dm.MessageReference = &discordgo.MessageReference{MessageID: ref.m.ID, ChannelID: ref.m.ChannelID, GuildID: ref.m.GuildID}
		m.refID = ref.m.ID
	}
	s.messages[dm.ID] = m
	s.msgOrder = append(s.msgOrder, dm.ID)
	if !ephemeral {
		ch.messages = append(ch.messages, dm.ID)
		c.LastMessageID = dm.ID
		if c.IsThread() {
			c.MessageCount++
		}
	}
	s.notifyLocked()
	return m
}

// resolveReferenceLocked finds the message a reply points at. skip is true
// when it does not exist and fail_if_not_exists is false.
func (s *Server) resolveReferenceLocked(ch *channel, ref *discordgo.MessageReference) (*message, []fieldError) {
	if ref == nil {
		return nil, nil
	}
	if ref.ChannelID != "" && ref.ChannelID != ch.c.ID {
		return nil, []fieldError{{"message_reference", "MESSAGE_REFERENCE_INVALID_CHANNEL", "Cannot reply to a message in a different channel"}}
	}
	m, ok := s.messages[ref.MessageID]
	if ok && !m.deleted && !m.ephemeral && m.m.ChannelID == ch.c.ID {
		return m, nil
	}
	if ref.FailIfNotExists != nil && !*ref.FailIfNotExists {
		return nil, nil
	}
	return nil, []fieldError{{"message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"}}
}

func sendable(t discordgo.ChannelType) bool {
	switch t {
	case discordgo.ChannelTypeGuildCategory, discordgo.ChannelTypeGuildForum, discordgo.ChannelTypeGuildMedia,
		discordgo.ChannelTypeGuildDirectory, discordgo.ChannelTypeGuildStore:
		return false
	}
	return true
}

// POST /channels/{channel}/messages
func (s *Server) handleCreateMessage(c *call) reply {
	ch, ok := s.channels[c.p["channel"]]
	if !ok {
		return errUnknown(codeUnknownChannel, "Channel")
	}
	if !sendable(ch.c.Type) {
		return apiError(http.StatusBadRequest, codeNonTextChannel, "Cannot send messages in a non-text channel")
	}
	f, ups, err := parseBody(c)
	if err != nil {
		return errInvalidJSON()
	}
	sp, errs := parseSpec(f, ups)
	ref, rerrs := s.resolveReferenceLocked(ch, sp.reference)
	errs = append(errs, rerrs...)
	if len(errs) > 0 {
		return formError(errs...)
	}
	if sp.empty() {
		return errEmptyMessage()
	}
	var key string
	if sp.enforceNonce && len(sp.nonce) > 0 {
		key = s.bot.ID + "\x00" + strings.Trim(string(sp.nonce), `"`)
		if e, ok := s.nonces[key]; ok && c.now.Sub(e.at) <= s.opts.NonceWindow {
			if m, ok := s.messages[e.msgID]; ok && !m.deleted {
				return rawReply(http.StatusOK, s.wireLocked(m, s.restIntents(), true))
			}
		}
	}
	m := s.newMessageLocked(ch, s.bot, sp, createFlags, ref)
	if key != "" {
		s.nonces[key] = nonceEntry{msgID: m.m.ID, at: c.now}
	}
	s.dispatchMessageLocked("MESSAGE_CREATE", m)
	return rawReply(http.StatusOK, s.wireLocked(m, s.restIntents(), true))
}

// channelMessageLocked finds a live, non-ephemeral message of a channel.
func (s *Server) channelMessageLocked(c *call) (*channel, *message, *reply) {
	ch, ok := s.channels[c.p["channel"]]
	if !ok {
		r := errUnknown(codeUnknownChannel, "Channel")
		return nil, nil, &r
	}
	m, ok := s.messages[c.p["message"]]
	if !ok || m.deleted || m.ephemeral || m.m.ChannelID != ch.c.ID {
		r := errUnknown(codeUnknownMessage, "Message")
		return nil, nil, &r
	}
	return ch, m, nil
}

// GET /channels/{channel}/messages/{message}
func (s *Server) handleGetMessage(c *call) reply {
	_, m, errr := s.channelMessageLocked(c)
	if errr != nil {
		return *errr
	}
	return rawReply(http.StatusOK, s.wireLocked(m, s.restIntents(), true))
}

// GET /channels/{channel}/messages: newest first, limit (default 50, at
// most 100), before, after, around.
func (s *Server) handleListMessages(c *call) reply {
	ch, ok := s.channels[c.p["channel"]]
	if !ok {
		return errUnknown(codeUnknownChannel, "Channel")
	}
	q := c.r.URL.Query()
	limit := 50
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			return formError(fieldError{"limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 100."})
		}
		limit = n
	}
	var live []*message
	for _, id := range ch.messages {
		if m := s.messages[id]; !m.deleted {
			live = append(live, m)
		}
	}
	less := func(a, b string) bool { return len(a) < len(b) || (len(a) == len(b) && a < b) }
	var sel []*message
	switch {
	case q.Get("after") != "":
		for _, m := range live {
			if less(q.Get("after"), m.m.ID) && len(sel) < limit {
				sel = append(sel, m)
			}
		}
	case q.Get("around") != "":
		idx := len(live)
		for i, m := range live {
			if !less(m.m.ID, q.Get("around")) {
				idx = i
				break
			}
		}
		lo := max(0, idx-limit/2)
		sel = live[lo:min(len(live), lo+limit)]
	default:
		for i := len(live) - 1; i >= 0 && len(sel) < limit; i-- {
			if b := q.Get("before"); b == "" || less(live[i].m.ID, b) {
				sel = append([]*message{live[i]}, sel...)
			}
		}
	}
	out := make([]json.RawMessage, 0, len(sel))
	for i := len(sel) - 1; i >= 0; i-- {
		out = append(out, s.wireLocked(sel[i], s.restIntents(), true))
	}
	return jsonReply(http.StatusOK, out)
}

// applyEditLocked changes a message as PATCH does.
func (s *Server) applyEditLocked(m *message, sp *spec) []fieldError {
	dm := m.m
	old := dm.Content
	if sp.content != nil {
		dm.Content = *sp.content
	}
	if sp.embeds != nil {
		dm.Embeds = *sp.embeds
	}
	if sp.components != nil {
		dm.Components = *sp.components
	}
	if sp.flags != nil {
		keep := dm.Flags &^ editFlags
		dm.Flags = keep | discordgo.MessageFlags(*sp.flags)&editFlags
	}
	if sp.allowed != nil {
		m.allowed = deepCopy(sp.allowed)
	}
	if sp.keep != nil || len(sp.uploads) > 0 {
		var kept []*discordgo.MessageAttachment
		for _, a := range dm.Attachments {
			if sp.keep == nil || contains(*sp.keep, a.ID) {
				kept = append(kept, a)
			}
		}
		dm.Attachments = append(kept, s.attachLocked(sp, dm.ChannelID, m.ephemeral)...)
	}
	if dm.Content != old {
		m.history = append(m.history, old)
	}
	var repliedTo *discordgo.User
	if r, ok := s.messages[m.refID]; ok {
		repliedTo = r.m.Author
	}
	dm.Mentions, dm.MentionRoles, dm.MentionEveryone = s.mentionsLocked(dm.Content, m.allowed, dm.GuildID, repliedTo)
	dm.EditedTimestamp = timePtr(s.now())
	s.notifyLocked()
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// editedEmpty reports whether an edit would leave nothing to show.
func editedEmpty(m *message, sp *spec) bool {
	content := m.m.Content
	if sp.content != nil {
		content = *sp.content
	}
	embeds := len(m.m.Embeds)
	if sp.embeds != nil {
		embeds = len(*sp.embeds)
	}
	comps := len(m.m.Components)
	if sp.components != nil {
		comps = len(*sp.components)
	}
	atts := len(m.m.Attachments)
	if sp.keep != nil {
		atts = len(*sp.keep)
	}
	atts += len(sp.uploads)
	return strings.TrimSpace(content) == "" && embeds == 0 && comps == 0 && atts == 0 && len(m.m.StickerItems) == 0
}

// PATCH /channels/{channel}/messages/{message}
func (s *Server) handleEditMessage(c *call) reply {
	_, m, errr := s.channelMessageLocked(c)
	if errr != nil {
		return *errr
	}
	if m.m.Author == nil || m.m.Author.ID != s.bot.ID {
		return apiError(http.StatusForbidden, codeCannotEditOthers, "Cannot edit a message authored by another user")
	}
	f, ups, err := parseBody(c)
	if err != nil {
		return errInvalidJSON()
	}
	sp, errs := parseSpec(f, ups)
	if len(errs) > 0 {
		return formError(errs...)
	}
	if editedEmpty(m, sp) {
		return errEmptyMessage()
	}
	s.applyEditLocked(m, sp)
	s.dispatchMessageLocked("MESSAGE_UPDATE", m)
	return rawReply(http.StatusOK, s.wireLocked(m, s.restIntents(), true))
}

// DELETE /channels/{channel}/messages/{message}. The bot is assumed to have
// MANAGE_MESSAGES, so it may delete anyone's message.
func (s *Server) handleDeleteMessage(c *call) reply {
	_, m, errr := s.channelMessageLocked(c)
	if errr != nil {
		return *errr
	}
	s.deleteMessageLocked(m)
	return noContent()
}

func (s *Server) deleteMessageLocked(m *message) {
	m.deleted = true
	if ch, ok := s.channels[m.m.ChannelID]; ok {
		for i, id := range ch.messages {
			if id == m.m.ID {
				ch.messages = append(ch.messages[:i:i], ch.messages[i+1:]...)
				break
			}
		}
	}
	s.dispatchMessageDeleteLocked(m)
	s.notifyLocked()
}

// PUT /channels/{channel}/messages/{message}/reactions/{emoji}/@me
func (s *Server) handleAddReaction(c *call) reply { return s.reactLocked(c, false) }

// DELETE /channels/{channel}/messages/{message}/reactions/{emoji}/@me
func (s *Server) handleRemoveReaction(c *call) reply { return s.reactLocked(c, true) }

func (s *Server) reactLocked(c *call, remove bool) reply {
	_, m, errr := s.channelMessageLocked(c)
	if errr != nil {
		return *errr
	}
	emoji := c.p["emoji"]
	name, id, _ := strings.Cut(emoji, ":")
	found := -1
	for i, r := range m.m.Reactions {
		if r.Emoji != nil && (r.Emoji.Name == name || (id != "" && r.Emoji.ID == id)) {
			found = i
		}
	}
	switch {
	case !remove && found < 0:
		m.m.Reactions = append(m.m.Reactions, &discordgo.MessageReactions{Count: 1, Me: true, Emoji: &discordgo.Emoji{Name: name, ID: id}})
	case !remove && !m.m.Reactions[found].Me:
		m.m.Reactions[found].Me = true
		m.m.Reactions[found].Count++
	case remove && found >= 0 && m.m.Reactions[found].Me:
		m.m.Reactions[found].Me = false
		m.m.Reactions[found].Count--
		if m.m.Reactions[found].Count == 0 {
			m.m.Reactions = append(m.m.Reactions[:found:found], m.m.Reactions[found+1:]...)
		}
	}
	s.reactions = append(s.reactions, Reaction{ChannelID: m.m.ChannelID, MessageID: m.m.ID, Emoji: emoji, Removed: remove})
	name2 := "MESSAGE_REACTION_ADD"
	if remove {
		name2 = "MESSAGE_REACTION_REMOVE"
	}
	intent := discordgo.IntentGuildMessageReactions
	if m.m.GuildID == "" {
		intent = discordgo.IntentDirectMessageReactions
	}
	payload := map[string]any{
		"user_id": s.bot.ID, "channel_id": m.m.ChannelID, "message_id": m.m.ID,
		"emoji": map[string]any{"name": name, "id": nilIfEmpty(id)},
	}
	if m.m.GuildID != "" {
		payload["guild_id"] = m.m.GuildID
	}
	s.dispatchLocked(event{name: name2, guildID: m.m.GuildID, intent: intent, build: func(*session) any { return payload }})
	return noContent()
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// POST /channels/{channel}/typing
func (s *Server) handleTyping(c *call) reply {
	if _, ok := s.channels[c.p["channel"]]; !ok {
		return errUnknown(codeUnknownChannel, "Channel")
	}
	s.typing = append(s.typing, Typing{ChannelID: c.p["channel"], At: c.now})
	s.notifyLocked()
	return noContent()
}

// GET /attachments/{channel}/{id}/{filename}: the CDN, for clients whose
// transport sends cdn.discordapp.com here (see RewriteTransport).
func (s *Server) serveAttachment(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 4 {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	f, ok := s.files[parts[2]]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
	_, _ = w.Write(f.data)
}

// Messages returns the live messages of a channel (or thread, or DM), oldest
// first, as they are now.
func (s *Server) Messages(channelID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.channels[channelID]
	if !ok {
		return nil
	}
	out := make([]Message, 0, len(ch.messages))
	for _, id := range ch.messages {
		out = append(out, s.snapshotLocked(s.messages[id]))
	}
	return out
}

// AllMessages returns every message ever created (deleted and ephemeral
// ones included), in creation order.
func (s *Server) AllMessages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.msgOrder))
	for _, id := range s.msgOrder {
		out = append(out, s.snapshotLocked(s.messages[id]))
	}
	return out
}

// MessageByID returns any message (deleted and ephemeral ones included).
func (s *Server) MessageByID(id string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[id]
	if !ok {
		return Message{}, false
	}
	return s.snapshotLocked(m), true
}

// WaitMessage blocks until some message (any channel, ephemeral and
// deleted ones included) satisfies pred in its current state, and returns
// the first such message in creation order.
func (s *Server) WaitMessage(ctx context.Context, pred func(Message) bool) (Message, error) {
	var out Message
	err := waitSnap(ctx, s, func() []Message {
		all := make([]Message, 0, len(s.msgOrder))
		for _, id := range s.msgOrder {
			all = append(all, s.snapshotLocked(s.messages[id]))
		}
		return all
	}, func(all []Message) bool {
		for _, m := range all {
			if pred(m) {
				out = m
				return true
			}
		}
		return false
	})
	return out, err
}

// Typings returns every typing call, in order.
func (s *Server) Typings() []Typing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Typing(nil), s.typing...)
}

// Reactions returns every reaction the bot added or removed, in order.
func (s *Server) Reactions() []Reaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Reaction(nil), s.reactions...)
}
