package discord_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/discord"
	"github.com/hordechat/hordechat/bot/discord/discordtest"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

func TestMentionOpensThreadThatContinuesWithoutMention(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	w.start()

	q := w.mention("What is the Horde?")
	first := w.waitBot(q.ID, "Reply number 1") // the thread's id is the message's

	threads := w.fake.Threads()
	if len(threads) != 1 || threads[0].ID != q.ID || threads[0].ParentID != w.general.ID || threads[0].OwnerID != w.bot.ID || threads[0].Name != "What is the Horde?" {
		t.Fatalf("threads = %+v", threads)
	}
	if !slices.Contains(first.History, "⏳ Asking the Horde…") {
		t.Errorf("the answer did not replace the placeholder: history %q", first.History)
	}
	if ids := buttonIDs(first); !slices.Equal(ids, []string{"hc:b:regenerate", "hc:b:continue"}) {
		t.Errorf("buttons = %q", ids)
	}
	noPings(t, first)
	if !slices.ContainsFunc(w.fake.Typings(), func(ty discordtest.Typing) bool { return ty.ChannelID == q.ID }) {
		t.Error("no typing in the thread")
	}
	for _, m := range w.fake.Messages(w.general.ID) {
		if m.Author.ID == w.bot.ID {
			t.Errorf("the bot wrote in the channel instead of the thread: %q", m.Content)
		}
	}

	// In the bot's thread, no mention is needed.
	w.fake.SendMessage(discordtest.UserMessage{ChannelID: q.ID, Author: w.alice, Content: "Tell me more"})
	w.waitBot(q.ID, "Reply number 2")

	// The first turn was stored before the second was asked (the second
	// is stored just after its answer shows, so it is not checked here).
	hist := w.store.History("discord:" + w.guild.ID + ":" + q.ID)
	if len(hist) < 2 || hist[0].Content != "What is the Horde?" || hist[0].Name != "ali" || hist[1].Content != "Reply number 1" {
		t.Fatalf("history = %+v", hist)
	}
	subs := w.submits()
	if len(subs) != 2 || !strings.Contains(string(subs[1].Body), "What is the Horde?") || !strings.Contains(string(subs[1].Body), "Reply number 1") {
		t.Fatalf("the second prompt lacks the history: %d submits", len(subs))
	}
	// The Horde sees the Discord user, not the bot.
	ids, err := bridge.NewIdentities(bridgetest.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if want := ids.ProxiedFor(bridge.Principal{Platform: "discord", UserID: w.alice.ID}); !subs[0].Proxied || subs[0].Identity != want {
		t.Errorf("identity = %q (proxied %v), want %q", subs[0].Identity, subs[0].Proxied, want)
	}
}

func TestDirectMessagesAreAConversation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	w.start()
	dm := w.fake.DMChannel(w.alice.ID)
	w.fake.SendMessage(discordtest.UserMessage{ChannelID: dm.ID, Author: w.alice, Content: "hi there"})
	noPings(t, w.waitBot(dm.ID, "Reply number 1"))
	w.fake.SendMessage(discordtest.UserMessage{ChannelID: dm.ID, Author: w.alice, Content: "and again"})
	w.waitBot(dm.ID, "Reply number 2")
	hist := w.store.History("discord:dm:" + dm.ID)
	if len(hist) < 2 || hist[0].Content != "hi there" || hist[0].Name != "" {
		t.Fatalf("history = %+v", hist)
	}
}

