package discordtest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

func testCommands() []*discordgo.ApplicationCommand {
	return []*discordgo.ApplicationCommand{
		{Name: "ask", Description: "Ask the horde", Options: []*discordgo.ApplicationCommandOption{
			{Type: discordgo.ApplicationCommandOptionString, Name: "prompt", Description: "What to ask", Required: true, MaxLength: 500},
			{Type: discordgo.ApplicationCommandOptionInteger, Name: "max_tokens", Description: "Length", MinValue: ptr(1.0), MaxValue: 512},
			{Type: discordgo.ApplicationCommandOptionBoolean, Name: "private", Description: "Only you see it"},
			{Type: discordgo.ApplicationCommandOptionNumber, Name: "temperature", Description: "Sampling"},
			{Type: discordgo.ApplicationCommandOptionString, Name: "model", Description: "Model", Autocomplete: true},
			{Type: discordgo.ApplicationCommandOptionUser, Name: "for", Description: "Someone"},
			{Type: discordgo.ApplicationCommandOptionChannel, Name: "where", Description: "A channel", ChannelTypes: []discordgo.ChannelType{discordgo.ChannelTypeGuildText}},
			{Type: discordgo.ApplicationCommandOptionRole, Name: "role", Description: "A role"},
			{Type: discordgo.ApplicationCommandOptionAttachment, Name: "file", Description: "A file"},
		}},
		{Name: "config", Description: "Settings", Options: []*discordgo.ApplicationCommandOption{
			{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "set", Description: "Set a value", Options: []*discordgo.ApplicationCommandOption{
				{Type: discordgo.ApplicationCommandOptionString, Name: "key", Description: "Key", Required: true, Choices: []*discordgo.ApplicationCommandOptionChoice{
					{Name: "Model", Value: "model"}, {Name: "Length", Value: "length"},
				}},
			}},
			{Type: discordgo.ApplicationCommandOptionSubCommandGroup, Name: "apikey", Description: "Your Horde key", Options: []*discordgo.ApplicationCommandOption{
				{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "link", Description: "Link a key"},
			}},
		}},
		{Name: "feedback", Description: "Send feedback"},
	}
}

// setupCommands opens a session and registers testCommands globally.
func setupCommands(t *testing.T, w *world) (*discordgo.Session, <-chan *discordgo.InteractionCreate) {
	t.Helper()
	dg := mustSession(t, w.fake, allIntents, false)
	ics := events[*discordgo.InteractionCreate](dg)
	must[struct{}](t)(struct{}{}, dg.Open())
	must[[]*discordgo.ApplicationCommand](t)(dg.ApplicationCommandBulkOverwrite(w.fake.ApplicationID(), "", testCommands()))
	return dg, ics
}

