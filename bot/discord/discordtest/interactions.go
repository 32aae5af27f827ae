package discordtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// Interaction is the fake's record of one interaction it dispatched.
type Interaction struct {
	// Interaction is what INTERACTION_CREATE carried, as discordgo decodes it.
	*discordgo.Interaction
	// DispatchedAt is the fake clock's time of the dispatch.
	DispatchedAt time.Time
	// Response is the callback, nil until the bot answered.
	Response *Response
	// Original is the original response message in its current state: the
	// message created by callback 4 or 5, or for 6 and 7 the message the
	// component is on. Nil when there is none (or for autocomplete/modal).
	Original *Message
	// Followups are the follow-up messages, oldest first (a follow-up that
	// replaced a deferred response's loading state is the Original instead).
	Followups []Message
}

// Response is an interaction callback.
type Response struct {
	Type discordgo.InteractionResponseType
	// Data is the callback's data, decoded (components included); nil when
	// the callback had none.
	Data *discordgo.InteractionResponseData
	// Raw is the callback body (payload_json for multipart).
	Raw json.RawMessage
	// Ephemeral is the EPHEMERAL flag (64) of the data.
	Ephemeral bool
	At        time.Time

	data json.RawMessage
}

type interaction struct {
	id, token string
	typ       discordgo.InteractionType
	channelID string
	guildID   string
	user      *discordgo.User
	at        time.Time
	wire      json.RawMessage
	sourceMsg string // message of a component (or of the component that opened a modal)
	cmdName   string
	cmdType   discordgo.ApplicationCommandType
	resp      *Response
	original  string
	followups []string
}

// newInteractionLocked builds, stores and dispatches an interaction.
func (s *Server) newInteractionLocked(typ discordgo.InteractionType, ch *channel, user *discordgo.User, data any, source *message, locale string) (*interaction, *discordgo.Interaction) {
	u := s.addUserLocked(user)
	id := s.newIDLocked()
	it := &interaction{
		id: id, typ: typ, channelID: ch.c.ID, guildID: ch.c.GuildID, user: deepCopy(u), at: s.now(),
		token: base64.RawURLEncoding.EncodeToString([]byte("interaction:" + id + ":" + randomHex(24))),
	}
	if source != nil {
		it.sourceMsg = source.m.ID
	}
	if locale == "" {
		locale = "en-US"
	}
	w := map[string]any{
		"id": id, "application_id": s.opts.ApplicationID, "type": typ, "data": data,
		"channel_id": ch.c.ID, "token": it.token, "version": 1, "locale": locale,
		"entitlements": []any{}, "attachment_size_limit": maxRequestBody,
	}
	partial := map[string]any{"id": ch.c.ID, "type": ch.c.Type, "name": ch.c.Name}
	if gl, ok := s.guilds[ch.c.GuildID]; ok {
		s.ensureMemberLocked(gl, u)
		m := s.memberCopyLocked(gl, u.ID, true)
		m.Permissions = s.permissionsLocked(gl, u.ID)
		w["guild_id"] = gl.g.ID
		w["guild_locale"] = gl.g.PreferredLocale
		w["guild"] = map[string]any{"id": gl.g.ID, "locale": gl.g.PreferredLocale, "features": gl.g.Features}
		w["member"] = m
		w["app_permissions"] = formatInt(s.permissionsLocked(gl, s.bot.ID))
		w["context"] = discordgo.InteractionContextGuild
		w["authorizing_integration_owners"] = map[string]string{"0": gl.g.ID}
		partial["guild_id"] = gl.g.ID
		partial["parent_id"] = nilIfEmpty(ch.c.ParentID)
		partial["permissions"] = formatInt(m.Permissions)
	} else {
		w["user"] = u
		w["app_permissions"] = formatInt(discordgo.PermissionViewChannel | discordgo.PermissionSendMessages |
			discordgo.PermissionEmbedLinks | discordgo.PermissionAttachFiles | discordgo.PermissionReadMessageHistory |
			discordgo.PermissionAddReactions | discordgo.PermissionUseExternalEmojis)
		w["context"] = discordgo.InteractionContextBotDM
		w["authorizing_integration_owners"] = map[string]string{"0": "0"}
		partial["recipients"] = []*discordgo.User{u}
	}
	w["channel"] = partial
	if source != nil {
		w["message"] = s.wireLocked(source, discordgo.IntentMessageContent, true)
	}
	raw, err := json.Marshal(w)
	if err != nil {
		panic(err)
	}
	it.wire = raw
	s.interactions[id] = it
	s.intOrder = append(s.intOrder, id)
	s.dispatchLocked(event{name: "INTERACTION_CREATE", guildID: it.guildID,
		build: func(*session) any { return json.RawMessage(raw) }})
	var out discordgo.Interaction
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(err)
	}
	return it, &out
}

func formatInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// POST /interactions/{interaction}/{token}/callback
func (s *Server) handleCallback(c *call) reply {
	it, ok := s.interactions[c.p["interaction"]]
	if !ok || it.token != c.p["token"] {
		return errUnknown(codeUnknownInteraction, "interaction")
	}
	if it.resp != nil {
		return apiError(http.StatusBadRequest, codeAlreadyAcknowledged, "Interaction has already been acknowledged.")
	}
	if c.now.Sub(it.at) > InteractionCallbackWindow {
		return errUnknown(codeUnknownInteraction, "interaction")
	}
	f, ups, err := parseBody(c)
	if err != nil {
		return errInvalidJSON()
	}
	var typ int
	if !f.get("type", &typ) {
		return formError(append(f.errs, requiredError("type"))...)
	}
	rtype := discordgo.InteractionResponseType(typ)
	if !responseAllowed(it, rtype) {
		return formError(fieldError{"type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type is invalid for this interaction"})
	}
	df := &fields{m: map[string]json.RawMessage{}}
	if f.has("data") && !f.isNull("data") {
		if err := json.Unmarshal(f.m["data"], &df.m); err != nil {
			return formError(fieldError{"data", "MODEL_TYPE_CONVERT", "Could not interpret the value as an object."})
		}
	}
	sp, errs := parseSpec(df, ups)
	for i := range errs {
		errs[i].path = "data." + errs[i].path
	}
	resp := &Response{Type: rtype, At: c.now, Data: decodeResponseData(f.m["data"]), data: f.m["data"]}
	resp.Raw = rawPayload(c, f)
	if sp.flags != nil && discordgo.MessageFlags(*sp.flags)&discordgo.MessageFlagsEphemeral != 0 {
		resp.Ephemeral = true
	}
	switch rtype {
	case discordgo.InteractionResponseChannelMessageWithSource:
		if len(errs) > 0 {
			return formError(errs...)
		}
		if sp.empty() {
			return errEmptyMessage()
		}
		m := s.interactionMessageLocked(it, sp, false)
		it.original = m.m.ID
		s.dispatchMessageLocked("MESSAGE_CREATE", m)
	case discordgo.InteractionResponseDeferredChannelMessageWithSource:
		if len(errs) > 0 {
			return formError(errs...)
		}
		flags := 0
		if resp.Ephemeral {
			flags = int(discordgo.MessageFlagsEphemeral)
		}
		m := s.interactionMessageLocked(it, &spec{flags: &flags}, false)
		m.m.Flags |= discordgo.MessageFlagsLoading
		it.original = m.m.ID
		s.dispatchMessageLocked("MESSAGE_CREATE", m)
	case discordgo.InteractionResponseDeferredMessageUpdate:
	case discordgo.InteractionResponseUpdateMessage:
		if len(errs) > 0 {
			return formError(errs...)
		}
		m := s.messages[it.sourceMsg]
		if m == nil || m.deleted {
			return errUnknown(codeUnknownMessage, "Message")
		}
		if editedEmpty(m, sp) {
			return errEmptyMessage()
		}
		s.applyEditLocked(m, sp)
		s.dispatchMessageLocked("MESSAGE_UPDATE", m)
	case discordgo.InteractionApplicationCommandAutocompleteResult:
		if ferrs := checkChoices(resp.Data); len(ferrs) > 0 {
			return formError(ferrs...)
		}
	case discordgo.InteractionResponseModal:
		if ferrs := checkModal(resp.Data); len(ferrs) > 0 {
			return formError(ferrs...)
		}
	}
	it.resp = resp
	s.notifyLocked()
	return noContent()
}

// rawPayload is the JSON part of a body.
func rawPayload(c *call, f *fields) json.RawMessage {
	if bytes.HasPrefix(bytes.TrimSpace(c.body), []byte("{")) {
		return append(json.RawMessage(nil), c.body...)
	}
	b, _ := json.Marshal(f.m)
	return b
}

