package discordtest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

func TestOpenReadyAndGuildCreate(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, allIntents, false)
	guilds := events[*discordgo.GuildCreate](dg)
	if err := dg.Open(); err != nil {
		t.Fatal(err)
	}
	if dg.State.User == nil || dg.State.User.ID != w.fake.BotUser().ID || !dg.State.User.Bot {
		t.Fatalf("READY user = %+v", dg.State.User)
	}
	if dg.State.Application == nil || dg.State.Application.ID != w.fake.ApplicationID() {
		t.Fatalf("READY application = %+v", dg.State.Application)
	}
	gc := recv(t, guilds)
	if gc.ID != w.guild.ID || gc.Unavailable {
		t.Fatalf("GUILD_CREATE %+v", gc.Guild)
	}
	st, err := dg.State.Guild(w.guild.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Channels) != 2 || st.Channels[0].Name != "general" || st.Channels[1].Type != discordgo.ChannelTypeGuildNews {
		t.Fatalf("channels %+v", st.Channels)
	}
	if len(st.Roles) != 2 || st.Roles[0].ID != w.guild.ID || st.Roles[1].Name != "admins" {
		t.Fatalf("roles %+v", st.Roles)
	}
	// Without GUILD_PRESENCES only the bot's own member is listed.
	if len(st.Members) != 1 || st.Members[0].User.ID != w.fake.BotUser().ID || st.MemberCount != 2 {
		t.Fatalf("members %+v (count %d)", st.Members, st.MemberCount)
	}
	if ch, err := dg.State.Channel(w.text.ID); err != nil || ch.GuildID != w.guild.ID {
		t.Fatalf("state channel %+v %v", ch, err)
	}
	ids := w.fake.Identifies()
	if len(ids) != 1 || !ids[0].Accepted || ids[0].Intents != allIntents || ids[0].Shard != [2]int{0, 1} || ids[0].Token != "Bot "+w.fake.Token() {
		t.Fatalf("identifies %+v", ids)
	}
	select {
	case <-w.fake.Connected():
	default:
		t.Fatal("Connected not closed after READY")
	}
	if _, err := w.fake.WaitIdentified(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// discordgo heartbeats as soon as it is connected; the fake ACKs.
	if err := w.fake.waitFor(testCtx(t), func() bool {
		for _, p := range w.fake.payloads {
			if p.Op == opHeartbeat {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
}

func TestGuildCreateMembersWithPresences(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, allIntents|discordgo.IntentGuildPresences, false)
	guilds := events[*discordgo.GuildCreate](dg)
	if err := dg.Open(); err != nil {
		t.Fatal(err)
	}
	gc := recv(t, guilds)
	if len(gc.Members) != 2 || gc.Members[1].User.ID != w.alice.ID || gc.Members[1].Nick != "ali" {
		t.Fatalf("members %+v", gc.Members)
	}
}

func TestSeedAfterConnectDispatches(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, allIntents, false)
	guilds := events[*discordgo.GuildCreate](dg)
	chans := events[*discordgo.ChannelCreate](dg)
	members := events[*discordgo.GuildMemberAdd](dg)
	must[struct{}](t)(struct{}{}, dg.Open())
	recv(t, guilds)
	g2 := w.fake.AddGuild(&discordgo.Guild{Name: "second"})
	if gc := recv(t, guilds); gc.ID != g2.ID {
		t.Fatalf("GUILD_CREATE %s, want %s", gc.ID, g2.ID)
	}
	c := w.fake.AddChannel(&discordgo.Channel{GuildID: g2.ID, Name: "late"})
	if cc := recv(t, chans); cc.ID != c.ID || cc.GuildID != g2.ID {
		t.Fatalf("CHANNEL_CREATE %+v", cc.Channel)
	}
	bob := w.fake.AddUser(&discordgo.User{Username: "bob"})
	w.fake.AddMember(g2.ID, &discordgo.Member{User: bob})
	if ma := recv(t, members); ma.User.ID != bob.ID || ma.GuildID != g2.ID {
		t.Fatalf("GUILD_MEMBER_ADD %+v", ma.Member)
	}
}

func TestDisallowedIntentClosesWith4014(t *testing.T) {
	w := newWorld(t, WithoutMessageContentIntent())
	dg := mustSession(t, w.fake, discordgo.IntentsGuilds|discordgo.IntentMessageContent, false)
	err := dg.Open()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != CloseDisallowedIntents || ce.Text != "Disallowed intent(s)." {
		t.Fatalf("Open = %v, want close 4014", err)
	}
	ids := w.fake.Identifies()
	if len(ids) != 1 || ids[0].Accepted || ids[0].CloseCode != CloseDisallowedIntents {
		t.Fatalf("identifies %+v", ids)
	}
	// Without the privileged intent the same fake accepts the bot.
	dg2 := mustOpen(t, w.fake, discordgo.IntentsGuilds|discordgo.IntentsGuildMessages, false)
	if dg2.State.User.ID != w.fake.BotUser().ID {
		t.Fatal("not ready")
	}
}

func TestBadTokenOnGateway(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, allIntents, false)
	dg.Identify.Token = "Bot wrong"
	var ce *websocket.CloseError
	if err := dg.Open(); !errors.As(err, &ce) || ce.Code != CloseAuthenticationFailed {
		t.Fatalf("Open = %v, want close 4004", err)
	}
}

func TestMessageContentIntent(t *testing.T) {
	w := newWorld(t)
	// Granted in the portal but not requested.
	dg := mustSession(t, w.fake, discordgo.IntentsGuilds|discordgo.IntentsGuildMessages|discordgo.IntentDirectMessages, false)
	msgs := events[*discordgo.MessageCreate](dg)
	must[struct{}](t)(struct{}{}, dg.Open())
	bot := w.fake.BotUser()

	w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "plain **secret**",
		Embeds: []*discordgo.MessageEmbed{{Title: "x"}}, Files: []File{{Name: "a.txt", Data: []byte("a")}}})
	if m := recv(t, msgs); m.Content != "" || len(m.Embeds) != 0 || len(m.Attachments) != 0 || m.Author.ID != w.alice.ID {
		t.Fatalf("guild message without the intent: %q embeds %d attachments %d", m.Content, len(m.Embeds), len(m.Attachments))
	}
	w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "<@" + bot.ID + "> hello"})
	if m := recv(t, msgs); m.Content != "<@"+bot.ID+"> hello" || len(m.Mentions) != 1 || m.Mentions[0].ID != bot.ID {
		t.Fatalf("mention: %q %+v", m.Content, m.Mentions)
	}
	dm := w.fake.DMChannel(w.alice.ID)
	w.fake.SendMessage(UserMessage{ChannelID: dm.ID, Author: w.alice, Content: "in a DM"})
	if m := recv(t, msgs); m.Content != "in a DM" || m.GuildID != "" {
		t.Fatalf("DM: %+v", m.Message)
	}
	// The bot's own messages keep their content.
	must[*discordgo.Message](t)(dg.ChannelMessageSend(w.text.ID, "from the bot"))
	if m := recv(t, msgs); m.Content != "from the bot" {
		t.Fatalf("own message: %q", m.Content)
	}
	// The record keeps the real content.
	if all := w.fake.Messages(w.text.ID); all[0].Content != "plain **secret**" {
		t.Fatalf("record: %q", all[0].Content)
	}
}

