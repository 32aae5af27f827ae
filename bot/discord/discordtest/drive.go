package discordtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// File is a file a user uploads (a message attachment or an attachment
// option).
type File struct {
	Name        string
	ContentType string
	Data        []byte
}

// UserMessage is a message a user sends; see SendMessage.
type UserMessage struct {
	// ChannelID is a seeded channel or thread, or a DM from DMChannel.
	ChannelID string
	// GuildID is optional; when set it must be the channel's guild.
	GuildID string
	// Author is required; it is registered (and made a guild member) on
	// first use.
	Author  *discordgo.User
	Content string
	// Mentions are added to the users mentioned in Content (<@id>).
	Mentions []*discordgo.User
	// ReferencedMessageID makes the message a reply (type 19); the replied
	// user is mentioned unless NoReplyMention.
	ReferencedMessageID string
	NoReplyMention      bool
	Embeds              []*discordgo.MessageEmbed
	Files               []File
	// Nonce is what the user's client sent.
	Nonce string
}

// SendMessage makes a user post a message: it is stored and dispatched as
// MESSAGE_CREATE (to sessions with the GUILD_MESSAGES or DIRECT_MESSAGES
// intent; without MESSAGE_CONTENT the content is empty unless the message
// is a DM or mentions the bot). It returns the message as a client with
// every intent sees it.
func (s *Server) SendMessage(um UserMessage) *discordgo.Message {
	s.mu.Lock()
	out, err := s.sendMessageLocked(um)
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

func (s *Server) sendMessageLocked(um UserMessage) (*discordgo.Message, error) {
	ch, ok := s.channels[um.ChannelID]
	if !ok {
		return nil, fmt.Errorf("SendMessage: unknown channel %q", um.ChannelID)
	}
	if um.GuildID != "" && um.GuildID != ch.c.GuildID {
		return nil, fmt.Errorf("SendMessage: channel %s is not in guild %s", um.ChannelID, um.GuildID)
	}
	if um.Author == nil {
		return nil, errors.New("SendMessage: Author is required")
	}
	if !sendable(ch.c.Type) {
		return nil, fmt.Errorf("SendMessage: channel %s is not a text channel", um.ChannelID)
	}
	if utf8.RuneCountInString(um.Content) > 2000 {
		return nil, errors.New("SendMessage: content longer than 2000 characters")
	}
	author := s.addUserLocked(um.Author)
	if ch.c.Type == discordgo.ChannelTypeDM && (len(ch.c.Recipients) == 0 || ch.c.Recipients[0].ID != author.ID) {
		return nil, fmt.Errorf("SendMessage: %s is not the recipient of DM %s", author.ID, ch.c.ID)
	}
	content := um.Content
	sp := &spec{content: &content, tts: false, descriptions: map[int]string{}, filenames: map[int]string{}}
	if um.Embeds != nil {
		e := um.Embeds
		sp.embeds = &e
	}
	for i, f := range um.Files {
		ct := f.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		sp.uploads = append(sp.uploads, upload{index: i, filename: f.Name, contentType: ct, data: f.Data})
	}
	if um.Nonce != "" {
		sp.nonce, _ = json.Marshal(um.Nonce)
	}
	if sp.empty() {
		return nil, errors.New("SendMessage: empty message")
	}
	var ref *message
	if um.ReferencedMessageID != "" {
		r, ok := s.messages[um.ReferencedMessageID]
		if !ok || r.deleted || r.ephemeral || r.m.ChannelID != ch.c.ID {
			return nil, fmt.Errorf("SendMessage: no message %s in channel %s to reply to", um.ReferencedMessageID, ch.c.ID)
		}
		ref = r
		if um.NoReplyMention {
			sp.allowed = &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{"users", "roles", "everyone"}}
		}
	}
	m := s.newMessageLocked(ch, author, sp, createFlags, ref)
	m.allowed = nil
	for _, u := range um.Mentions {
		u = s.addUserLocked(u)
		if !slices.ContainsFunc(m.m.Mentions, func(x *discordgo.User) bool { return x.ID == u.ID }) {
			m.m.Mentions = append(m.m.Mentions, deepCopy(u))
		}
	}
	s.dispatchMessageLocked("MESSAGE_CREATE", m)
	var out discordgo.Message
	if err := json.Unmarshal(s.wireLocked(m, discordgo.IntentMessageContent, true), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SlashCommand is a chat-input command a user runs; see Server.SlashCommand.
type SlashCommand struct {
	// Name is the command, with its sub-command group and sub-command
	// separated by spaces: "ask", "config set", "admin model add".
	Name      string
	ChannelID string
	User      *discordgo.User
	// Options maps option names to values. Values by option type: string;
	// integer (any Go integer, or an integral float64); bool; number (any
	// Go number); user (*discordgo.User or id); channel (*discordgo.Channel
	// or id); role (*discordgo.Role or id); mentionable (a user or role id);
	// attachment (File).
	Options map[string]any
	// Locale is the user's client locale; "en-US" when empty.
	Locale string
}

// SlashCommand makes a user run a registered command (the guild's command
// first, then the global one, as the Discord client shows them) and
// dispatches INTERACTION_CREATE type 2 with typed options, resolved data,
// the member (with its permissions) or user, a fresh id and token. Options
// are checked against the definition: types, choices, min/max, required.
// It returns the interaction as discordgo decodes it (ID and Token are what
// the bot must answer to).
func (s *Server) SlashCommand(sc SlashCommand) *discordgo.Interaction {
	s.mu.Lock()
	out, err := s.commandInteractionLocked(sc, "")
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

// Autocomplete is a user typing into an autocomplete option.
type Autocomplete struct {
	Name      string
	ChannelID string
	User      *discordgo.User
	// Options holds what is filled in so far; Options[Focused] is the
	// partial text (a string, whatever the option's type).
	Options map[string]any
	Focused string
	Locale  string
}

// Autocomplete dispatches INTERACTION_CREATE type 4 for a registered
// command whose Focused option has autocomplete enabled.
func (s *Server) Autocomplete(ac Autocomplete) *discordgo.Interaction {
	s.mu.Lock()
	out, err := s.commandInteractionLocked(SlashCommand{
		Name: ac.Name, ChannelID: ac.ChannelID, User: ac.User, Options: ac.Options, Locale: ac.Locale,
	}, ac.Focused)
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

type wireOption struct {
	Name    string       `json:"name"`
	Type    int          `json:"type"`
	Value   any          `json:"value,omitempty"`
	Options []wireOption `json:"options,omitempty"`
	Focused bool         `json:"focused,omitempty"`
}

type resolved struct {
	Users       map[string]*discordgo.User              `json:"users,omitempty"`
	Members     map[string]*discordgo.Member            `json:"members,omitempty"`
	Roles       map[string]*discordgo.Role              `json:"roles,omitempty"`
	Channels    map[string]any                          `json:"channels,omitempty"`
	Attachments map[string]*discordgo.MessageAttachment `json:"attachments,omitempty"`
}

func (r *resolved) empty() bool {
	return len(r.Users)+len(r.Members)+len(r.Roles)+len(r.Channels)+len(r.Attachments) == 0
}

func (s *Server) commandInteractionLocked(sc SlashCommand, focused string) (*discordgo.Interaction, error) {
	ch, ok := s.channels[sc.ChannelID]
	if !ok {
		return nil, fmt.Errorf("unknown channel %q", sc.ChannelID)
	}
	if sc.User == nil {
		return nil, errors.New("the interaction needs a User")
	}
	path := strings.Fields(sc.Name)
	if len(path) == 0 {
		return nil, errors.New("the command needs a Name")
	}
	cmd := s.lookupCommandLocked(ch.c.GuildID, path[0], discordgo.ChatApplicationCommand)
	if cmd == nil {
		return nil, fmt.Errorf("no command %q is registered for channel %s (register it with ApplicationCommandBulkOverwrite first)", path[0], ch.c.ID)
	}
	defs := cmd.Options
	var wrap func([]wireOption) []wireOption
	wrap = func(o []wireOption) []wireOption { return o }
	for _, part := range path[1:] {
		var next *discordgo.ApplicationCommandOption
		for _, o := range defs {
			if o.Name == part && (o.Type == discordgo.ApplicationCommandOptionSubCommand || o.Type == discordgo.ApplicationCommandOptionSubCommandGroup) {
				next = o
			}
		}
		if next == nil {
			return nil, fmt.Errorf("command %q has no sub-command %q", cmd.Name, part)
		}
		prev, n := wrap, next
		wrap = func(o []wireOption) []wireOption {
			return prev([]wireOption{{Name: n.Name, Type: int(n.Type), Options: o}})
		}
		defs = next.Options
	}
	for _, o := range defs {
		if o.Type == discordgo.ApplicationCommandOptionSubCommand || o.Type == discordgo.ApplicationCommandOptionSubCommandGroup {
			return nil, fmt.Errorf("command %q needs a sub-command", sc.Name)
		}
	}
	res := &resolved{}
	var opts []wireOption
	for name := range sc.Options {
		if !slices.ContainsFunc(defs, func(o *discordgo.ApplicationCommandOption) bool { return o.Name == name }) {
			return nil, fmt.Errorf("command %q has no option %q", sc.Name, name)
		}
	}
	for _, def := range defs {
		v, ok := sc.Options[def.Name]
		if !ok {
			if def.Required && focused == "" {
				return nil, fmt.Errorf("command %q: required option %q missing", sc.Name, def.Name)
			}
			continue
		}
		if def.Name == focused {
			str, isStr := v.(string)
			if !isStr {
				return nil, fmt.Errorf("autocomplete: the focused option %q must be the typed text (a string)", focused)
			}
			if !def.Autocomplete {
				return nil, fmt.Errorf("option %q of %q does not have autocomplete", focused, sc.Name)
			}
			opts = append(opts, wireOption{Name: def.Name, Type: int(def.Type), Value: str, Focused: true})
			continue
		}
		wv, err := s.optionValueLocked(def, v, ch, res)
		if err != nil {
			return nil, fmt.Errorf("command %q option %q: %w", sc.Name, def.Name, err)
		}
		opts = append(opts, wireOption{Name: def.Name, Type: int(def.Type), Value: wv})
	}
	if focused != "" && !slices.ContainsFunc(opts, func(o wireOption) bool { return o.Focused }) {
		return nil, fmt.Errorf("autocomplete: option %q is not in Options", focused)
	}
	data := map[string]any{"id": cmd.ID, "name": cmd.Name, "type": int(cmd.Type)}
	if all := wrap(opts); len(all) > 0 {
		data["options"] = all
	}
	if !res.empty() {
		data["resolved"] = res
	}
	if cmd.GuildID != "" {
		data["guild_id"] = cmd.GuildID
	}
	typ := discordgo.InteractionApplicationCommand
	if focused != "" {
		typ = discordgo.InteractionApplicationCommandAutocomplete
	}
	it, out := s.newInteractionLocked(typ, ch, sc.User, data, nil, sc.Locale)
	it.cmdName, it.cmdType = cmd.Name, cmd.Type
	return out, nil
}

// optionValueLocked converts a Go value to the option's wire value.
func (s *Server) optionValueLocked(def *discordgo.ApplicationCommandOption, v any, ch *channel, res *resolved) (any, error) {
	switch def.Type {
	case discordgo.ApplicationCommandOptionString:
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, got %T", v)
		}
		n := utf8.RuneCountInString(str)
		if (def.MinLength != nil && n < *def.MinLength) || (def.MaxLength > 0 && n > def.MaxLength) || n > 6000 {
			return nil, fmt.Errorf("length %d out of range", n)
		}
		if len(def.Choices) > 0 && !slices.ContainsFunc(def.Choices, func(c *discordgo.ApplicationCommandOptionChoice) bool { return c.Value == str }) {
			return nil, fmt.Errorf("%q is not one of the choices", str)
		}
		return str, nil
	case discordgo.ApplicationCommandOptionInteger, discordgo.ApplicationCommandOptionNumber:
		f, ok := toFloat(v)
		if !ok {
			return nil, fmt.Errorf("want a number, got %T", v)
		}
		if def.Type == discordgo.ApplicationCommandOptionInteger && f != math.Trunc(f) {
			return nil, fmt.Errorf("%v is not an integer", v)
		}
		if (def.MinValue != nil && f < *def.MinValue) || (def.MaxValue != 0 && f > def.MaxValue) {
			return nil, fmt.Errorf("%v out of range", v)
		}
		if len(def.Choices) > 0 && !slices.ContainsFunc(def.Choices, func(c *discordgo.ApplicationCommandOptionChoice) bool {
			cf, ok := toFloat(c.Value)
			return ok && cf == f
		}) {
			return nil, fmt.Errorf("%v is not one of the choices", v)
		}
		if def.Type == discordgo.ApplicationCommandOptionInteger {
			return int64(f), nil
		}
		return f, nil
	case discordgo.ApplicationCommandOptionBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want a bool, got %T", v)
		}
		return b, nil
	case discordgo.ApplicationCommandOptionUser:
		return s.resolveUserLocked(v, ch, res)
	case discordgo.ApplicationCommandOptionChannel:
		id := idOf(v)
		c, ok := s.channels[id]
		if !ok {
			return nil, fmt.Errorf("unknown channel %q", id)
		}
		if len(def.ChannelTypes) > 0 && !slices.Contains(def.ChannelTypes, c.c.Type) {
			return nil, fmt.Errorf("channel type %d not allowed", c.c.Type)
		}
		if res.Channels == nil {
			res.Channels = map[string]any{}
		}
		pc := map[string]any{"id": c.c.ID, "name": c.c.Name, "type": c.c.Type, "permissions": formatInt(allPermissions)}
		if c.c.ParentID != "" {
			pc["parent_id"] = c.c.ParentID
		}
		if c.c.ThreadMetadata != nil {
			pc["thread_metadata"] = c.c.ThreadMetadata
		}
		res.Channels[id] = pc
		return id, nil
	case discordgo.ApplicationCommandOptionRole:
		return s.resolveRoleLocked(idOf(v), ch, res)
	case discordgo.ApplicationCommandOptionMentionable:
		id := idOf(v)
		if _, ok := s.users[id]; ok {
			return s.resolveUserLocked(id, ch, res)
		}
		return s.resolveRoleLocked(id, ch, res)
	case discordgo.ApplicationCommandOptionAttachment:
		f, ok := v.(File)
		if !ok {
			return nil, fmt.Errorf("want a discordtest.File, got %T", v)
		}
		ct := f.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		atts := s.attachLocked(&spec{uploads: []upload{{filename: f.Name, contentType: ct, data: f.Data}}}, ch.c.ID, true)
		if res.Attachments == nil {
			res.Attachments = map[string]*discordgo.MessageAttachment{}
		}
		res.Attachments[atts[0].ID] = atts[0]
		return atts[0].ID, nil
	}
	return nil, fmt.Errorf("unsupported option type %d", def.Type)
}

func (s *Server) resolveUserLocked(v any, ch *channel, res *resolved) (any, error) {
	var u *discordgo.User
	if du, ok := v.(*discordgo.User); ok {
		u = s.addUserLocked(du)
	} else {
		var ok bool
		if u, ok = s.users[idOf(v)]; !ok {
			return nil, fmt.Errorf("unknown user %q", idOf(v))
		}
	}
	if res.Users == nil {
		res.Users = map[string]*discordgo.User{}
	}
	res.Users[u.ID] = deepCopy(u)
	if gl, ok := s.guilds[ch.c.GuildID]; ok {
		if m := s.memberCopyLocked(gl, u.ID, false); m != nil {
			m.Permissions = s.permissionsLocked(gl, u.ID)
			if res.Members == nil {
				res.Members = map[string]*discordgo.Member{}
			}
			res.Members[u.ID] = m
		}
	}
	return u.ID, nil
}

func (s *Server) resolveRoleLocked(id string, ch *channel, res *resolved) (any, error) {
	gl, ok := s.guilds[ch.c.GuildID]
	if !ok {
		return nil, fmt.Errorf("role %q: not in a guild", id)
	}
	for _, r := range gl.roles {
		if r.ID == id {
			if res.Roles == nil {
				res.Roles = map[string]*discordgo.Role{}
			}
			res.Roles[id] = deepCopy(r)
			return id, nil
		}
	}
	return nil, fmt.Errorf("unknown role %q", id)
}

func idOf(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case *discordgo.User:
		return x.ID
	case *discordgo.Channel:
		return x.ID
	case *discordgo.Role:
		return x.ID
	case *discordgo.Member:
		if x.User != nil {
			return x.User.ID
		}
	}
	return fmt.Sprint(v)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// ButtonClick is a user pressing a button.
type ButtonClick struct {
	// MessageID is the message carrying the button (ephemeral ones too).
	MessageID string
	CustomID  string
	User      *discordgo.User
}

// ClickButton dispatches INTERACTION_CREATE type 3 for an enabled,
// non-link button of a message; the interaction carries the message.
func (s *Server) ClickButton(bc ButtonClick) *discordgo.Interaction {
	s.mu.Lock()
	out, err := s.componentLocked(bc.MessageID, bc.CustomID, bc.User, nil)
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

// SelectChoice is a user choosing values in a select menu.
type SelectChoice struct {
	MessageID string
	CustomID  string
	User      *discordgo.User
	Values    []string
}

// ChooseSelect dispatches INTERACTION_CREATE type 3 for a select menu of a
// message; for a string select the values must be among its options.
func (s *Server) ChooseSelect(sc SelectChoice) *discordgo.Interaction {
	s.mu.Lock()
	vals := sc.Values
	if vals == nil {
		vals = []string{}
	}
	out, err := s.componentLocked(sc.MessageID, sc.CustomID, sc.User, vals)
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

func (s *Server) componentLocked(msgID, customID string, user *discordgo.User, values []string) (*discordgo.Interaction, error) {
	m, ok := s.messages[msgID]
	if !ok || m.deleted {
		return nil, fmt.Errorf("unknown message %q", msgID)
	}
	if user == nil {
		return nil, errors.New("the interaction needs a User")
	}
	var found discordgo.MessageComponent
	var walk func([]discordgo.MessageComponent)
	walk = func(cs []discordgo.MessageComponent) {
		for _, c := range cs {
			switch v := c.(type) {
			case *discordgo.ActionsRow:
				walk(v.Components)
			case *discordgo.Button:
				if v.CustomID == customID {
					found = v
				}
			case *discordgo.SelectMenu:
				if v.CustomID == customID {
					found = v
				}
			}
		}
	}
	walk(m.m.Components)
	data := map[string]any{"custom_id": customID}
	switch v := found.(type) {
	case nil:
		return nil, fmt.Errorf("message %s has no component %q", msgID, customID)
	case *discordgo.Button:
		if values != nil {
			return nil, fmt.Errorf("%q is a button", customID)
		}
		if v.Disabled {
			return nil, fmt.Errorf("button %q is disabled", customID)
		}
		data["component_type"] = discordgo.ButtonComponent
	case *discordgo.SelectMenu:
		if values == nil {
			return nil, fmt.Errorf("%q is a select menu", customID)
		}
		if v.Disabled {
			return nil, fmt.Errorf("select %q is disabled", customID)
		}
		minV, maxV := 1, 1
		if v.MinValues != nil {
			minV = *v.MinValues
		}
		if v.MaxValues > 0 {
			maxV = v.MaxValues
		}
		if len(values) < minV || len(values) > maxV {
			return nil, fmt.Errorf("select %q takes %d to %d values", customID, minV, maxV)
		}
		typ := discordgo.ComponentType(v.MenuType)
		if typ == 0 {
			typ = discordgo.SelectMenuComponent
		}
		if typ == discordgo.SelectMenuComponent {
			for _, val := range values {
				if !slices.ContainsFunc(v.Options, func(o discordgo.SelectMenuOption) bool { return o.Value == val }) {
					return nil, fmt.Errorf("select %q has no option %q", customID, val)
				}
			}
		}
		data["component_type"] = typ
		data["values"] = values
		data["resolved"] = map[string]any{}
	}
	ch := s.channels[m.m.ChannelID]
	_, out := s.newInteractionLocked(discordgo.InteractionMessageComponent, ch, user, data, m, "")
	return out, nil
}

// ModalSubmit is a user submitting a modal the bot opened.
type ModalSubmit struct {
	// CustomID is the modal's custom_id.
	CustomID string
	// User defaults to the user the modal was shown to.
	User *discordgo.User
	// Values maps text input custom_ids to what the user typed; inputs
	// left out are submitted empty.
	Values map[string]string
}

// SubmitModal dispatches INTERACTION_CREATE type 5 for the latest modal
// (callback type 9) with that custom_id, checking required inputs and
// lengths. The interaction is in the modal's channel; a modal opened from a
// component also carries that component's message.
func (s *Server) SubmitModal(ms ModalSubmit) *discordgo.Interaction {
	s.mu.Lock()
	out, err := s.submitModalLocked(ms)
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	return out
}

func (s *Server) submitModalLocked(ms ModalSubmit) (*discordgo.Interaction, error) {
	var src *interaction
	for i := len(s.intOrder) - 1; i >= 0; i-- {
		it := s.interactions[s.intOrder[i]]
		if it.resp != nil && it.resp.Type == discordgo.InteractionResponseModal && it.resp.Data != nil &&
			it.resp.Data.CustomID == ms.CustomID && (ms.User == nil || ms.User.ID == it.user.ID) {
			src = it
			break
		}
	}
	if src == nil {
		return nil, fmt.Errorf("no modal %q was opened", ms.CustomID)
	}
	used := map[string]bool{}
	var rows []map[string]any
	for _, c := range src.resp.Data.Components {
		row, ok := c.(*discordgo.ActionsRow)
		if !ok {
			continue
		}
		var inner []map[string]any
		for _, ic := range row.Components {
			ti, ok := ic.(*discordgo.TextInput)
			if !ok {
				continue
			}
			val, given := ms.Values[ti.CustomID]
			if !given {
				val = ti.Value
			}
			used[ti.CustomID] = true
			n := utf8.RuneCountInString(val)
			if ti.Required && n == 0 {
				return nil, fmt.Errorf("modal %q: input %q is required", ms.CustomID, ti.CustomID)
			}
			if n > 0 && ((ti.MinLength > 0 && n < ti.MinLength) || (ti.MaxLength > 0 && n > ti.MaxLength) || n > 4000) {
				return nil, fmt.Errorf("modal %q: input %q length %d out of range", ms.CustomID, ti.CustomID, n)
			}
			inner = append(inner, map[string]any{"type": discordgo.TextInputComponent, "custom_id": ti.CustomID, "value": val})
		}
		rows = append(rows, map[string]any{"type": discordgo.ActionsRowComponent, "components": inner})
	}
	for k := range ms.Values {
		if !used[k] {
			return nil, fmt.Errorf("modal %q has no input %q", ms.CustomID, k)
		}
	}
	user := src.user
	if ms.User != nil {
		user = ms.User
	}
	var source *message
	if src.sourceMsg != "" {
		if m, ok := s.messages[src.sourceMsg]; ok && !m.deleted {
			source = m
		}
	}
	data := map[string]any{"custom_id": ms.CustomID, "components": rows}
	_, out := s.newInteractionLocked(discordgo.InteractionModalSubmit, s.channels[src.channelID], user, data, source, "")
	return out, nil
}