func TestCommandsBulkOverwrite(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, 0, false)
	app := w.fake.ApplicationID()
	first := must[[]*discordgo.ApplicationCommand](t)(dg.ApplicationCommandBulkOverwrite(app, "", testCommands()))
	second := must[[]*discordgo.ApplicationCommand](t)(dg.ApplicationCommandBulkOverwrite(app, "", testCommands()))
	if len(first) != 3 || len(second) != 3 {
		t.Fatalf("%d and %d commands", len(first), len(second))
	}
	for i := range first {
		if first[i].ID == "" || first[i].ID != second[i].ID || first[i].Version != second[i].Version ||
			first[i].ApplicationID != app || first[i].Type != discordgo.ChatApplicationCommand {
			t.Fatalf("not idempotent: %+v vs %+v", first[i], second[i])
		}
	}
	changed := testCommands()
	changed[2].Description = "Tell us"
	third := must[[]*discordgo.ApplicationCommand](t)(dg.ApplicationCommandBulkOverwrite(app, "", changed[1:]))
	if len(third) != 2 || third[1].ID != first[2].ID || third[1].Version == first[2].Version || third[0].Version != first[1].Version {
		t.Fatalf("after change %+v", third)
	}
	got := must[[]*discordgo.ApplicationCommand](t)(dg.ApplicationCommands(app, ""))
	if len(got) != 2 || got[0].Name != "config" || len(got[0].Options) != 2 {
		t.Fatalf("GET %+v", got)
	}
	if len(w.fake.Commands("")) != 2 {
		t.Fatal("Commands")
	}
	// Guild commands are separate.
	gc := must[[]*discordgo.ApplicationCommand](t)(dg.ApplicationCommandBulkOverwrite(app, w.guild.ID, testCommands()[:1]))
	if len(gc) != 1 || gc[0].GuildID != w.guild.ID || gc[0].ID == first[0].ID {
		t.Fatalf("guild commands %+v", gc)
	}
	one := must[*discordgo.ApplicationCommand](t)(dg.ApplicationCommandCreate(app, "", &discordgo.ApplicationCommand{Name: "help", Description: "Help"}))
	if len(must[[]*discordgo.ApplicationCommand](t)(dg.ApplicationCommands(app, ""))) != 3 {
		t.Fatal("create did not add")
	}
	must[struct{}](t)(struct{}{}, dg.ApplicationCommandDelete(app, "", one.ID))
	restErr(t, dg.ApplicationCommandDelete(app, "", one.ID), 404, 10063)
	_, err := dg.ApplicationCommandBulkOverwrite("1", "", testCommands())
	restErr(t, err, 403, 50001)
	_, err = dg.ApplicationCommandBulkOverwrite(app, "404", testCommands())
	restErr(t, err, 403, 50001)

	opt := func(o ...*discordgo.ApplicationCommandOption) []*discordgo.ApplicationCommandOption { return o }
	str := discordgo.ApplicationCommandOptionString
	cases := []struct {
		name string
		cmds []*discordgo.ApplicationCommand
		want string
	}{
		{"uppercase name", []*discordgo.ApplicationCommand{{Name: "Ask", Description: "d"}}, `"0":{"name"`},
		{"space in name", []*discordgo.ApplicationCommand{{Name: "ask me", Description: "d"}}, "APPLICATION_COMMAND_INVALID_NAME"},
		{"missing description", []*discordgo.ApplicationCommand{{Name: "ask"}}, `"description":{"_errors"`},
		{"duplicate", []*discordgo.ApplicationCommand{{Name: "a", Description: "d"}, {Name: "a", Description: "d"}}, "APPLICATION_COMMANDS_DUPLICATE_NAME"},
		{"required after optional", []*discordgo.ApplicationCommand{{Name: "a", Description: "d", Options: opt(
			&discordgo.ApplicationCommandOption{Type: str, Name: "x", Description: "x"},
			&discordgo.ApplicationCommandOption{Type: str, Name: "y", Description: "y", Required: true})}}, "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID"},
		{"autocomplete with choices", []*discordgo.ApplicationCommand{{Name: "a", Description: "d", Options: opt(
			&discordgo.ApplicationCommandOption{Type: str, Name: "x", Description: "x", Autocomplete: true,
				Choices: []*discordgo.ApplicationCommandOptionChoice{{Name: "n", Value: "v"}}})}}, "APPLICATION_COMMAND_AUTOCOMPLETE_CHOICES"},
		{"long description", []*discordgo.ApplicationCommand{{Name: "a", Description: strings.Repeat("d", 101)}}, "BASE_TYPE_BAD_LENGTH"},
		{"context menu with description", []*discordgo.ApplicationCommand{{Name: "Summarize", Type: discordgo.MessageApplicationCommand, Description: "no"}}, "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dg.ApplicationCommandBulkOverwrite(app, "", tc.cmds)
			re := restErr(t, err, 400, 50035)
			if !strings.Contains(string(re.ResponseBody), tc.want) {
				t.Fatalf("body %s lacks %s", re.ResponseBody, tc.want)
			}
		})
	}
	// A context-menu command with a capitalised name is fine.
	must[[]*discordgo.ApplicationCommand](t)(dg.ApplicationCommandBulkOverwrite(app, w.guild.ID,
		[]*discordgo.ApplicationCommand{{Name: "Summarize this", Type: discordgo.MessageApplicationCommand}}))
}