func TestIntentFilteringAndOrder(t *testing.T) {
	w := newWorld(t)
	// DIRECT_MESSAGES only: guild messages are not delivered at all.
	dg := mustSession(t, w.fake, discordgo.IntentsGuilds|discordgo.IntentDirectMessages|discordgo.IntentMessageContent, false)
	msgs := events[*discordgo.MessageCreate](dg)
	must[struct{}](t)(struct{}{}, dg.Open())
	w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "guild"})
	dm := w.fake.DMChannel(w.alice.ID)
	w.fake.SendMessage(UserMessage{ChannelID: dm.ID, Author: w.alice, Content: "dm"})
	if m := recv(t, msgs); m.Content != "dm" {
		t.Fatalf("first delivered message %q, want the DM (the guild one needs GUILD_MESSAGES)", m.Content)
	}
}

func TestRestContentStrippedWhenIntentDenied(t *testing.T) {
	w := newWorld(t, WithoutMessageContentIntent())
	dg := mustSession(t, w.fake, 0, false)
	um := w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "hidden"})
	got := must[*discordgo.Message](t)(dg.ChannelMessage(w.text.ID, um.ID))
	if got.Content != "" {
		t.Fatalf("REST content %q without the privileged intent", got.Content)
	}
	app := must[*discordgo.Application](t)(dg.Application("@me"))
	if app.Flags&(1<<18) != 0 || app.Flags&(1<<14) == 0 {
		t.Fatalf("application flags %b", app.Flags)
	}
}

