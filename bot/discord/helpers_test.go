package discord_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/bottest"
	"github.com/hordechat/hordechat/bot/discord"
	"github.com/hordechat/hordechat/bot/discord/discordtest"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

func testCtx(tb testing.TB) context.Context { return bottest.Context(tb) }

// Fixed ids so that a Horde responder (which runs under the fake Horde's
// lock, before the world exists) can name them.
const (
	aliceID   = "100000000000000001"
	malloryID = "100000000000000002"
	ownerID   = "100000000000000003"
)

// logBuffer collects the slog output of the engine and the adapter.
type logBuffer = bottest.LogBuffer

// world is a fake Discord with a guild, a #general channel and two users,
// a fast fake Horde, a shared journal and chat store: what survives a
// restart. A proc is one run of engine, bridge and adapter on it.
type world struct {
	t       *testing.T
	fake    *discordtest.Server
	horde   *hordetest.Server
	journal *bridgetest.MemStore
	store   *bottest.MemStore
	logs    *logBuffer
	log     *slog.Logger

	guild   *discordgo.Guild
	general *discordgo.Channel
	alice   *discordgo.User
	mallory *discordgo.User
	bot     *discordgo.User

	botCfg    bot.Config
	bridgeCfg bridge.Config
	dcfg      discord.Config
}

func newWorld(t *testing.T, horde ...hordetest.Option) *world {
	t.Helper()
	w := &world{t: t, journal: bridgetest.NewMemStore(), store: bottest.NewMemStore(), logs: &logBuffer{}}
	w.log = slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.horde = bridgetest.FastHorde(t, horde...)
	w.fake = discordtest.New(t)
	w.bot = w.fake.BotUser()
	w.alice = w.fake.AddUser(&discordgo.User{ID: aliceID, Username: "alice", GlobalName: "Alice"})
	w.mallory = w.fake.AddUser(&discordgo.User{ID: malloryID, Username: "mallory"})
	owner := w.fake.AddUser(&discordgo.User{ID: ownerID, Username: "owner"})
	w.guild = w.fake.AddGuild(&discordgo.Guild{Name: "horde", OwnerID: owner.ID})
	w.fake.AddMember(w.guild.ID, &discordgo.Member{User: w.alice, Nick: "ali"})
	w.fake.AddMember(w.guild.ID, &discordgo.Member{User: w.mallory})
	w.general = w.fake.AddChannel(&discordgo.Channel{GuildID: w.guild.ID, Name: "general", Type: discordgo.ChannelTypeGuildText})

	w.botCfg = bot.DefaultConfig()
	w.botCfg.UserRate = 0         // no rate limit: tests send quickly
	w.botCfg.MaxProgressEdits = 0 // no progress edits: fewer moving parts
	w.bridgeCfg = bridge.DefaultConfig()
	w.dcfg = discord.DefaultConfig()
	w.dcfg.Token = w.fake.Token()
	w.dcfg.APIBaseURL = w.fake.URL + "/api/v10"
	w.dcfg.MessageContent = true
	return w
}

// proc is one process: engine, bridge and adapter.
type proc struct {
	*bottest.Proc
	adapter *discord.Adapter
}

// start wires a process in the order cmd does: engine, adapter,
// AddPlatform, bridge Start, adapter Run.
func (w *world) start() *proc {
	w.t.Helper()
	bw := &bottest.World{Horde: w.horde, Journal: w.journal, Store: w.store, Log: w.log, BotCfg: w.botCfg, BridgeCfg: w.bridgeCfg}
	var a *discord.Adapter
	p := bw.Start(w.t, func(e *bot.Engine) (bottest.Adapter, error) {
		var err error
		a, err = discord.New(w.dcfg, e, w.log, discord.WithClock(w.fake.Clock()))
		return a, err
	})
	return &proc{Proc: p, adapter: a}
}

// workers takes the fake Horde's workers off or back on.
func (w *world) workers(online bool) { bridgetest.SetWorkersOnline(w.t, w.horde, online) }

// mention is a message from alice to the bot in #general.
func (w *world) mention(text string) *discordgo.Message {
	return w.fake.SendMessage(discordtest.UserMessage{ChannelID: w.general.ID, Author: w.alice, Content: "<@" + w.bot.ID + "> " + text})
}

// waitBot waits for a message of the bot in channel (any channel when "")
// whose content contains want.
func (w *world) waitBot(channel, want string) discordtest.Message {
	w.t.Helper()
	m, err := w.fake.WaitMessage(testCtx(w.t), func(m discordtest.Message) bool {
		return m.Author != nil && m.Author.ID == w.bot.ID && (channel == "" || m.ChannelID == channel) && strings.Contains(m.Content, want)
	})
	if err != nil {
		w.t.Fatalf("no bot message with %q in %q: %v\nmessages: %s", want, channel, err, w.dump())
	}
	return m
}

func (w *world) dump() string {
	var b strings.Builder
	for _, m := range w.fake.AllMessages() {
		fmt.Fprintf(&b, "\n  [%s] %s: %q (interaction %s, ephemeral %v, deleted %v)", m.ChannelID, m.Author.Username, m.Content, m.InteractionID, m.Ephemeral, m.Deleted)
	}
	return b.String()
}

// submits are the generation requests the fake Horde received.
func (w *world) submits() []hordetest.RecordedRequest {
	return w.horde.RequestsTo(http.MethodPost, "/api/v2/generate/text/async")
}

// replyNumber answers "Reply number N", N counting the answers already in
// the prompt, so a test sees whether history was sent.
func replyNumber(j hordetest.Job) string {
	return fmt.Sprintf("Reply number %d", strings.Count(j.Prompt, "Reply number")+1)
}

// buttonIDs lists the custom ids of a message's buttons.
func buttonIDs(m discordtest.Message) []string {
	var out []string
	for _, c := range m.Components {
		var row discordgo.ActionsRow
		switch r := c.(type) {
		case *discordgo.ActionsRow:
			row = *r
		case discordgo.ActionsRow:
			row = r
		default:
			continue
		}
		for _, rc := range row.Components {
			switch b := rc.(type) {
			case *discordgo.Button:
				out = append(out, b.CustomID)
			case discordgo.Button:
				out = append(out, b.CustomID)
			}
		}
	}
	return out
}

// noPings asserts a message was sent with no mention allowed.
func noPings(t *testing.T, m discordtest.Message) {
	t.Helper()
	if m.AllowedMentions == nil || len(m.AllowedMentions.Parse) != 0 || len(m.AllowedMentions.Users) != 0 || len(m.AllowedMentions.Roles) != 0 || m.AllowedMentions.RepliedUser {
		t.Errorf("message %s sent with allowed_mentions %+v, want an empty parse list", m.ID, m.AllowedMentions)
	}
}