func TestSlashCommandDeferEditFollowup(t *testing.T) {
	w := newWorld(t)
	dg, ics := setupCommands(t, w)
	creates := events[*discordgo.MessageCreate](dg)
	updates := events[*discordgo.MessageUpdate](dg)
	ctx := testCtx(t)

	sent := w.fake.SlashCommand(SlashCommand{Name: "ask", ChannelID: w.text.ID, User: w.alice, Options: map[string]any{
		"prompt": "hello?", "max_tokens": 64, "private": false, "temperature": 0.7,
		"for": w.alice, "where": w.text.ID, "role": w.role.ID,
		"file": File{Name: "ctx.txt", ContentType: "text/plain", Data: []byte("context")},
	}})
	ic := recv(t, ics)
	if ic.ID != sent.ID || ic.Token != sent.Token || ic.Type != discordgo.InteractionApplicationCommand ||
		ic.AppID != w.fake.ApplicationID() || ic.GuildID != w.guild.ID || ic.ChannelID != w.text.ID || ic.Version != 1 {
		t.Fatalf("interaction %+v", ic.Interaction)
	}
	if ic.Member == nil || ic.Member.User.ID != w.alice.ID || ic.User != nil || ic.Member.Permissions&discordgo.PermissionAdministrator == 0 {
		t.Fatalf("member %+v user %+v", ic.Member, ic.User)
	}
	d := ic.ApplicationCommandData()
	if d.Name != "ask" || d.ID != w.fake.Commands("")[0].ID {
		t.Fatalf("data %+v", d)
	}
	if d.GetOption("prompt").StringValue() != "hello?" || d.GetOption("max_tokens").IntValue() != 64 ||
		d.GetOption("private").BoolValue() || d.GetOption("temperature").FloatValue() != 0.7 {
		t.Fatalf("options %+v", d.Options)
	}
	if d.GetOption("for").UserValue(nil).ID != w.alice.ID || d.Resolved.Users[w.alice.ID].Username != "alice" ||
		d.Resolved.Members[w.alice.ID] == nil || d.Resolved.Channels[w.text.ID].Name != "general" ||
		d.Resolved.Roles[w.role.ID].Name != "admins" {
		t.Fatalf("resolved %+v", d.Resolved)
	}
	att := d.Resolved.Attachments[d.GetOption("file").Value.(string)]
	if att == nil || att.Filename != "ctx.txt" || att.Size != 7 {
		t.Fatalf("attachment %+v", att)
	}

	// Defer (public), then edit the original, then an ephemeral follow-up.
	must[struct{}](t)(struct{}{}, dg.InteractionRespond(ic.Interaction, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseDeferredChannelMessageWithSource,
	}))
	loading := recv(t, creates)
	if loading.Flags&discordgo.MessageFlagsLoading == 0 || loading.Type != discordgo.MessageTypeChatInputCommand ||
		loading.Interaction == nil || loading.Interaction.User.ID != w.alice.ID || loading.WebhookID != w.fake.ApplicationID() {
		t.Fatalf("deferred message %+v", loading.Message)
	}
	err := dg.InteractionRespond(ic.Interaction, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: "again"}})
	re := restErr(t, err, 400, 40060)
	if re.Message.Message != "Interaction has already been acknowledged." {
		t.Fatalf("message %q", re.Message.Message)
	}
	w.fake.Advance(10 * time.Minute) // well after 3 s: editing is still fine
	edited := must[*discordgo.Message](t)(dg.InteractionResponseEdit(ic.Interaction, &discordgo.WebhookEdit{Content: ptr("Here is the answer.")}))
	if edited.Content != "Here is the answer." || edited.Flags&discordgo.MessageFlagsLoading != 0 || edited.ID != loading.ID {
		t.Fatalf("edited %+v", edited)
	}
	if u := recv(t, updates); u.ID != loading.ID || u.Content != "Here is the answer." {
		t.Fatalf("MESSAGE_UPDATE %+v", u.Message)
	}
	fu := must[*discordgo.Message](t)(dg.FollowupMessageCreate(ic.Interaction, true, &discordgo.WebhookParams{
		Content: "only you can see this", Flags: discordgo.MessageFlagsEphemeral,
	}))
	if fu.Flags&discordgo.MessageFlagsEphemeral == 0 || fu.ID == loading.ID {
		t.Fatalf("follow-up %+v", fu)
	}
	public := must[*discordgo.Message](t)(dg.FollowupMessageCreate(ic.Interaction, false, &discordgo.WebhookParams{Content: "for everyone"}))
	if public != nil {
		t.Fatal("discordgo returns nil without wait")
	}
	// The ephemeral follow-up never reached the gateway: the next
	// MESSAGE_CREATE is the public one.
	if c := recv(t, creates); c.Content != "for everyone" {
		t.Fatalf("next MESSAGE_CREATE %q", c.Content)
	}
	orig := must[*discordgo.Message](t)(dg.InteractionResponse(ic.Interaction))
	if orig.Content != "Here is the answer." {
		t.Fatalf("GET @original %+v", orig)
	}
	fuEdit := must[*discordgo.Message](t)(dg.FollowupMessageEdit(ic.Interaction, fu.ID, &discordgo.WebhookEdit{Content: ptr("still only you")}))
	if fuEdit.Content != "still only you" {
		t.Fatalf("follow-up edit %+v", fuEdit)
	}

	rec, err := w.fake.WaitResponse(ctx, ic.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Response.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource || rec.Response.Ephemeral ||
		rec.Original == nil || rec.Original.Content != "Here is the answer." || len(rec.Original.History) != 0 ||
		len(rec.Followups) != 2 || !rec.Followups[0].Ephemeral || rec.Followups[0].Content != "still only you" ||
		strings.Join(rec.Followups[0].History, "") != "only you can see this" || rec.Followups[1].Ephemeral {
		t.Fatalf("record %+v original %+v followups %+v", rec.Response, rec.Original, rec.Followups)
	}
	// In the channel: the original and the public follow-up, not the ephemeral one.
	var inChannel []string
	for _, m := range w.fake.Messages(w.text.ID) {
		inChannel = append(inChannel, m.Content)
	}
	if strings.Join(inChannel, "|") != "Here is the answer.|for everyone" {
		t.Fatalf("channel %v", inChannel)
	}
	must[struct{}](t)(struct{}{}, dg.InteractionResponseDelete(ic.Interaction))
	if _, err := dg.InteractionResponse(ic.Interaction); err == nil {
		t.Fatal("@original after delete")
	}
}