func TestResumeAfterDrop(t *testing.T) {
	w := newWorld(t)
	dg := mustOpen(t, w.fake, allIntents, true)
	msgs := events[*discordgo.MessageCreate](dg)
	resumed := events[*discordgo.Resumed](dg)
	ctx := testCtx(t)

	w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "before"})
	if m := recv(t, msgs); m.Content != "before" {
		t.Fatal(m.Content)
	}
	w.fake.DropConnections()
	select {
	case <-w.fake.Connected():
		t.Fatal("Connected still closed after DropConnections")
	default:
	}
	// Sent while the bot is away: replayed on RESUME.
	w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "missed 1"})
	w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "missed 2"})
	if err := w.fake.WaitResumed(ctx); err != nil {
		t.Fatal(err)
	}
	recv(t, resumed)
	if a, b := recv(t, msgs), recv(t, msgs); a.Content != "missed 1" || b.Content != "missed 2" {
		t.Fatalf("replayed %q, %q", a.Content, b.Content)
	}
	<-w.fake.Connected()
	if n := len(w.fake.Identifies()); n != 1 {
		t.Fatalf("%d IDENTIFY, want 1 (RESUME only)", n)
	}
	var resume wireResume
	for _, p := range w.fake.GatewayPayloads() {
		if p.Op == opResume {
			must[struct{}](t)(struct{}{}, json.Unmarshal(p.Data, &resume))
		}
	}
	// READY, GUILD_CREATE, "before" = seq 3.
	if resume.Seq != 3 || resume.SessionID == "" || resume.Token != "Bot "+w.fake.Token() {
		t.Fatalf("RESUME %+v", resume)
	}
	// Live again.
	w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "after"})
	if m := recv(t, msgs); m.Content != "after" {
		t.Fatal(m.Content)
	}
}

func TestSendReconnectResumes(t *testing.T) {
	w := newWorld(t)
	dg := mustOpen(t, w.fake, allIntents, true)
	msgs := events[*discordgo.MessageCreate](dg)
	w.fake.SendReconnect()
	w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "across op 7"})
	if err := w.fake.WaitResumed(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, msgs); m.Content != "across op 7" {
		t.Fatal(m.Content)
	}
	if w.fake.Sessions() != 1 {
		t.Fatalf("%d sessions", w.fake.Sessions())
	}
}

func TestInvalidSessionReidentifies(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, allIntents, false)
	ready := events[*discordgo.Ready](dg)
	must[struct{}](t)(struct{}{}, dg.Open())
	first := recv(t, ready)
	w.fake.InvalidateSessions(false)
	if _, err := w.fake.WaitIdentified(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	second := recv(t, ready)
	if second.SessionID == first.SessionID {
		t.Fatal("same session after op 9")
	}
	if n := len(w.fake.Identifies()); n != 2 {
		t.Fatalf("%d identifies", n)
	}
}

// rawGateway dials the fake's gateway without discordgo.
func rawGateway(t *testing.T, f *Server) *websocket.Conn {
	t.Helper()
	url := "ws" + strings.TrimPrefix(f.URL, "http") + "/gateway/?v=9&encoding=json"
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	return c
}

type rawFrame struct {
	Op   int             `json:"op"`
	D    json.RawMessage `json:"d"`
	S    *int64          `json:"s"`
	T    *string         `json:"t"`
	Kind int             `json:"-"`
}

