package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/hordechat/hordechat/bot/discord/discordtest"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// The whole binary with Discord on: a mention in a channel is answered in a
// thread, through real SQLite storage and the fake Horde.
func TestRunAnswersOnDiscord(t *testing.T) {
	horde := bridgetest.FastHorde(t)
	dc := discordtest.New(t)
	alice := dc.AddUser(&discordgo.User{ID: "100000000000000001", Username: "alice"})
	guild := dc.AddGuild(&discordgo.Guild{Name: "horde", OwnerID: "100000000000000009"})
	dc.AddMember(guild.ID, &discordgo.Member{User: alice})
	general := dc.AddChannel(&discordgo.Channel{GuildID: guild.ID, Name: "general", Type: discordgo.ChannelTypeGuildText})

	r, _ := startOnDiscord(t, horde, dc, "HORDECHAT_LOG__LEVEL=debug")
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second) // guards a hang only
	defer wcancel()
	q := dc.SendMessage(discordtest.UserMessage{ChannelID: general.ID, GuildID: guild.ID, Author: alice, Content: "<@" + dc.BotUser().ID + "> hello from discord"})
	answer, err := dc.WaitMessage(wctx, func(m discordtest.Message) bool {
		return m.Author != nil && m.Author.ID == dc.BotUser().ID && m.ChannelID == q.ID && strings.Contains(m.Content, "Echo")
	})
	if err != nil {
		t.Fatalf("no answer in the thread: %v\n%s", err, r.stderr.String())
	}
	if strings.Contains(answer.Content, "@everyone") {
		t.Errorf("answer = %q", answer.Content)
	}
	r.stop(t)
	logs := r.stderr.String()
	for _, secret := range []string{dc.Token()} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs leak a secret")
		}
	}
	if !strings.Contains(logs, "discord is on") || !strings.Contains(logs, "matrix is off") {
		t.Errorf("platform status not logged:\n%s", logs)
	}
}

// startOnDiscord runs the whole binary against the fake Horde and the fake
// Discord, with extra settings, and returns once it has the model list and
// Discord is ready; env is what it ran with.
func startOnDiscord(t *testing.T, horde *hordetest.Server, dc *discordtest.Server, extra ...string) (r *running, env []string) {
	t.Helper()
	env = testEnv(t, append([]string{
		"HORDECHAT_HORDE__BASE_URL=" + horde.URL,
		"HORDECHAT_HORDE__PROXY_PASSKEY=" + bridgetest.Passkey,
		"HORDECHAT_DISCORD__TOKEN=" + dc.Token(),
		"HORDECHAT_DISCORD__API_BASE_URL=" + dc.URL + "/api/v10",
	}, extra...)...)
	r = startRun(t, env)
	if err := r.app.bridge.RefreshModels(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.app.discord.Ready():
	case <-time.After(2 * time.Minute): // guards a hang only
		t.Fatalf("discord never got ready:\n%s", r.stderr.String())
	}
	return r, env
}