func TestInteractionDeadlines(t *testing.T) {
	w := newWorld(t)
	dg, _ := setupCommands(t, w)

	late := w.fake.SlashCommand(SlashCommand{Name: "feedback", ChannelID: w.text.ID, User: w.alice})
	w.fake.Advance(InteractionCallbackWindow + time.Millisecond)
	err := dg.InteractionRespond(late, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource})
	re := restErr(t, err, 404, 10062)
	if re.Message.Message != "Unknown interaction" {
		t.Fatalf("message %q", re.Message.Message)
	}

	onTime := w.fake.SlashCommand(SlashCommand{Name: "feedback", ChannelID: w.text.ID, User: w.alice})
	w.fake.Advance(InteractionCallbackWindow) // exactly 3 s is still in time
	must[struct{}](t)(struct{}{}, dg.InteractionRespond(onTime, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource, Data: &discordgo.InteractionResponseData{Content: "noted"}}))
	w.fake.Advance(InteractionTokenLifetime - InteractionCallbackWindow)
	must[*discordgo.Message](t)(dg.InteractionResponseEdit(onTime, &discordgo.WebhookEdit{Content: ptr("noted, thanks")}))
	w.fake.Advance(time.Millisecond)
	_, err = dg.InteractionResponseEdit(onTime, &discordgo.WebhookEdit{Content: ptr("too late")})
	re = restErr(t, err, 401, 50027)
	if re.Message.Message != "Invalid Webhook Token" {
		t.Fatalf("message %q", re.Message.Message)
	}
	_, err = dg.FollowupMessageCreate(onTime, true, &discordgo.WebhookParams{Content: "too late"})
	restErr(t, err, 401, 50027)
	_, err = dg.InteractionResponse(onTime)
	restErr(t, err, 401, 50027)
	restErr(t, dg.InteractionResponseDelete(onTime), 401, 50027)

	// A wrong token is an unknown interaction.
	fresh := w.fake.SlashCommand(SlashCommand{Name: "feedback", ChannelID: w.text.ID, User: w.alice})
	bad := *fresh
	bad.Token = "forged"
	restErr(t, dg.InteractionRespond(&bad, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource}), 404, 10062)
	// Follow-ups before the callback are refused.
	_, err = dg.FollowupMessageCreate(fresh, true, &discordgo.WebhookParams{Content: "early"})
	restErr(t, err, 404, 10015)
}

func TestCallbackTypeRules(t *testing.T) {
	w := newWorld(t)
	dg, _ := setupCommands(t, w)
	cases := []struct {
		name string
		resp *discordgo.InteractionResponse
		code int
	}{
		{"pong", &discordgo.InteractionResponse{Type: discordgo.InteractionResponsePong}, 50035},
		{"update message on a command", &discordgo.InteractionResponse{Type: discordgo.InteractionResponseUpdateMessage,
			Data: &discordgo.InteractionResponseData{Content: "x"}}, 50035},
		{"autocomplete result on a command", &discordgo.InteractionResponse{Type: discordgo.InteractionApplicationCommandAutocompleteResult,
			Data: &discordgo.InteractionResponseData{Choices: []*discordgo.ApplicationCommandOptionChoice{}}}, 50035},
		{"empty message", &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
			Data: &discordgo.InteractionResponseData{}}, 50006},
		{"too long", &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
			Data: &discordgo.InteractionResponseData{Content: strings.Repeat("x", 2001)}}, 50035},
		{"modal without title", &discordgo.InteractionResponse{Type: discordgo.InteractionResponseModal,
			Data: &discordgo.InteractionResponseData{CustomID: "m", Components: []discordgo.MessageComponent{
				discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.TextInput{CustomID: "t", Label: "T", Style: discordgo.TextInputShort}}}}}}, 50035},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := w.fake.SlashCommand(SlashCommand{Name: "feedback", ChannelID: w.text.ID, User: w.alice})
			restErr(t, dg.InteractionRespond(in, tc.resp), 400, tc.code)
			// A refused callback does not acknowledge.
			must[struct{}](t)(struct{}{}, dg.InteractionRespond(in, &discordgo.InteractionResponse{
				Type: discordgo.InteractionResponseChannelMessageWithSource, Data: &discordgo.InteractionResponseData{Content: "ok"}}))
		})
	}
}