func readFrame(t *testing.T, c *websocket.Conn) (rawFrame, error) {
	t.Helper()
	var f rawFrame
	mt, b, err := c.ReadMessage()
	if err != nil {
		return f, err
	}
	if mt != websocket.TextMessage {
		t.Fatalf("message type %d", mt)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f, nil
}

func TestRawGatewayProtocol(t *testing.T) {
	f := New(t, WithHeartbeatInterval(41250*time.Millisecond))
	g := f.AddGuild(&discordgo.Guild{ID: "81384788765712384", Name: "g"})

	t.Run("hello heartbeat identify", func(t *testing.T) {
		c := rawGateway(t, f)
		hello, _ := readFrame(t, c)
		var h struct {
			Interval int64 `json:"heartbeat_interval"`
		}
		_ = json.Unmarshal(hello.D, &h)
		if hello.Op != opHello || h.Interval != 41250 || hello.S != nil || hello.T != nil {
			t.Fatalf("HELLO %+v", hello)
		}
		must[struct{}](t)(struct{}{}, c.WriteJSON(map[string]any{"op": 1, "d": nil}))
		if ack, _ := readFrame(t, c); ack.Op != opHeartbeatAck {
			t.Fatalf("ACK %+v", ack)
		}
		must[struct{}](t)(struct{}{}, c.WriteJSON(map[string]any{"op": 2, "d": map[string]any{
			"token": f.Token(), "intents": 1, "properties": map[string]string{"os": "linux"},
		}}))
		ready, _ := readFrame(t, c)
		var rd struct {
			SessionID string           `json:"session_id"`
			ResumeURL string           `json:"resume_gateway_url"`
			Guilds    []map[string]any `json:"guilds"`
		}
		_ = json.Unmarshal(ready.D, &rd)
		if ready.Op != 0 || *ready.T != "READY" || *ready.S != 1 || rd.SessionID == "" ||
			rd.ResumeURL != "ws"+strings.TrimPrefix(f.URL, "http")+"/gateway" || len(rd.Guilds) != 1 || rd.Guilds[0]["unavailable"] != true {
			t.Fatalf("READY %s", ready.D)
		}
		gc, _ := readFrame(t, c)
		if *gc.T != "GUILD_CREATE" || *gc.S != 2 || !strings.Contains(string(gc.D), g.ID) {
			t.Fatalf("GUILD_CREATE %+v", gc)
		}
		// Identifying twice closes the connection.
		must[struct{}](t)(struct{}{}, c.WriteJSON(map[string]any{"op": 2, "d": map[string]any{"token": f.Token(), "intents": 1}}))
		_, err := readFrame(t, c)
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != CloseAlreadyAuthenticated {
			t.Fatalf("second IDENTIFY: %v", err)
		}
	})

	closeCases := []struct {
		name string
		send any
		code int
	}{
		{"unknown opcode", map[string]any{"op": 42, "d": nil}, CloseUnknownOpcode},
		{"not authenticated", map[string]any{"op": 3, "d": map[string]any{}}, CloseNotAuthenticated},
		{"bad json", "{not json", CloseDecodeError},
		{"bad shard", map[string]any{"op": 2, "d": map[string]any{"token": f.Token(), "intents": 1, "shard": []int{2, 2}}}, CloseInvalidShard},
		{"unknown intents", map[string]any{"op": 2, "d": map[string]any{"token": f.Token(), "intents": 1 << 30}}, CloseInvalidIntents},
		{"missing intents", map[string]any{"op": 2, "d": map[string]any{"token": f.Token()}}, CloseInvalidIntents},
		{"bad token", map[string]any{"op": 2, "d": map[string]any{"token": "nope", "intents": 1}}, CloseAuthenticationFailed},
	}
	for _, tc := range closeCases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawGateway(t, f)
			_, _ = readFrame(t, c) // HELLO
			if s, ok := tc.send.(string); ok {
				must[struct{}](t)(struct{}{}, c.WriteMessage(websocket.TextMessage, []byte(s)))
			} else {
				must[struct{}](t)(struct{}{}, c.WriteJSON(tc.send))
			}
			_, err := readFrame(t, c)
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.code {
				t.Fatalf("got %v, want close %d", err, tc.code)
			}
		})
	}

	t.Run("resume unknown session gets op 9", func(t *testing.T) {
		c := rawGateway(t, f)
		_, _ = readFrame(t, c)
		must[struct{}](t)(struct{}{}, c.WriteJSON(map[string]any{"op": 6, "d": map[string]any{"token": f.Token(), "session_id": "nope", "seq": 3}}))
		fr, _ := readFrame(t, c)
		if fr.Op != opInvalidSession || string(fr.D) != "false" {
			t.Fatalf("%+v", fr)
		}
	})

	t.Run("normal close ends the session", func(t *testing.T) {
		c := rawGateway(t, f)
		_, _ = readFrame(t, c)
		must[struct{}](t)(struct{}{}, c.WriteJSON(map[string]any{"op": 2, "d": map[string]any{"token": f.Token(), "intents": 1}}))
		ready, _ := readFrame(t, c)
		var rd struct {
			SessionID string `json:"session_id"`
		}
		_ = json.Unmarshal(ready.D, &rd)
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		_ = f.waitFor(testCtx(t), func() bool { _, ok := f.sessions[rd.SessionID]; return !ok })
		c2 := rawGateway(t, f)
		_, _ = readFrame(t, c2)
		must[struct{}](t)(struct{}{}, c2.WriteJSON(map[string]any{"op": 6, "d": map[string]any{"token": f.Token(), "session_id": rd.SessionID, "seq": 1}}))
		if fr, _ := readFrame(t, c2); fr.Op != opInvalidSession {
			t.Fatalf("resume after close 1000: %+v", fr)
		}
	})
}

func TestShardRouting(t *testing.T) {
	f := New(t)
	// The shard is (id >> 22) % 2.
	g0 := f.AddGuild(&discordgo.Guild{ID: "4194304", Name: "one"})    // 1<<22: shard 1
	g1 := f.AddGuild(&discordgo.Guild{ID: "8388608", Name: "two"})    // 2<<22: shard 0
	g3 := f.AddGuild(&discordgo.Guild{ID: "12582912", Name: "three"}) // 3<<22: shard 1
	for shard, want := range map[int][]string{0: {g1.ID}, 1: {g0.ID, g3.ID}} {
		// No GUILDS intent: no GUILD_CREATE mutating the READY guilds
		// while the test reads them (discordgo's state shares them).
		dg := mustSession(t, f, discordgo.IntentsNone, false)
		dg.ShardID, dg.ShardCount = shard, 2
		ready := events[*discordgo.Ready](dg)
		must[struct{}](t)(struct{}{}, dg.Open())
		r := recv(t, ready)
		var got []string
		for _, g := range r.Guilds {
			got = append(got, g.ID)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("shard %d guilds %v, want %v", shard, got, want)
		}
	}
}
