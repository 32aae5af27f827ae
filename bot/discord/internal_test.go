package discord

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/hordechat/hordechat/bot"
)

func TestTargetRoundTrip(t *testing.T) {
	issued := time.Unix(1767614400, 0)
	tests := []struct {
		name string
		t    target
		text string
	}{
		{"channel", target{channel: "11", kind: kindChannel}, "11"},
		{"reply", target{channel: "11", kind: kindReply, message: "22"}, "11:r:22"},
		{"thread", target{channel: "11", kind: kindThread, message: "22"}, "11:t:22"},
		{"command", target{channel: "11", kind: kindCommand, issued: issued, app: "33", token: "tok:with:colons"}, "11:i:1767614400:33:tok:with:colons"},
		{"component", target{channel: "11", kind: kindComponent, issued: issued, app: "33", token: "abc"}, "11:u:1767614400:33:abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.t.String(); got != tt.text {
				t.Fatalf("String() = %q, want %q", got, tt.text)
			}
			back, err := parseTarget(tt.text)
			if err != nil || back.String() != tt.text || back.kind != tt.t.kind || !back.issued.Equal(tt.t.issued) {
				t.Fatalf("parseTarget(%q) = %+v, %v", tt.text, back, err)
			}
		})
	}
	for _, bad := range []string{"", "abc", "11:x:22", "11:r:", "11:r:x", "11:i:notanumber:33:tok", "11:i:1:33", "11:i:1:33:", "11:rr:22", "discord:11"} {
		if _, err := parseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q) succeeded", bad)
		}
	}
}

func TestTargetAlive(t *testing.T) {
	issued := time.Unix(1767614400, 0)
	cmd := target{channel: "1", kind: kindCommand, issued: issued, app: "2", token: "t"}
	if !cmd.alive(issued.Add(14 * time.Minute)) {
		t.Error("dead after 14 minutes")
	}
	if cmd.alive(issued.Add(tokenLifetime - time.Second)) {
		t.Error("alive within the safety margin of the 15 minutes")
	}
	if (target{channel: "1", kind: kindChannel}).alive(issued) {
		t.Error("a channel target has no token")
	}
}

func TestRewriteTransport(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Host+" "+r.URL.RequestURI())
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	rt, err := newRewriteTransport(srv.URL+"/proxy/api/v10/", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: rt}
	for _, u := range []string{discordgo.EndpointChannelMessages("123") + "?limit=5", discordgo.EndpointWebhookMessage("1", "tok", "@original")} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	want := []string{host + " /proxy/api/v10/channels/123/messages?limit=5", host + " /proxy/api/v10/webhooks/1/tok/messages/@original"}
	if !slices.Equal(got, want) {
		t.Fatalf("requests = %q, want %q", got, want)
	}
}

func TestScrubRemovesTokens(t *testing.T) {
	err := scrub(&url.Error{Op: "Patch", URL: "https://discord.com/api/v9/webhooks/123/SECRET-TOKEN/messages/@original", Err: http.ErrHandlerTimeout})
	if strings.Contains(err.Error(), "SECRET-TOKEN") || !strings.Contains(err.Error(), "webhooks/123") {
		t.Errorf("scrub = %q", err)
	}
	err = scrub(&url.Error{Op: "Post", URL: "https://discord.com/api/v9/interactions/55/SECRET-TOKEN/callback", Err: http.ErrHandlerTimeout})
	if strings.Contains(err.Error(), "SECRET-TOKEN") {
		t.Errorf("scrub = %q", err)
	}
}

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.Token = "abc.def.ghi"
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		key  string
	}{
		{"token with space", func(c *Config) { c.Token = "Bot abc" }, "discord.token"},
		{"base url", func(c *Config) { c.APIBaseURL = "discord.com/api" }, "discord.api_base_url"},
		{"guild id", func(c *Config) { c.GuildID = "my-guild" }, "discord.guild_id"},
		{"thread archive", func(c *Config) { c.ThreadArchive = 2 * time.Hour }, "discord.thread_archive"},
		{"shard count", func(c *Config) { c.ShardCount = 0 }, "discord.shard_count"},
		{"shard id", func(c *Config) { c.ShardID, c.ShardCount = 2, 2 }, "discord.shard_id"},
		{"negative shard id", func(c *Config) { c.ShardID = -1 }, "discord.shard_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.key) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.key)
			}
		})
	}
	if d := DefaultConfig(); d.Enabled() || !d.Threads || d.MessageContent || d.ShardCount != 1 || d.ThreadArchive != 24*time.Hour {
		t.Errorf("defaults = %+v", d)
	}
}