func TestEphemeralReplyAndMultipartCallback(t *testing.T) {
	w := newWorld(t)
	dg, _ := setupCommands(t, w)
	in := w.fake.SlashCommand(SlashCommand{Name: "feedback", ChannelID: w.text.ID, User: w.alice})
	must[struct{}](t)(struct{}{}, dg.InteractionRespond(in, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{
			Content: "see file", Flags: discordgo.MessageFlagsEphemeral,
			Files: []*discordgo.File{{Name: "log.txt", ContentType: "text/plain", Reader: bytes.NewReader([]byte("log"))}},
		},
	}))
	rec, _ := w.fake.Interaction(in.ID)
	if !rec.Response.Ephemeral || rec.Original == nil || !rec.Original.Ephemeral || len(rec.Original.Files) != 1 ||
		string(rec.Original.Files[0].Data) != "log" || rec.Response.Data.Content != "see file" {
		t.Fatalf("record %+v original %+v", rec.Response, rec.Original)
	}
	if len(w.fake.Messages(w.text.ID)) != 0 {
		t.Fatal("ephemeral message in the channel")
	}
}

func TestFollowupReplacesDeferredLoading(t *testing.T) {
	w := newWorld(t)
	dg, _ := setupCommands(t, w)
	in := w.fake.SlashCommand(SlashCommand{Name: "feedback", ChannelID: w.text.ID, User: w.alice})
	must[struct{}](t)(struct{}{}, dg.InteractionRespond(in, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseDeferredChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Flags: discordgo.MessageFlagsEphemeral},
	}))
	m := must[*discordgo.Message](t)(dg.FollowupMessageCreate(in, true, &discordgo.WebhookParams{Content: "done"}))
	rec, _ := w.fake.Interaction(in.ID)
	if rec.Original == nil || rec.Original.ID != m.ID || rec.Original.Content != "done" || len(rec.Followups) != 0 ||
		!rec.Original.Ephemeral || rec.Original.Flags&discordgo.MessageFlagsLoading != 0 {
		t.Fatalf("original %+v followups %d", rec.Original, len(rec.Followups))
	}
	m2 := must[*discordgo.Message](t)(dg.FollowupMessageCreate(in, true, &discordgo.WebhookParams{Content: "second"}))
	if m2.ID == m.ID {
		t.Fatal("second follow-up replaced the original too")
	}
}

func TestSubcommandsAndValidationOfOptions(t *testing.T) {
	w := newWorld(t)
	_, ics := setupCommands(t, w)
	w.fake.SlashCommand(SlashCommand{Name: "config set", ChannelID: w.text.ID, User: w.alice, Options: map[string]any{"key": "model"}})
	d := recv(t, ics).ApplicationCommandData()
	if d.Name != "config" || len(d.Options) != 1 || d.Options[0].Type != discordgo.ApplicationCommandOptionSubCommand ||
		d.Options[0].Name != "set" || d.Options[0].GetOption("key").StringValue() != "model" {
		t.Fatalf("sub-command data %+v", d.Options)
	}
	w.fake.SlashCommand(SlashCommand{Name: "config apikey link", ChannelID: w.text.ID, User: w.alice})
	d = recv(t, ics).ApplicationCommandData()
	if len(d.Options) != 1 || d.Options[0].Type != discordgo.ApplicationCommandOptionSubCommandGroup ||
		d.Options[0].Options[0].Name != "link" {
		t.Fatalf("group data %+v", d.Options)
	}

	// Misuse fails the test; NewServer panics instead, which shows here.
	bad := []SlashCommand{
		{Name: "nope", ChannelID: w.text.ID, User: w.alice},
		{Name: "ask", ChannelID: w.text.ID, User: w.alice},                                                              // required prompt missing
		{Name: "ask", ChannelID: w.text.ID, User: w.alice, Options: map[string]any{"prompt": 3}},                        // wrong type
		{Name: "ask", ChannelID: w.text.ID, User: w.alice, Options: map[string]any{"prompt": "x", "max_tokens": 1000}},  // max
		{Name: "ask", ChannelID: w.text.ID, User: w.alice, Options: map[string]any{"prompt": "x", "max_tokens": 1.5}},   // not an integer
		{Name: "ask", ChannelID: w.text.ID, User: w.alice, Options: map[string]any{"prompt": "x", "unknown": 1}},        // unknown option
		{Name: "ask", ChannelID: w.text.ID, User: w.alice, Options: map[string]any{"prompt": "x", "where": w.news.ID}},  // channel type
		{Name: "config set", ChannelID: w.text.ID, User: w.alice, Options: map[string]any{"key": "colour"}},             // not a choice
		{Name: "config", ChannelID: w.text.ID, User: w.alice},                                                           // needs a sub-command
		{Name: "ask", ChannelID: "404", User: w.alice, Options: map[string]any{"prompt": "x"}},                          // unknown channel
		{Name: "ask", ChannelID: w.text.ID, User: w.alice, Options: map[string]any{"prompt": strings.Repeat("p", 501)}}, // max length
	}
	for _, sc := range bad {
		ns := NewServer(Options{})
		ns.mu.Lock()
		ns.commands[""] = testCommands()
		for _, c := range ns.commands[""] {
			c.Type = discordgo.ChatApplicationCommand
		}
		ns.mu.Unlock()
		g := ns.AddGuild(&discordgo.Guild{ID: w.guild.ID})
		ns.AddChannel(&discordgo.Channel{ID: w.text.ID, GuildID: g.ID})
		ns.AddChannel(&discordgo.Channel{ID: w.news.ID, GuildID: g.ID, Type: discordgo.ChannelTypeGuildNews})
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SlashCommand(%+v) did not fail", sc)
				}
			}()
			ns.SlashCommand(sc)
		}()
		ns.Close()
	}
}

