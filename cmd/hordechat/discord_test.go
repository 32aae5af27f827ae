package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/hordechat/hordechat/bot/discord/discordtest"
	"github.com/hordechat/hordechat/bridge/bridgetest"
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

	env := testEnv(t,
		"HORDECHAT_HORDE__BASE_URL="+horde.URL,
		"HORDECHAT_HORDE__PROXY_PASSKEY="+bridgetest.Passkey,
		"HORDECHAT_DISCORD__TOKEN="+dc.Token(),
		"HORDECHAT_DISCORD__API_BASE_URL="+dc.URL+"/api/v10",
		"HORDECHAT_LOG__LEVEL=debug",
	)
	r := startRun(t, env)
	app, ctx := r.app, context.Background()
	if err := app.bridge.RefreshModels(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second) // guards a hang only
	defer wcancel()
	select {
	case <-app.discord.Ready():
	case <-wctx.Done():
		t.Fatalf("discord never got ready:\n%s", r.stderr.String())
	}
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