func TestInviteURL(t *testing.T) {
	u, err := url.Parse(InviteURL("42"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("client_id") != "42" || q.Get("scope") != "bot applications.commands" || q.Get("permissions") != "309237763072" {
		t.Errorf("invite = %s", u)
	}
}

func f64(v float64) *float64 { return &v }

func TestRenderCommands(t *testing.T) {
	reg := bot.NewRegistry()
	for _, c := range []*bot.Command{
		{Name: "pick", Description: strings.Repeat("d", 150), Options: []bot.Option{
			{Name: "optional", Description: "later", Type: bot.String},
			{Name: "count", Description: "how many", Type: bot.Integer, Required: true, Min: f64(1), Max: f64(9), Choices: []bot.Choice{{Name: "one", Value: "1"}, {Name: "bad", Value: "x"}}},
			{Name: "ratio", Type: bot.Number, Autocomplete: true},
			{Name: "flag", Description: "on or off", Type: bot.Bool},
		}},
		{Name: "secret", Description: "Link a key", Secret: true, Options: []bot.Option{{Name: "key", Description: "The key", Type: bot.String, Required: true, MaxLength: 100}}},
	} {
		if err := reg.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	cmds := renderCommands(reg)
	if len(cmds) != 2 {
		t.Fatalf("%d commands", len(cmds))
	}
	pick := cmds[0]
	if len([]rune(pick.Description)) != maxDescription {
		t.Errorf("description of %d runes", len([]rune(pick.Description)))
	}
	var names []string
	for _, o := range pick.Options {
		names = append(names, o.Name)
	}
	if !slices.Equal(names, []string{"count", "optional", "ratio", "flag"}) {
		t.Errorf("options %q: required first, else in order", names)
	}
	count := pick.Options[0]
	if count.Type != discordgo.ApplicationCommandOptionInteger || *count.MinValue != 1 || count.MaxValue != 9 || len(count.Choices) != 1 || count.Choices[0].Value != int64(1) {
		t.Errorf("count = %+v", count)
	}
	if r := pick.Options[2]; r.Type != discordgo.ApplicationCommandOptionNumber || !r.Autocomplete || r.Description != "ratio" {
		t.Errorf("ratio = %+v", r)
	}
	if f := pick.Options[3]; f.Type != discordgo.ApplicationCommandOptionBoolean {
		t.Errorf("flag = %+v", f)
	}
	if s := cmds[1]; len(s.Options) != 0 {
		t.Errorf("a secret command shows options: %+v", s.Options)
	}
	m := modalFor(reg.All()[1])
	row, ok := m.Components[0].(discordgo.ActionsRow)
	if m.CustomID != modalPrefix+"secret" || !ok {
		t.Fatalf("modal = %+v", m)
	}
	if in, ok := row.Components[0].(discordgo.TextInput); !ok || in.CustomID != "key" || !in.Required || in.MaxLength != 100 {
		t.Errorf("input = %+v", row.Components[0])
	}
}

func TestComponents(t *testing.T) {
	var bs []bot.Button
	for i := range 7 {
		bs = append(bs, bot.Button{ID: "b" + string(rune('0'+i)), Label: "B"})
	}
	bs = append(bs, bot.Button{ID: "cancel:job", Label: "Cancel"}, bot.Button{ID: strings.Repeat("x", 200), Label: "too long"})
	rows := components(bs)
	if len(rows) != 2 || len(rows[0].(discordgo.ActionsRow).Components) != 5 || len(rows[1].(discordgo.ActionsRow).Components) != 3 {
		t.Fatalf("rows = %+v", rows)
	}
	last := rows[1].(discordgo.ActionsRow).Components[2].(discordgo.Button)
	if last.CustomID != buttonPrefix+"cancel:job" || last.Style != discordgo.DangerButton {
		t.Errorf("cancel button = %+v", last)
	}
	if got := components(nil); got == nil || len(got) != 0 {
		t.Errorf("no buttons must render as [] to clear old ones: %#v", got)
	}
}

func TestStripMention(t *testing.T) {
	tests := []struct {
		in        string
		mentions  []*discordgo.User
		want      string
		mentioned bool
	}{
		{"<@9> hello", nil, "hello", true},
		{"hey <@!9>, look:\n  code", nil, "hey , look:\n  code", true},
		{"reply ping", []*discordgo.User{{ID: "9"}}, "reply ping", true},
		{"<@8> not me", []*discordgo.User{{ID: "8"}}, "<@8> not me", false},
	}
	for _, tt := range tests {
		got, m := stripMention(tt.in, "9", tt.mentions)
		if got != tt.want || m != tt.mentioned {
			t.Errorf("stripMention(%q) = %q, %v; want %q, %v", tt.in, got, m, tt.want, tt.mentioned)
		}
	}
}

func TestNonce(t *testing.T) {
	n := nonce("job-123:0")
	if len(n) != nonceLength || n == nonce("job-123:1") || n != nonce("job-123:0") {
		t.Errorf("nonce = %q", n)
	}
}