func TestModalRoundTrip(t *testing.T) {
	w := newWorld(t)
	dg, ics := setupCommands(t, w)
	in := w.fake.SlashCommand(SlashCommand{Name: "feedback", ChannelID: w.text.ID, User: w.alice})
	recv(t, ics)
	must[struct{}](t)(struct{}{}, dg.InteractionRespond(in, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseModal,
		Data: &discordgo.InteractionResponseData{CustomID: "feedback_modal", Title: "Feedback", Components: []discordgo.MessageComponent{
			discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.TextInput{
				CustomID: "text", Label: "What do you think?", Style: discordgo.TextInputParagraph, Required: true, MaxLength: 1000}}},
			discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.TextInput{
				CustomID: "email", Label: "Email", Style: discordgo.TextInputShort}}},
		}},
	}))
	rec, _ := w.fake.Interaction(in.ID)
	if rec.Response.Type != discordgo.InteractionResponseModal || rec.Response.Data.CustomID != "feedback_modal" || rec.Original != nil {
		t.Fatalf("modal record %+v", rec.Response)
	}
	sub := w.fake.SubmitModal(ModalSubmit{CustomID: "feedback_modal", Values: map[string]string{"text": "great bot"}})
	ic := recvWhere(t, ics, func(ic *discordgo.InteractionCreate) bool { return ic.ID == sub.ID })
	md := ic.ModalSubmitData()
	row0 := md.Components[0].(*discordgo.ActionsRow)
	row1 := md.Components[1].(*discordgo.ActionsRow)
	if ic.Type != discordgo.InteractionModalSubmit || md.CustomID != "feedback_modal" ||
		row0.Components[0].(*discordgo.TextInput).Value != "great bot" || row1.Components[0].(*discordgo.TextInput).Value != "" ||
		ic.Member.User.ID != w.alice.ID || ic.ChannelID != w.text.ID {
		t.Fatalf("modal submit %+v", md)
	}
	// A modal cannot answer a modal submit.
	restErr(t, dg.InteractionRespond(sub, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseModal,
		Data: &discordgo.InteractionResponseData{CustomID: "x", Title: "x"}}), 400, 50035)
	must[struct{}](t)(struct{}{}, dg.InteractionRespond(sub, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: "Thanks!", Flags: discordgo.MessageFlagsEphemeral},
	}))
	if r, _ := w.fake.Interaction(sub.ID); r.Original == nil || r.Original.Content != "Thanks!" || !r.Original.Ephemeral {
		t.Fatalf("reply to modal %+v", r.Original)
	}
	// Required input missing.
	ns := NewServer(Options{})
	defer ns.Close()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("SubmitModal of an unknown modal did not fail")
			}
		}()
		ns.SubmitModal(ModalSubmit{CustomID: "feedback_modal"})
	}()
}