func TestSlashChatDefersThenEditsThePlaceholder(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	w.start()
	ctx := testCtx(t)
	ix := w.fake.SlashCommand(discordtest.SlashCommand{Name: "chat", ChannelID: w.general.ID, User: w.alice, Options: map[string]any{"message": "hello"}})
	got, err := w.fake.WaitResponse(ctx, ix.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Response.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource || got.Response.Ephemeral {
		t.Fatalf("callback = %+v, want a public deferred response", got.Response)
	}
	done, err := w.fake.WaitInteraction(ctx, ix.ID, func(in discordtest.Interaction) bool {
		return in.Original != nil && strings.Contains(in.Original.Content, "Reply number 1")
	})
	if err != nil {
		t.Fatalf("no answer: %v%s", err, w.dump())
	}
	if !slices.Equal(done.Original.History, []string{"⏳ Asking the Horde…"}) || len(done.Followups) != 0 {
		t.Errorf("original history %q, %d follow-ups: want the placeholder edited into the answer", done.Original.History, len(done.Followups))
	}
	if ids := buttonIDs(*done.Original); len(ids) != 2 {
		t.Errorf("buttons = %q", ids)
	}
	noPings(t, *done.Original)

	// /chat talks in the channel's conversation.
	ix = w.fake.SlashCommand(discordtest.SlashCommand{Name: "chat", ChannelID: w.general.ID, User: w.alice, Options: map[string]any{"message": "again"}})
	if _, err := w.fake.WaitInteraction(ctx, ix.ID, func(in discordtest.Interaction) bool {
		return in.Original != nil && strings.Contains(in.Original.Content, "Reply number 2")
	}); err != nil {
		t.Fatalf("no second answer: %v%s", err, w.dump())
	}
	if hist := w.store.History("discord:" + w.guild.ID + ":" + w.general.ID); len(hist) < 2 || hist[0].Content != "hello" {
		t.Errorf("history = %+v", hist)
	}
	for _, r := range w.fake.Requests() {
		if r.Status >= 400 {
			t.Errorf("%s %s answered %d: %s", r.Method, r.Route, r.Status, r.Body)
		}
	}
}

func TestLinkAsksTheKeyInAModalAndNeverShowsIt(t *testing.T) {
	t.Parallel()
	const key = "linked-key-0123456789abcdef"
	w := newWorld(t, hordetest.WithUsers(hordetest.User{APIKey: key, Username: "alicehorde", Kudos: 4321}))
	w.start()
	ctx := testCtx(t)

	ix := w.fake.SlashCommand(discordtest.SlashCommand{Name: "link", ChannelID: w.general.ID, User: w.alice})
	got, err := w.fake.WaitResponse(ctx, ix.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Response.Type != discordgo.InteractionResponseModal || got.Response.Data == nil || got.Response.Data.CustomID == "" {
		t.Fatalf("callback = %+v, want a modal", got.Response)
	}
	sub := w.fake.SubmitModal(discordtest.ModalSubmit{CustomID: got.Response.Data.CustomID, User: w.alice, Values: map[string]string{"key": key}})
	done, err := w.fake.WaitInteraction(ctx, sub.ID, func(in discordtest.Interaction) bool {
		return in.Original != nil && strings.Contains(in.Original.Content, "Linked")
	})
	if err != nil {
		t.Fatalf("no reply: %v%s", err, w.dump())
	}
	if !done.Response.Ephemeral || !done.Original.Ephemeral || !strings.Contains(done.Original.Content, "alicehorde") {
		t.Errorf("reply = %q (ephemeral %v/%v), want an ephemeral reply naming the account", done.Original.Content, done.Response.Ephemeral, done.Original.Ephemeral)
	}
	// Taking the store's lock orders this read after the write.
	u, _ := w.store.UpsertUser(ctx, "discord", w.alice.ID, "ali")
	if lk, err := w.store.LinkedKey(ctx, u.ID); err != nil || !strings.HasPrefix(lk.Username, "alicehorde") || w.store.Keys[u.ID] != key {
		t.Fatalf("key not stored: %+v %v", lk, err)
	}

	// The key was only in the modal submit, which Discord sends on the
	// gateway: in no REST body, message, log line or gateway payload.
	for _, r := range w.fake.Requests() {
		if strings.Contains(string(r.Body), key) || strings.Contains(r.Path, key) {
			t.Errorf("the key is in %s %s", r.Method, r.Route)
		}
	}
	for _, m := range w.fake.AllMessages() {
		if strings.Contains(m.Content, key) || slices.ContainsFunc(m.History, func(h string) bool { return strings.Contains(h, key) }) {
			t.Errorf("the key is in message %s", m.ID)
		}
	}
	for _, p := range w.fake.GatewayPayloads() {
		if strings.Contains(string(p.Data), key) {
			t.Errorf("the key is in a gateway payload (op %d)", p.Op)
		}
	}
	if strings.Contains(w.logs.String(), key) {
		t.Error("the key is in the logs")
	}
}

func TestLongAnswersAreSplitWithFencesIntact(t *testing.T) {
	t.Parallel()
	code := "```go\n" + strings.Repeat("fmt.Println(\"hello, horde\") // say it again\n", 70) + "```\nThat prints a lot."
	const key = "rich-key-0123456789abcdef"
	w := newWorld(t,
		hordetest.WithResponder(func(hordetest.Job) string { return code }),
		hordetest.WithUsers(hordetest.User{APIKey: key, Username: "rich", Kudos: 1e6}),
	)
	// Without kudos the Horde caps answers at 512 tokens: link a key with
	// kudos so the answer is longer than one Discord message.
	u, err := w.store.UpsertUser(context.Background(), "discord", aliceID, "ali")
	if err != nil {
		t.Fatal(err)
	}
	w.journal.LinkKey(u.ID, key)
	w.bridgeCfg.DefaultMaxTokens = 1024
	w.start()
	q := w.mention("print something")
	w.waitBot(q.ID, "That prints a lot.")
	var parts []discordtest.Message
	for _, m := range w.fake.Messages(q.ID) {
		if m.Author.ID == w.bot.ID {
			parts = append(parts, m)
		}
	}
	if len(parts) < 2 {
		t.Fatalf("answer in %d messages, want it split", len(parts))
	}
	for i, m := range parts {
		if n := len([]rune(m.Content)); n > discord2000 {
			t.Errorf("part %d has %d characters", i, n)
		}
		if strings.Count(m.Content, "```")%2 != 0 {
			t.Errorf("part %d has an unbalanced fence:\n%s", i, m.Content)
		}
		if hasButtons := len(buttonIDs(m)) > 0; hasButtons != (i == len(parts)-1) {
			t.Errorf("part %d buttons %q: only the last part has them", i, buttonIDs(m))
		}
		noPings(t, m)
	}
}

const discord2000 = 2000

func TestAfterFifteenMinutesTheAnswerIsAChannelMessage(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	w.start()
	ctx := testCtx(t)
	// No worker picks the job up until the test says so.
	w.workers(false)
	ix := w.fake.SlashCommand(discordtest.SlashCommand{Name: "chat", ChannelID: w.general.ID, User: w.alice, Options: map[string]any{"message": "slow one"}})
	if _, err := w.fake.WaitInteraction(ctx, ix.ID, func(in discordtest.Interaction) bool {
		return in.Original != nil && strings.Contains(in.Original.Content, "Asking the Horde")
	}); err != nil {
		t.Fatal(err)
	}
	w.fake.Advance(16 * time.Minute) // the interaction token is dead now
	w.workers(true)

	ans := w.waitBot(w.general.ID, "Reply number 1")
	if ans.InteractionID != "" || ans.Nonce == "" {
		t.Errorf("answer %s: interaction %q, nonce %q; want a channel message with a nonce", ans.ID, ans.InteractionID, ans.Nonce)
	}
	noPings(t, ans)
	in, _ := w.fake.Interaction(ix.ID)
	if in.Original == nil || strings.Contains(in.Original.Content, "Reply number") {
		t.Errorf("the expired interaction was edited: %+v", in.Original)
	}
	for _, r := range w.fake.Requests() {
		if r.Status == 401 {
			t.Errorf("%s %s was tried with the dead token", r.Method, r.Route)
		}
	}
}

func TestRestartMidJobDeliversOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	first := w.start()
	w.workers(false)
	q := w.mention("survive a restart")
	placeholder := w.waitBot(q.ID, "Asking the Horde")
	// Engine.Close waits for the turn, which returns once the job is
	// submitted and journaled; the bridge keeps it when closed.
	first.Stop()
	if n := w.journal.States()[""]; n != 1 {
		t.Fatalf("%d unfinished jobs in the journal, want 1", n)
	}

	second := w.start()
	w.workers(true)
	ans := w.waitBot(q.ID, "Reply number 1")
	if ans.ID != placeholder.ID {
		t.Errorf("the answer is message %s, want the placeholder %s edited", ans.ID, placeholder.ID)
	}
	var mine []string
	for _, m := range w.fake.Messages(q.ID) {
		if m.Author.ID == w.bot.ID {
			mine = append(mine, m.Content)
		}
	}
	if len(mine) != 1 {
		t.Errorf("bot messages in the thread: %q, want the answer once", mine)
	}
	if len(w.submits()) != 1 {
		t.Errorf("%d submits, want 1 (resumed, not resubmitted)", len(w.submits()))
	}
	// Bridge.Close waits for deliveries in progress, so the turn is stored
	// and the job closed once the process is stopped.
	second.Stop()
	if hist := w.store.History("discord:" + w.guild.ID + ":" + q.ID); len(hist) != 2 || hist[1].Content != "Reply number 1" {
		t.Fatalf("history = %+v", hist)
	}
	if st := w.journal.States(); st[""] != 0 || st[bridge.JobDone] != 1 {
		t.Errorf("journal states = %v", st)
	}
	// A third process still knows the bot's thread (its owner is the bot)
	// and has the history.
	w.start()
	w.fake.SendMessage(discordtest.UserMessage{ChannelID: q.ID, Author: w.alice, Content: "still with me?"})
	w.waitBot(q.ID, "Reply number 2")
	if subs := w.submits(); len(subs) != 2 || !strings.Contains(string(subs[1].Body), "survive a restart") {
		t.Errorf("the turn delivered after the restart is not in the history (%d submits)", len(subs))
	}
}

func TestDeniedUserGetsAClearRefusal(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.botCfg.DenyUsers = []string{"discord:" + malloryID}
	w.start()
	ctx := testCtx(t)

	// A mention: the refusal replies in place and opens no thread.
	m := w.fake.SendMessage(discordtest.UserMessage{ChannelID: w.general.ID, Author: w.mallory, Content: "<@" + w.bot.ID + "> hi"})
	refusal := w.waitBot(w.general.ID, "not allowed to use this bot")
	if refusal.MessageReference == nil || refusal.MessageReference.MessageID != m.ID {
		t.Errorf("the refusal does not reply to the message: %+v", refusal.MessageReference)
	}
	noPings(t, refusal)
	if len(refusal.Mentions) != 0 {
		t.Errorf("the refusal pinged %v", refusal.Mentions)
	}

	// A slash command: the refusal is ephemeral.
	ix := w.fake.SlashCommand(discordtest.SlashCommand{Name: "chat", ChannelID: w.general.ID, User: w.mallory, Options: map[string]any{"message": "hi"}})
	in, err := w.fake.WaitInteraction(ctx, ix.ID, func(in discordtest.Interaction) bool {
		return slices.ContainsFunc(in.Followups, func(f discordtest.Message) bool { return strings.Contains(f.Content, "not allowed") })
	})
	if err != nil {
		t.Fatalf("no refusal: %v%s", err, w.dump())
	}
	if f := in.Followups[0]; !f.Ephemeral || in.Original != nil {
		t.Errorf("refusal ephemeral %v, original %+v: want only an ephemeral follow-up", f.Ephemeral, in.Original)
	}
	if len(w.fake.Threads()) != 0 || len(w.submits()) != 0 {
		t.Errorf("%d threads, %d submits for a denied user", len(w.fake.Threads()), len(w.submits()))
	}
}

func TestGatewayDropResumesAndAnswers(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	w.start()
	w.fake.DropConnections()
	// Sent while the bot is away: replayed when it resumes.
	q := w.mention("still there?")
	if err := w.fake.WaitResumed(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	w.waitBot(q.ID, "Reply number 1")
	if n := len(w.fake.Identifies()); n != 1 {
		t.Errorf("%d IDENTIFYs, want 1 (a RESUME, not a new session)", n)
	}
}

func TestModelOutputNeverPings(t *testing.T) {
	t.Parallel()
	role := "100000000000000009"
	w := newWorld(t, hordetest.WithResponder(func(hordetest.Job) string {
		return "@everyone @here look <@" + aliceID + "> and <@&" + role + ">"
	}))
	w.fake.AddRole(w.guild.ID, &discordgo.Role{ID: role, Name: "vip", Mentionable: true})
	w.start()
	q := w.mention("ping them all")
	ans := w.waitBot(q.ID, "look")
	noPings(t, ans)
	if ans.MentionEveryone || len(ans.Mentions) != 0 || len(ans.MentionRoles) != 0 {
		t.Errorf("the answer pinged: everyone %v, users %v, roles %v", ans.MentionEveryone, ans.Mentions, ans.MentionRoles)
	}
}

func TestRegenerateButton(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	w.start()
	ctx := testCtx(t)
	q := w.mention("pick a number")
	first := w.waitBot(q.ID, "Reply number 1")
	ix := w.fake.ClickButton(discordtest.ButtonClick{MessageID: first.ID, CustomID: "hc:b:regenerate", User: w.alice})
	got, err := w.fake.WaitResponse(ctx, ix.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Response.Type != discordgo.InteractionResponseDeferredMessageUpdate {
		t.Errorf("callback type %d, want a deferred update", got.Response.Type)
	}
	again, err := w.fake.WaitMessage(ctx, func(m discordtest.Message) bool {
		return m.ChannelID == q.ID && m.ID != first.ID && m.Author.ID == w.bot.ID && strings.Contains(m.Content, "Reply number 1") && len(buttonIDs(m)) > 0
	})
	if err != nil {
		t.Fatalf("no regenerated answer: %v%s", err, w.dump())
	}
	noPings(t, again)
	subs := w.submits()
	if len(subs) != 2 || strings.Contains(string(subs[1].Body), "Reply number 1") || !strings.Contains(string(subs[1].Body), "pick a number") {
		t.Errorf("the regenerate prompt should repeat the question without the old answer (%d submits)", len(subs))
	}
}

func TestModelAutocomplete(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.start()
	ix := w.fake.Autocomplete(discordtest.Autocomplete{Name: "model", ChannelID: w.general.ID, User: w.alice, Options: map[string]any{"name": "fimb"}, Focused: "name"})
	got, err := w.fake.WaitResponse(testCtx(t), ix.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Response.Type != discordgo.InteractionApplicationCommandAutocompleteResult || got.Response.Data == nil || len(got.Response.Data.Choices) != 1 ||
		got.Response.Data.Choices[0].Value != "koboldcpp/Fimbulvetr-11B-v2" {
		t.Fatalf("autocomplete answer = %+v", got.Response)
	}
}

func TestCommandsAreRegisteredOnceAndStayStable(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.start()
	cmds := w.fake.Commands("")
	byName := map[string]*discordgo.ApplicationCommand{}
	for _, c := range cmds {
		byName[c.Name] = c
	}
	var want []string
	for _, c := range p.Engine.Commands().All() {
		want = append(want, c.Name)
		if byName[c.Name] == nil {
			t.Errorf("command %s not registered", c.Name)
		}
	}
	if len(cmds) != len(want) {
		t.Errorf("registered %d commands, want %d", len(cmds), len(want))
	}
	if link := byName["link"]; link == nil || len(link.Options) != 0 {
		t.Errorf("/link must take its key in a modal, not an option: %+v", link)
	}
	if chat := byName["chat"]; chat == nil || len(chat.Options) != 1 || !chat.Options[0].Required || chat.Options[0].Type != discordgo.ApplicationCommandOptionString || chat.Options[0].MaxLength != 4000 {
		t.Errorf("/chat = %+v", chat)
	}
	if m := byName["model"]; m == nil || len(m.Options) != 1 || !m.Options[0].Autocomplete {
		t.Errorf("/model = %+v", m)
	}
	if s := byName["settings"]; s == nil || len(s.Options) != 2 || s.Options[0].Type != discordgo.ApplicationCommandOptionNumber ||
		s.Options[0].MinValue == nil || *s.Options[0].MinValue != 0 || s.Options[0].MaxValue != 2 || s.Options[1].Type != discordgo.ApplicationCommandOptionInteger {
		t.Errorf("/settings = %+v", s)
	}
	if tok := byName["token"]; tok == nil || len(tok.Options) != 1 || len(tok.Options[0].Choices) != 2 {
		t.Errorf("/token = %+v", tok)
	}

	// A restart overwrites with the same definitions: same ids, same
	// versions.
	p.Stop()
	w.start()
	for _, c := range w.fake.Commands("") {
		if old := byName[c.Name]; old == nil || old.ID != c.ID || old.Version != c.Version {
			t.Errorf("command %s changed on restart: %+v -> %+v", c.Name, old, c)
		}
	}
}

func TestGuildCommandsWhenGuildIDIsSet(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.dcfg.GuildID = w.guild.ID
	w.start()
	if n, g := len(w.fake.Commands("")), len(w.fake.Commands(w.guild.ID)); n != 0 || g == 0 {
		t.Errorf("%d global and %d guild commands, want guild ones only", n, g)
	}
}

func TestWithoutMessageContentIntent(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	w.dcfg.MessageContent = false
	w.start()
	ids := w.fake.Identifies()
	if want := discordgo.IntentGuilds | discordgo.IntentGuildMessages | discordgo.IntentDirectMessages; len(ids) != 1 || ids[0].Intents != want {
		t.Fatalf("IDENTIFY intents %v, want %v", ids, want)
	}
	q := w.mention("can you read me?")
	w.waitBot(q.ID, "Reply number 1")
	// Without the intent this one arrives empty: it is skipped, not
	// answered with "say something".
	w.fake.SendMessage(discordtest.UserMessage{ChannelID: q.ID, Author: w.alice, Content: "unreadable"})
	w.fake.SendMessage(discordtest.UserMessage{ChannelID: q.ID, Author: w.alice, Content: "<@" + w.bot.ID + "> and now?"})
	w.waitBot(q.ID, "Reply number 2")
	if n := len(w.submits()); n != 2 {
		t.Errorf("%d submits, want 2", n)
	}
	for _, m := range w.fake.Messages(q.ID) {
		if m.Author.ID == w.bot.ID && strings.Contains(m.Content, "Say something") {
			t.Errorf("the unreadable message got a reply: %q", m.Content)
		}
	}
	if !strings.Contains(w.logs.String(), "message content intent off") {
		t.Error("the missing intent was not logged")
	}
}

func TestReplyToTheBotContinuesTheChannel(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	w.dcfg.Threads = false
	w.start()
	q := w.mention("no threads please")
	first := w.waitBot(w.general.ID, "Reply number 1")
	if first.MessageReference == nil || first.MessageReference.MessageID != q.ID {
		t.Errorf("the answer does not reply to the question: %+v", first.MessageReference)
	}
	w.fake.SendMessage(discordtest.UserMessage{ChannelID: w.general.ID, Author: w.alice, Content: "go on", ReferencedMessageID: first.ID})
	second := w.waitBot(w.general.ID, "Reply number 2")
	noPings(t, second)
	if len(second.Mentions) != 0 {
		t.Errorf("the reply pinged %v", second.Mentions)
	}
	// Messages that neither mention nor reply to the bot are not for it.
	w.fake.SendMessage(discordtest.UserMessage{ChannelID: w.general.ID, Author: w.alice, Content: "just chatting"})
	w.fake.SendMessage(discordtest.UserMessage{ChannelID: w.general.ID, Author: w.alice, Content: "<@" + w.bot.ID + "> last one"})
	w.waitBot(w.general.ID, "Reply number 3")
	subs := w.submits()
	if len(subs) != 3 || !strings.Contains(string(subs[2].Body), "no threads please") || !strings.Contains(string(subs[2].Body), "Reply number 2") {
		t.Errorf("%d submits, want 3, the last with the channel's history", len(subs))
	}
}

// Progress edits of a slash command's placeholder after the token died:
// the first posts a channel message, the next ones (and the answer) edit
// it.
func TestEditsAfterTheTokenDiedPostOnceThenEdit(t *testing.T) {
	t.Parallel()
	w := newWorld(t, hordetest.WithResponder(replyNumber))
	p := w.start()
	ctx := testCtx(t)
	w.workers(false)
	ix := w.fake.SlashCommand(discordtest.SlashCommand{Name: "chat", ChannelID: w.general.ID, User: w.alice, Options: map[string]any{"message": "slow one"}})
	in, err := w.fake.WaitInteraction(ctx, ix.ID, func(in discordtest.Interaction) bool {
		return in.Original != nil && strings.Contains(in.Original.Content, "Asking the Horde")
	})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := discordgo.SnowflakeTimestamp(ix.ID)
	if err != nil {
		t.Fatal(err)
	}
	tgt := discord.CommandTargetForTest(w.general.ID, issued, ix.AppID, ix.Token)
	placeholder := discord.OriginalIDForTest(in.Original.ID)

	w.fake.Advance(16 * time.Minute)
	for _, text := range []string{"⏳ In the queue: position 2", "⏳ In the queue: position 1"} {
		if err := p.adapter.Edit(ctx, tgt, placeholder, bot.Outgoing{Text: text, Notice: true}); err != nil {
			t.Fatal(err)
		}
	}
	w.workers(true)
	ans := w.waitBot(w.general.ID, "Reply number 1")
	if ans.InteractionID != "" || !slices.Equal(ans.History, []string{"⏳ In the queue: position 2", "⏳ In the queue: position 1"}) {
		t.Errorf("answer %q with history %q: want the one channel message posted for the first edit, edited since", ans.Content, ans.History)
	}
	var posted int
	for _, m := range w.fake.Messages(w.general.ID) {
		if m.Author.ID == w.bot.ID && m.InteractionID == "" {
			posted++
		}
	}
	if posted != 1 {
		t.Errorf("%d channel messages from the bot, want 1%s", posted, w.dump())
	}
}

func TestShardsIdentifyAndOnlyShardZeroRegisters(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.dcfg.ShardID, w.dcfg.ShardCount = 1, 2
	w.start()
	if ids := w.fake.Identifies(); len(ids) != 1 || ids[0].Shard != [2]int{1, 2} {
		t.Errorf("IDENTIFY = %+v, want shard [1, 2]", ids)
	}
	if n := len(w.fake.Commands("")); n != 0 {
		t.Errorf("shard 1 registered %d commands", n)
	}
}

func TestRunFailsClearlyWhenTheIntentIsNotGranted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.fake = discordtest.New(t, discordtest.WithoutMessageContentIntent())
	w.dcfg.Token = w.fake.Token()
	w.dcfg.APIBaseURL = w.fake.URL + "/api/v10"
	engine, err := bot.NewEngine(w.botCfg, bot.Deps{Store: w.store, Bridge: bridgetest.Service(t, w.bridgeCfg, w.horde, w.journal, nil), Log: w.log})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	a, err := discord.New(w.dcfg, engine, w.log, discord.WithClock(w.fake.Clock()))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "discord.message_content") {
		t.Fatalf("Run = %v, want an error naming discord.message_content", err)
	}
}

func TestVeryLongAnswersAreAttached(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("long text ", 120)
	w := newWorld(t, hordetest.WithResponder(func(hordetest.Job) string { return long }))
	w.botCfg.AttachOver = 500
	w.start()
	q := w.mention("write a lot")
	m, err := w.fake.WaitMessage(testCtx(t), func(m discordtest.Message) bool { return m.ChannelID == q.ID && len(m.Files) > 0 })
	if err != nil {
		t.Fatalf("no attachment: %v%s", err, w.dump())
	}
	if f := m.Files[0]; f.Filename != "answer.md" || !strings.HasPrefix(string(f.Data), "long text long text") || m.Nonce == "" {
		t.Errorf("attachment %s (%d bytes), nonce %q", f.Filename, len(f.Data), m.Nonce)
	}
	noPings(t, m)
	w.waitBot(q.ID, "attached")
}

func TestRedactDeletesTheMessage(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.start()
	m := w.fake.SendMessage(discordtest.UserMessage{ChannelID: w.general.ID, Author: w.alice, Content: "my key is hunter2"})
	if err := p.adapter.Redact(testCtx(t), w.general.ID, m.ID, "it held a secret"); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.fake.MessageByID(m.ID); !got.Deleted {
		t.Error("the message is still there")
	}
	r, err := w.fake.WaitRequest(testCtx(t), func(r discordtest.Request) bool { return r.Method == "DELETE" })
	if err != nil || r.Header.Get("X-Audit-Log-Reason") == "" {
		t.Errorf("delete without an audit log reason: %v", err)
	}
}