// responseAllowed applies which callback types each interaction type takes.
func responseAllowed(it *interaction, t discordgo.InteractionResponseType) bool {
	switch t {
	case discordgo.InteractionResponseChannelMessageWithSource, discordgo.InteractionResponseDeferredChannelMessageWithSource:
		return it.typ == discordgo.InteractionApplicationCommand || it.typ == discordgo.InteractionMessageComponent ||
			it.typ == discordgo.InteractionModalSubmit
	case discordgo.InteractionResponseDeferredMessageUpdate, discordgo.InteractionResponseUpdateMessage:
		return it.sourceMsg != "" && (it.typ == discordgo.InteractionMessageComponent || it.typ == discordgo.InteractionModalSubmit)
	case discordgo.InteractionApplicationCommandAutocompleteResult:
		return it.typ == discordgo.InteractionApplicationCommandAutocomplete
	case discordgo.InteractionResponseModal:
		return it.typ == discordgo.InteractionApplicationCommand || it.typ == discordgo.InteractionMessageComponent
	}
	return false // PONG is only for HTTP pings, never dispatched on the gateway
}

func decodeResponseData(raw json.RawMessage) *discordgo.InteractionResponseData {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	var aux struct {
		TTS             bool                                        `json:"tts"`
		Content         string                                      `json:"content"`
		Components      []json.RawMessage                           `json:"components"`
		Embeds          []*discordgo.MessageEmbed                   `json:"embeds"`
		AllowedMentions *discordgo.MessageAllowedMentions           `json:"allowed_mentions"`
		Attachments     *[]*discordgo.MessageAttachment             `json:"attachments"`
		Flags           discordgo.MessageFlags                      `json:"flags"`
		Choices         []*discordgo.ApplicationCommandOptionChoice `json:"choices"`
		CustomID        string                                      `json:"custom_id"`
		Title           string                                      `json:"title"`
	}
	_ = json.Unmarshal(raw, &aux)
	comps, _ := decodeComponents("components", aux.Components)
	if len(aux.Components) == 0 {
		comps = nil
	}
	return &discordgo.InteractionResponseData{
		TTS: aux.TTS, Content: aux.Content, Components: comps, Embeds: aux.Embeds, AllowedMentions: aux.AllowedMentions,
		Attachments: aux.Attachments, Flags: aux.Flags, Choices: aux.Choices, CustomID: aux.CustomID, Title: aux.Title,
	}
}

func checkChoices(d *discordgo.InteractionResponseData) []fieldError {
	if d == nil {
		return []fieldError{requiredError("data.choices")}
	}
	var errs []fieldError
	if len(d.Choices) > 25 {
		errs = append(errs, maxLengthError("data.choices", 25))
	}
	for i, ch := range d.Choices {
		if ch == nil || utf8.RuneCountInString(ch.Name) < 1 || utf8.RuneCountInString(ch.Name) > 100 {
			errs = append(errs, fieldError{"data.choices." + itoa(i) + ".name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."})
		}
	}
	return errs
}

