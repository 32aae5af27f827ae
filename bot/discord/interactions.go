package discord

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/hordechat/hordechat/bot"
)

// Custom ids of the components the adapter makes.
const (
	buttonPrefix = "hc:b:" // + bot.Button.ID
	modalPrefix  = "hc:m:" // + the name of a Secret command
)

// Discord's limits on what the adapter renders.
const (
	maxDescription = 100
	maxChoices     = 25
	maxStringLen   = 6000
	maxModalTitle  = 45
	maxInputLabel  = 45
	maxInputLen    = 4000
	maxModalInputs = 5
)

// renderCommands turns the registry into slash commands. A Secret command
// has no options on Discord: its values are asked in a modal, so they
// never sit in the chat box or in the slash command's options.
func renderCommands(reg *bot.Registry) []*discordgo.ApplicationCommand {
	var out []*discordgo.ApplicationCommand
	for _, c := range reg.All() {
		ac := &discordgo.ApplicationCommand{
			Type: discordgo.ChatApplicationCommand, Name: c.Name,
			Description: truncateRunes(firstNonEmpty(c.Description, c.Name), maxDescription),
			Options:     []*discordgo.ApplicationCommandOption{},
		}
		if !c.Secret {
			for _, o := range c.Options {
				ac.Options = append(ac.Options, renderOption(o))
			}
			// Discord wants required options first.
			slices.SortStableFunc(ac.Options, func(x, y *discordgo.ApplicationCommandOption) int {
				switch {
				case x.Required == y.Required:
					return 0
				case x.Required:
					return -1
				}
				return 1
			})
		}
		out = append(out, ac)
	}
	return out
}

func renderOption(o bot.Option) *discordgo.ApplicationCommandOption {
	ao := &discordgo.ApplicationCommandOption{
		Name: o.Name, Description: truncateRunes(firstNonEmpty(o.Description, o.Name), maxDescription),
		Required: o.Required, Autocomplete: o.Autocomplete && len(o.Choices) == 0,
	}
	switch o.Type {
	case bot.Integer:
		ao.Type = discordgo.ApplicationCommandOptionInteger
	case bot.Number:
		ao.Type = discordgo.ApplicationCommandOptionNumber
	case bot.Bool:
		ao.Type = discordgo.ApplicationCommandOptionBoolean
	default:
		ao.Type = discordgo.ApplicationCommandOptionString
		if o.MaxLength > 0 {
			ao.MaxLength = min(o.MaxLength, maxStringLen)
		}
	}
	if o.Type == bot.Integer || o.Type == bot.Number {
		if o.Min != nil {
			v := *o.Min
			ao.MinValue = &v
		}
		if o.Max != nil {
			ao.MaxValue = *o.Max
		}
	}
	for i, ch := range o.Choices {
		if i == maxChoices {
			break
		}
		if v, ok := choiceValue(o.Type, ch.Value); ok {
			ao.Choices = append(ao.Choices, &discordgo.ApplicationCommandOptionChoice{Name: truncateRunes(firstNonEmpty(ch.Name, ch.Value), maxDescription), Value: v})
		}
	}
	return ao
}

// choiceValue types a choice for its option (Discord checks it).
func choiceValue(t bot.OptionType, v string) (any, bool) {
	switch t {
	case bot.Integer:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	case bot.Number:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	case bot.Bool:
		return nil, false
	}
	return truncateRunes(v, maxDescription), v != ""
}

// registerCommands overwrites the application's commands with the
// registry's, globally or in discord.guild_id. Discord keeps ids and only
// bumps versions when a definition changed, so doing it at every start is
// idempotent.
func (a *Adapter) registerCommands(ctx context.Context, app string) error {
	cmds := renderCommands(a.engine.Commands())
	got, err := a.s.ApplicationCommandBulkOverwrite(app, a.cfg.GuildID, cmds, discordgo.WithContext(ctx))
	if err != nil {
		return scrub(err)
	}
	scope := "global"
	if a.cfg.GuildID != "" {
		scope = "guild " + a.cfg.GuildID
	}
	a.log.Info("slash commands registered", "count", len(got), "scope", scope)
	return nil
}