func TestButtonsAndSelects(t *testing.T) {
	w := newWorld(t)
	dg, ics := setupCommands(t, w)
	updates := events[*discordgo.MessageUpdate](dg)
	m := must[*discordgo.Message](t)(dg.ChannelMessageSendComplex(w.text.ID, &discordgo.MessageSend{
		Content: "Pick one",
		Components: []discordgo.MessageComponent{
			discordgo.ActionsRow{Components: []discordgo.MessageComponent{
				discordgo.Button{Label: "Retry", CustomID: "retry", Style: discordgo.SecondaryButton},
				discordgo.Button{Label: "Docs", Style: discordgo.LinkButton, URL: "https://aihorde.net"},
			}},
			discordgo.ActionsRow{Components: []discordgo.MessageComponent{
				discordgo.SelectMenu{CustomID: "model", Options: []discordgo.SelectMenuOption{{Label: "A", Value: "a"}, {Label: "B", Value: "b"}}},
			}},
		},
	}))
	click := w.fake.ClickButton(ButtonClick{MessageID: m.ID, CustomID: "retry", User: w.alice})
	ic := recvWhere(t, ics, func(ic *discordgo.InteractionCreate) bool { return ic.ID == click.ID })
	cd := ic.MessageComponentData()
	if ic.Type != discordgo.InteractionMessageComponent || cd.CustomID != "retry" || cd.ComponentType != discordgo.ButtonComponent ||
		ic.Message == nil || ic.Message.ID != m.ID || len(ic.Message.Components) != 2 {
		t.Fatalf("click %+v message %+v", cd, ic.Message)
	}
	must[struct{}](t)(struct{}{}, dg.InteractionRespond(click, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseUpdateMessage,
		Data: &discordgo.InteractionResponseData{Content: "Retrying…", Components: []discordgo.MessageComponent{}},
	}))
	if u := recvWhere(t, updates, func(u *discordgo.MessageUpdate) bool { return u.ID == m.ID }); u.Content != "Retrying…" || len(u.Components) != 0 {
		t.Fatalf("MESSAGE_UPDATE %+v", u.Message)
	}
	rec, _ := w.fake.Interaction(click.ID)
	if rec.Original == nil || rec.Original.ID != m.ID || strings.Join(rec.Original.History, "") != "Pick one" {
		t.Fatalf("record original %+v", rec.Original)
	}
	// The component's message is @original after an update: edit it later.
	must[*discordgo.Message](t)(dg.InteractionResponseEdit(click, &discordgo.WebhookEdit{Content: ptr("Done.")}))
	if got, _ := w.fake.MessageByID(m.ID); got.Content != "Done." {
		t.Fatalf("after edit %q", got.Content)
	}

	m2 := must[*discordgo.Message](t)(dg.ChannelMessageSendComplex(w.text.ID, &discordgo.MessageSend{
		Content: "Choose",
		Components: []discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
			discordgo.SelectMenu{CustomID: "model", Options: []discordgo.SelectMenuOption{{Label: "A", Value: "a"}, {Label: "B", Value: "b"}}},
		}}},
	}))
	sel := w.fake.ChooseSelect(SelectChoice{MessageID: m2.ID, CustomID: "model", User: w.alice, Values: []string{"b"}})
	ic = recvWhere(t, ics, func(ic *discordgo.InteractionCreate) bool { return ic.ID == sel.ID })
	if sd := ic.MessageComponentData(); sd.CustomID != "model" || sd.ComponentType != discordgo.SelectMenuComponent || len(sd.Values) != 1 || sd.Values[0] != "b" {
		t.Fatalf("select %+v", sd)
	}
	// Deferred update: nothing visible, then @original edits the message.
	must[struct{}](t)(struct{}{}, dg.InteractionRespond(sel, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredMessageUpdate}))
	must[*discordgo.Message](t)(dg.InteractionResponseEdit(sel, &discordgo.WebhookEdit{Content: ptr("Model B selected")}))
	if got, _ := w.fake.MessageByID(m2.ID); got.Content != "Model B selected" {
		t.Fatalf("after deferred update %q", got.Content)
	}
}