func checkModal(d *discordgo.InteractionResponseData) []fieldError {
	if d == nil {
		return []fieldError{requiredError("data")}
	}
	var errs []fieldError
	if d.CustomID == "" {
		errs = append(errs, requiredError("data.custom_id"))
	} else if utf8.RuneCountInString(d.CustomID) > 100 {
		errs = append(errs, maxLengthError("data.custom_id", 100))
	}
	if n := utf8.RuneCountInString(d.Title); n < 1 || n > 45 {
		errs = append(errs, fieldError{"data.title", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length."})
	}
	if len(d.Components) < 1 || len(d.Components) > 5 {
		errs = append(errs, fieldError{"data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."})
	}
	for i, c := range d.Components {
		row, ok := c.(*discordgo.ActionsRow)
		if !ok || len(row.Components) != 1 {
			errs = append(errs, fieldError{"data.components." + itoa(i), "MODAL_ROW_INVALID", "Modal action rows hold exactly one text input"})
			continue
		}
		if _, ok := row.Components[0].(*discordgo.TextInput); !ok {
			errs = append(errs, fieldError{"data.components." + itoa(i) + ".components.0.type", "UNION_TYPE_CHOICES", "Value of field \"type\" must be one of (4,)."})
		}
	}
	return errs
}

func itoa(i int) string { return formatInt(int64(i)) }

// interactionMessageLocked creates a message the application sends for an
// interaction (original response or follow-up).
func (s *Server) interactionMessageLocked(it *interaction, sp *spec, followup bool) *message {
	ch := s.channels[it.channelID]
	m := s.newMessageLocked(ch, s.bot, sp, interactionFlags, nil)
	m.appID = s.opts.ApplicationID
	m.interactionID = it.id
	dm := m.m
	dm.WebhookID = s.opts.ApplicationID
	if !followup && it.typ == discordgo.InteractionApplicationCommand {
		dm.Type = discordgo.MessageTypeChatInputCommand
		if it.cmdType != discordgo.ChatApplicationCommand {
			dm.Type = discordgo.MessageTypeContextMenuCommand
		}
	}
	dm.Interaction = &discordgo.MessageInteraction{ID: it.id, Type: it.typ, Name: it.cmdName, User: deepCopy(it.user)}
	dm.InteractionMetadata = &discordgo.MessageInteractionMetadata{
		ID: it.id, Type: it.typ, User: deepCopy(it.user),
		AuthorizingIntegrationOwners: map[discordgo.ApplicationIntegrationType]string{discordgo.ApplicationIntegrationGuildInstall: "0"},
	}
	if it.guildID != "" {
		dm.InteractionMetadata.AuthorizingIntegrationOwners[discordgo.ApplicationIntegrationGuildInstall] = it.guildID
	}
	if followup && it.original != "" {
		dm.InteractionMetadata.OriginalResponseMessageID = it.original
	}
	return m
}

// webhookInteractionLocked resolves /webhooks/{app}/{token}.
func (s *Server) webhookInteractionLocked(c *call) (*interaction, *reply) {
	if c.p["app"] != s.opts.ApplicationID {
		r := errUnknown(codeUnknownWebhook, "Webhook")
		return nil, &r
	}
	var it *interaction
	for _, cand := range s.interactions {
		if cand.token == c.p["token"] {
			it = cand
			break
		}
	}
	if it == nil || c.now.Sub(it.at) > InteractionTokenLifetime {
		r := apiError(http.StatusUnauthorized, codeInvalidWebhookToken, "Invalid Webhook Token")
		return nil, &r
	}
	if it.resp == nil {
		r := errUnknown(codeUnknownWebhook, "Webhook")
		return nil, &r
	}
	return it, nil
}

// originalLocked is what @original refers to.
func (s *Server) originalLocked(it *interaction) *message {
	id := it.original
	if it.resp != nil && (it.resp.Type == discordgo.InteractionResponseDeferredMessageUpdate || it.resp.Type == discordgo.InteractionResponseUpdateMessage) {
		id = it.sourceMsg
	}
	m, ok := s.messages[id]
	if !ok || m.deleted {
		return nil
	}
	return m
}

// webhookMessageLocked resolves /webhooks/{app}/{token}/messages/{message}.
func (s *Server) webhookMessageLocked(c *call) (*interaction, *message, *reply) {
	it, errr := s.webhookInteractionLocked(c)
	if errr != nil {
		return nil, nil, errr
	}
	var m *message
	switch id := c.p["message"]; {
	case id == "@original":
		m = s.originalLocked(it)
	case id == it.original || contains(it.followups, id):
		if mm, ok := s.messages[id]; ok && !mm.deleted {
			m = mm
		}
	}
	if m == nil {
		r := errUnknown(codeUnknownMessage, "Message")
		return nil, nil, &r
	}
	return it, m, nil
}

// POST /webhooks/{app}/{token}: a follow-up. The answer is always the
// message, whatever ?wait says, as for every interaction follow-up. The
// first follow-up after a deferred response (type 5) whose loading state
// was never replaced becomes that response, keeping its ephemerality.
func (s *Server) handleFollowup(c *call) reply {
	it, errr := s.webhookInteractionLocked(c)
	if errr != nil {
		return *errr
	}
	f, ups, err := parseBody(c)
	if err != nil {
		return errInvalidJSON()
	}
	sp, errs := parseSpec(f, ups)
	if len(errs) > 0 {
		return formError(errs...)
	}
	if sp.empty() {
		return errEmptyMessage()
	}
	if orig := s.originalLocked(it); orig != nil && it.resp.Type == discordgo.InteractionResponseDeferredChannelMessageWithSource &&
		orig.m.Flags&discordgo.MessageFlagsLoading != 0 {
		sp.flags = nil
		s.applyEditLocked(orig, sp)
		orig.history = nil
		orig.m.Flags &^= discordgo.MessageFlagsLoading
		orig.m.EditedTimestamp = nil
		s.dispatchMessageLocked("MESSAGE_UPDATE", orig)
		return rawReply(http.StatusOK, s.wireLocked(orig, discordgo.IntentMessageContent, true))
	}
	m := s.interactionMessageLocked(it, sp, true)
	it.followups = append(it.followups, m.m.ID)
	s.dispatchMessageLocked("MESSAGE_CREATE", m)
	return rawReply(http.StatusOK, s.wireLocked(m, discordgo.IntentMessageContent, true))
}

// GET /webhooks/{app}/{token}/messages/{message}
func (s *Server) handleGetWebhookMessage(c *call) reply {
	_, m, errr := s.webhookMessageLocked(c)
	if errr != nil {
		return *errr
	}
	return rawReply(http.StatusOK, s.wireLocked(m, discordgo.IntentMessageContent, true))
}

// PATCH /webhooks/{app}/{token}/messages/{message}
func (s *Server) handleEditWebhookMessage(c *call) reply {
	_, m, errr := s.webhookMessageLocked(c)
	if errr != nil {
		return *errr
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
	loading := m.m.Flags&discordgo.MessageFlagsLoading != 0
	s.applyEditLocked(m, sp)
	if loading {
		// Replacing the loading state is not an edit of the content.
		m.m.Flags &^= discordgo.MessageFlagsLoading
		m.m.EditedTimestamp = nil
		m.history = nil
	}
	s.dispatchMessageLocked("MESSAGE_UPDATE", m)
	return rawReply(http.StatusOK, s.wireLocked(m, discordgo.IntentMessageContent, true))
}

// DELETE /webhooks/{app}/{token}/messages/{message}
func (s *Server) handleDeleteWebhookMessage(c *call) reply {
	_, m, errr := s.webhookMessageLocked(c)
	if errr != nil {
		return *errr
	}
	s.deleteMessageLocked(m)
	return noContent()
}

// snapshotInteractionLocked is the exported view of an interaction.
func (s *Server) snapshotInteractionLocked(it *interaction) Interaction {
	var di discordgo.Interaction
	if err := json.Unmarshal(it.wire, &di); err != nil {
		panic(err)
	}
	out := Interaction{Interaction: &di, DispatchedAt: it.at}
	if it.resp != nil {
		r := *it.resp
		r.Raw = append(json.RawMessage(nil), it.resp.Raw...)
		r.Data = decodeResponseData(it.resp.data)
		out.Response = &r
		if m := s.originalLocked(it); m != nil {
			snap := s.snapshotLocked(m)
			out.Original = &snap
		}
	}
	for _, id := range it.followups {
		out.Followups = append(out.Followups, s.snapshotLocked(s.messages[id]))
	}
	return out
}

// Interaction returns the record of an interaction by id.
func (s *Server) Interaction(id string) (Interaction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.interactions[id]
	if !ok {
		return Interaction{}, false
	}
	return s.snapshotInteractionLocked(it), true
}

// Interactions returns every interaction dispatched, in order.
func (s *Server) Interactions() []Interaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Interaction, 0, len(s.intOrder))
	for _, id := range s.intOrder {
		out = append(out, s.snapshotInteractionLocked(s.interactions[id]))
	}
	return out
}

// WaitInteraction blocks until the interaction's record satisfies pred.
func (s *Server) WaitInteraction(ctx context.Context, id string, pred func(Interaction) bool) (Interaction, error) {
	var out Interaction
	err := waitSnap(ctx, s, func() *Interaction {
		it, ok := s.interactions[id]
		if !ok {
			return nil
		}
		snap := s.snapshotInteractionLocked(it)
		return &snap
	}, func(in *Interaction) bool {
		if in == nil || !pred(*in) {
			return false
		}
		out = *in
		return true
	})
	return out, err
}

// WaitResponse blocks until the bot answered the interaction's callback.
func (s *Server) WaitResponse(ctx context.Context, id string) (Interaction, error) {
	return s.WaitInteraction(ctx, id, func(in Interaction) bool { return in.Response != nil })
}