func (a *Adapter) onInteraction(_ *discordgo.Session, ic *discordgo.InteractionCreate) {
	if ic.Interaction == nil {
		return
	}
	i := ic.Interaction
	a.enqueue("i:"+i.ID, func() {
		ctx, cancel := a.opCtx()
		defer cancel()
		switch i.Type {
		case discordgo.InteractionApplicationCommand:
			a.onCommand(ctx, i)
		case discordgo.InteractionApplicationCommandAutocomplete:
			a.onAutocomplete(ctx, i)
		case discordgo.InteractionMessageComponent:
			a.onComponent(ctx, i)
		case discordgo.InteractionModalSubmit:
			a.onModal(ctx, i)
		}
	})
}

// callbackBody is an interaction callback; data stays as given (an empty
// choices list must be sent as [], which discordgo's type omits).
type callbackBody struct {
	Type discordgo.InteractionResponseType `json:"type"`
	Data any                               `json:"data,omitempty"`
}

// respond sends the interaction callback; Discord wants it within 3 s.
func (a *Adapter) respond(ctx context.Context, i *discordgo.Interaction, typ discordgo.InteractionResponseType, data any) error {
	endpoint := discordgo.EndpointInteractionResponse(i.ID, i.Token)
	if _, err := a.rest(ctx, http.MethodPost, endpoint, bucketShard(discordgo.EndpointAPI+"interactions", i.ID), callbackBody{Type: typ, Data: data}, nil); err != nil {
		a.log.Warn("answer interaction", "interaction", i.ID, "type", int(typ), "err", err)
		return err
	}
	return nil
}

type deferData struct {
	Flags discordgo.MessageFlags `json:"flags,omitempty"`
}

// interactionTarget is where the answers to an interaction go.
func (a *Adapter) interactionTarget(i *discordgo.Interaction, kind byte) target {
	issued, err := discordgo.SnowflakeTimestamp(i.ID)
	if err != nil {
		issued = a.clock.Now()
	}
	app := i.AppID
	if app == "" {
		app = a.application()
	}
	return target{channel: i.ChannelID, kind: kind, issued: issued, app: app, token: i.Token}
}

// incoming describes the interaction's user and place; a thread counts as
// its parent channel for the permission lists, as for messages.
func (a *Adapter) incoming(ctx context.Context, i *discordgo.Interaction, t target) bot.Incoming {
	in := bot.Incoming{Platform: Name, MessageID: i.ID, Target: t.String(), Server: i.GuildID, Channel: i.ChannelID}
	perms := int64(-1)
	if i.Member != nil {
		perms = i.Member.Permissions
	}
	in.Author = a.author(ctx, i.GuildID, i.User, i.Member, perms)
	if i.GuildID == "" {
		in.DM = true
		in.ConversationID = conversationID("", i.ChannelID)
		return in
	}
	in.ConversationID = conversationID(i.GuildID, i.ChannelID)
	if ch, err := a.channelInfo(ctx, i.ChannelID); err == nil && ch.thread() {
		in.Channel = ch.parent
	}
	return in
}