func TestAutocomplete(t *testing.T) {
	w := newWorld(t)
	dg, ics := setupCommands(t, w)
	ac := w.fake.Autocomplete(Autocomplete{Name: "ask", ChannelID: w.text.ID, User: w.alice,
		Options: map[string]any{"prompt": "hi", "model": "lla"}, Focused: "model"})
	ic := recvWhere(t, ics, func(ic *discordgo.InteractionCreate) bool { return ic.ID == ac.ID })
	d := ic.ApplicationCommandData()
	if ic.Type != discordgo.InteractionApplicationCommandAutocomplete || !d.GetOption("model").Focused ||
		d.GetOption("model").StringValue() != "lla" || d.GetOption("prompt").Focused {
		t.Fatalf("autocomplete %+v", d.Options)
	}
	must[struct{}](t)(struct{}{}, dg.InteractionRespond(ac, &discordgo.InteractionResponse{
		Type: discordgo.InteractionApplicationCommandAutocompleteResult,
		Data: &discordgo.InteractionResponseData{Choices: []*discordgo.ApplicationCommandOptionChoice{
			{Name: "llama-3-8b", Value: "llama-3-8b"}, {Name: "llama-3-70b", Value: "llama-3-70b"},
		}},
	}))
	rec, _ := w.fake.Interaction(ac.ID)
	if rec.Response.Type != discordgo.InteractionApplicationCommandAutocompleteResult || len(rec.Response.Data.Choices) != 2 ||
		rec.Response.Data.Choices[1].Value != "llama-3-70b" {
		t.Fatalf("choices %+v", rec.Response)
	}
	// Only autocomplete results answer autocomplete.
	ac2 := w.fake.Autocomplete(Autocomplete{Name: "ask", ChannelID: w.text.ID, User: w.alice, Options: map[string]any{"model": ""}, Focused: "model"})
	restErr(t, dg.InteractionRespond(ac2, &discordgo.InteractionResponse{Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: "x"}}), 400, 50035)
}

func TestDMInteractionAndGuildCommandFirst(t *testing.T) {
	w := newWorld(t)
	dg, ics := setupCommands(t, w)
	// A guild command shadows the global one with the same name.
	guildCmd := must[[]*discordgo.ApplicationCommand](t)(dg.ApplicationCommandBulkOverwrite(w.fake.ApplicationID(), w.guild.ID,
		[]*discordgo.ApplicationCommand{{Name: "feedback", Description: "Guild feedback"}}))
	w.fake.SlashCommand(SlashCommand{Name: "feedback", ChannelID: w.text.ID, User: w.alice})
	if d := recv(t, ics).ApplicationCommandData(); d.ID != guildCmd[0].ID {
		t.Fatalf("invoked %s, want the guild command %s", d.ID, guildCmd[0].ID)
	}
	dm := w.fake.DMChannel(w.alice.ID)
	in := w.fake.SlashCommand(SlashCommand{Name: "feedback", ChannelID: dm.ID, User: w.alice, Locale: "fr"})
	ic := recv(t, ics)
	if ic.GuildID != "" || ic.Member != nil || ic.User == nil || ic.User.ID != w.alice.ID || ic.Locale != "fr" ||
		ic.Context != discordgo.InteractionContextBotDM || ic.ApplicationCommandData().ID == guildCmd[0].ID {
		t.Fatalf("DM interaction %+v", ic.Interaction)
	}
	must[struct{}](t)(struct{}{}, dg.InteractionRespond(in, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource, Data: &discordgo.InteractionResponseData{Content: "hi in DM"}}))
	if ms := w.fake.Messages(dm.ID); len(ms) != 1 || ms[0].Content != "hi in DM" {
		t.Fatalf("DM messages %+v", ms)
	}
}

func TestRewriteTransport(t *testing.T) {
	var got []*http.Request
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r)
	}))
	defer backend.Close()
	var passed []string
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host == "example.com" {
			passed = append(passed, r.URL.String())
			return &http.Response{StatusCode: 204, Body: http.NoBody, Request: r}, nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	client := &http.Client{Transport: RewriteTransport(backend.URL+"/prefix/", next)}
	orig, _ := http.NewRequest("GET", "https://discord.com/api/v9/channels/1/messages?limit=5", nil)
	resp := must[*http.Response](t)(client.Do(orig))
	resp.Body.Close()
	if len(got) != 1 || got[0].URL.Path != "/prefix/api/v9/channels/1/messages" || got[0].URL.RawQuery != "limit=5" ||
		got[0].Host != strings.TrimPrefix(backend.URL, "http://") {
		t.Fatalf("backend saw %+v", got)
	}
	if orig.URL.Host != "discord.com" {
		t.Fatal("the original request was modified")
	}
	resp = must[*http.Response](t)(client.Get("https://cdn.discordapp.com/attachments/1/2/a.txt"))
	resp.Body.Close()
	if len(got) != 2 || got[1].URL.Path != "/prefix/attachments/1/2/a.txt" {
		t.Fatalf("CDN not rewritten: %+v", got[1].URL)
	}
	resp = must[*http.Response](t)(client.Get("https://example.com/x"))
	resp.Body.Close()
	if len(passed) != 1 || passed[0] != "https://example.com/x" {
		t.Fatalf("other host %v", passed)
	}
	if _, err := (&http.Client{Transport: RewriteTransport("not a url", nil)}).Get("https://discord.com/"); err == nil {
		t.Fatal("bad base accepted")
	}
}