// onCommand acknowledges a slash command at once (deferred, ephemeral when
// the command is) and runs it; its replies edit the deferred response. A
// Secret command opens a modal instead.
func (a *Adapter) onCommand(ctx context.Context, i *discordgo.Interaction) {
	data := i.ApplicationCommandData()
	cmd, ok := a.engine.Commands().Get(data.Name)
	if !ok {
		_ = a.respond(ctx, i, discordgo.InteractionResponseChannelMessageWithSource, messageBody{
			Content: "I do not know that command any more. It should disappear from the list soon.", Flags: ephemeralFlag,
			Components: []discordgo.MessageComponent{}, AllowedMentions: noMentions()})
		return
	}
	if cmd.Secret {
		_ = a.respond(ctx, i, discordgo.InteractionResponseModal, modalFor(cmd))
		return
	}
	var dd deferData
	if cmd.Ephemeral {
		dd.Flags = ephemeralFlag
	}
	t := a.interactionTarget(i, kindCommand)
	if err := a.respond(ctx, i, discordgo.InteractionResponseDeferredChannelMessageWithSource, dd); err != nil {
		return
	}
	a.deferred(t, cmd.Ephemeral)
	in := a.incoming(ctx, i, t)
	call := a.call(cmd, in)
	args, err := commandArgs(cmd, data.Options)
	if err != nil {
		_ = call.Respond(ctx, bot.Outgoing{Text: err.Error() + ".", Ephemeral: true, Notice: true})
		return
	}
	call.Args = args
	a.engine.RunCommand(ctx, call)
}

func (a *Adapter) call(cmd *bot.Command, in bot.Incoming) *bot.Call {
	return &bot.Call{Command: cmd, In: in, Args: map[string]any{}, Prefix: "/", Respond: func(ctx context.Context, out bot.Outgoing) error {
		_, err := a.Send(ctx, in.Target, out)
		return err
	}}
}

// commandArgs converts Discord's typed options with bot.ConvertOption, so
// values are typed and checked as on every platform.
func commandArgs(cmd *bot.Command, opts []*discordgo.ApplicationCommandInteractionDataOption) (map[string]any, error) {
	args := map[string]any{}
	for _, o := range opts {
		decl, ok := option(cmd, o.Name)
		if !ok || o.Focused {
			continue
		}
		raw := rawValue(o.Value)
		if strings.TrimSpace(raw) == "" && decl.Type == bot.String {
			continue
		}
		v, err := bot.ConvertOption(decl, raw)
		if err != nil {
			return nil, fmt.Errorf("%s %w", decl.Name, err)
		}
		args[decl.Name] = v
	}
	return args, nil
}

func option(cmd *bot.Command, name string) (bot.Option, bool) {
	for _, o := range cmd.Options {
		if o.Name == name {
			return o, true
		}
	}
	return bot.Option{}, false
}

// rawValue is an option value as text; numbers arrive as float64.
func rawValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// modal is the callback data of a modal.
type modal struct {
	CustomID   string                       `json:"custom_id"`
	Title      string                       `json:"title"`
	Components []discordgo.MessageComponent `json:"components"`
}

// modalFor asks a Secret command's options in text inputs.
func modalFor(cmd *bot.Command) modal {
	m := modal{CustomID: modalPrefix + cmd.Name, Title: truncateRunes(firstNonEmpty(cmd.Description, cmd.Name), maxModalTitle)}
	for i, o := range cmd.Options {
		if i == maxModalInputs {
			break
		}
		max := maxInputLen
		if o.MaxLength > 0 {
			max = min(o.MaxLength, maxInputLen)
		}
		m.Components = append(m.Components, discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.TextInput{
			CustomID: o.Name, Label: truncateRunes(firstNonEmpty(o.Description, o.Name), maxInputLabel),
			Style: discordgo.TextInputShort, Required: o.Required, MaxLength: max,
		}}})
	}
	return m
}

// onModal runs a Secret command with what was typed in its modal and
// answers ephemerally. The values are never logged nor echoed: a
// conversion error names the field only.
func (a *Adapter) onModal(ctx context.Context, i *discordgo.Interaction) {
	data := i.ModalSubmitData()
	name, ok := strings.CutPrefix(data.CustomID, modalPrefix)
	cmd, found := a.engine.Commands().Get(name)
	if !ok || !found || !cmd.Secret {
		_ = a.respond(ctx, i, discordgo.InteractionResponseChannelMessageWithSource, messageBody{
			Content: "This form is no longer valid; run the command again.", Flags: ephemeralFlag,
			Components: []discordgo.MessageComponent{}, AllowedMentions: noMentions()})
		return
	}
	t := a.interactionTarget(i, kindCommand)
	if err := a.respond(ctx, i, discordgo.InteractionResponseDeferredChannelMessageWithSource, deferData{Flags: ephemeralFlag}); err != nil {
		return
	}
	a.deferred(t, true)
	values := map[string]string{}
	for _, c := range data.Components {
		row, ok := c.(*discordgo.ActionsRow)
		if !ok {
			continue
		}
		for _, rc := range row.Components {
			if ti, ok := rc.(*discordgo.TextInput); ok {
				values[ti.CustomID] = ti.Value
			}
		}
	}
	call := a.call(cmd, a.incoming(ctx, i, t))
	for _, o := range cmd.Options {
		raw := strings.TrimSpace(values[o.Name])
		if raw == "" {
			if o.Required {
				_ = call.Respond(ctx, bot.Outgoing{Text: fmt.Sprintf("%s is required.", firstNonEmpty(o.Description, o.Name)), Ephemeral: true, Notice: true})
				return
			}
			continue
		}
		v, err := bot.ConvertOption(o, raw)
		if err != nil {
			_ = call.Respond(ctx, bot.Outgoing{Text: fmt.Sprintf("%s is not valid; check it and try again.", firstNonEmpty(o.Description, o.Name)), Ephemeral: true, Notice: true})
			return
		}
		call.Args[o.Name] = v
	}
	a.engine.RunCommand(ctx, call)
}

// autocompleteData is the callback data of type 8.
type autocompleteData struct {
	Choices []*discordgo.ApplicationCommandOptionChoice `json:"choices"`
}

// onAutocomplete answers with the command's suggestions for the focused
// option.
func (a *Adapter) onAutocomplete(ctx context.Context, i *discordgo.Interaction) {
	data := i.ApplicationCommandData()
	out := autocompleteData{Choices: []*discordgo.ApplicationCommandOptionChoice{}}
	cmd, ok := a.engine.Commands().Get(data.Name)
	if !ok {
		_ = a.respond(ctx, i, discordgo.InteractionApplicationCommandAutocompleteResult, out)
		return
	}
	var focused *discordgo.ApplicationCommandInteractionDataOption
	for _, o := range data.Options {
		if o.Focused {
			focused = o
		}
	}
	decl, known := bot.Option{}, false
	if focused != nil {
		decl, known = option(cmd, focused.Name)
	}
	if known {
		// Bound the engine's time: Discord drops answers after 3 s.
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		call := a.call(cmd, a.incoming(cctx, i, a.interactionTarget(i, kindComponent)))
		call.Respond = func(context.Context, bot.Outgoing) error { return nil }
		call.Args, _ = commandArgs(cmd, data.Options)
		if call.Args == nil {
			call.Args = map[string]any{}
		}
		for _, ch := range a.engine.Complete(cctx, call, decl.Name, rawValue(focused.Value)) {
			if len(out.Choices) == maxChoices {
				break
			}
			if v, ok := choiceValue(decl.Type, ch.Value); ok {
				out.Choices = append(out.Choices, &discordgo.ApplicationCommandOptionChoice{Name: truncateRunes(firstNonEmpty(ch.Name, ch.Value), maxDescription), Value: v})
			}
		}
		cancel()
	}
	_ = a.respond(ctx, i, discordgo.InteractionApplicationCommandAutocompleteResult, out)
}

// onComponent handles a click on a button the engine attached: it
// acknowledges with a deferred update (the message stays as it is) and
// hands the button to the engine with an Incoming for that channel or
// thread. Ephemeral answers (refusals) go to the clicker only.
func (a *Adapter) onComponent(ctx context.Context, i *discordgo.Interaction) {
	data := i.MessageComponentData()
	if err := a.respond(ctx, i, discordgo.InteractionResponseDeferredMessageUpdate, nil); err != nil {
		return
	}
	id, ok := strings.CutPrefix(data.CustomID, buttonPrefix)
	if !ok || id == "" {
		return
	}
	a.engine.Button(ctx, a.incoming(ctx, i, a.interactionTarget(i, kindComponent)), id)
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
