package discordtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

func TestUnauthorizedAndUnknownRoutes(t *testing.T) {
	w := newWorld(t)
	bad, _ := discordgo.New("Bot wrong-token")
	bad.Client = &http.Client{Transport: RewriteTransport(w.fake.URL, nil)}
	_, err := bad.User("@me")
	re := restErr(t, err, http.StatusUnauthorized, 0)
	if re.Message.Message != "401: Unauthorized" {
		t.Fatalf("message %q", re.Message.Message)
	}
	// A token without "Bot " is rejected the same way.
	raw, _ := discordgo.New(w.fake.Token())
	raw.Client = bad.Client
	if _, err := raw.User("@me"); err == nil {
		t.Fatal("token without Bot prefix accepted")
	}

	cases := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/api/v9/nope", 404, `{"code":0,"message":"404: Not Found"}`},
		{"GET", "/api/v6/users/@me", 404, `{"code":0,"message":"404: Not Found"}`},
		{"POST", "/api/v9/users/@me", 405, `{"code":0,"message":"405: Method Not Allowed"}`},
		{"GET", "/api/v9/gateway", 200, ""}, // no auth needed
		{"GET", "/api/v10/users/@me", 200, ""},
		{"GET", "/api/v9/channels/123", 404, `{"code":10003,"message":"Unknown Channel"}`},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, w.fake.URL+tc.path, nil)
		if tc.path != "/api/v9/gateway" {
			req.Header.Set("Authorization", "Bot "+w.fake.Token())
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.body != "" && string(body) != tc.body) {
			t.Errorf("%s %s = %d %s", tc.method, tc.path, resp.StatusCode, body)
		}
	}
}

func TestRateLimitHeadersAndRecording(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, 0, false)
	must[*discordgo.User](t)(dg.User("@me"))
	reqs := w.fake.Requests()
	last := reqs[len(reqs)-1]
	if last.Method != "GET" || last.Path != "/api/v9/users/@me" || last.Route != "GET /users/@me" || last.Status != 200 ||
		last.Header.Get("Authorization") != "Bot "+w.fake.Token() || !strings.HasPrefix(last.Header.Get("User-Agent"), "DiscordBot") {
		t.Fatalf("recorded %+v", last)
	}
	req, _ := http.NewRequest("GET", w.fake.URL+"/api/v9/users/@me", nil)
	req.Header.Set("Authorization", "Bot "+w.fake.Token())
	resp := must[*http.Response](t)(http.DefaultClient.Do(req))
	resp.Body.Close()
	for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After", "X-RateLimit-Bucket"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
	if resp.Header.Get("X-RateLimit-Remaining") != "4" {
		t.Errorf("remaining %s", resp.Header.Get("X-RateLimit-Remaining"))
	}
}

func TestRateLimitRetriedByDiscordgo(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, 0, false)
	limited := events[*discordgo.RateLimit](dg)
	h := w.fake.Inject(Fault{Method: "POST", Path: "/channels/" + w.text.ID + "/messages", RetryAfter: 20 * time.Millisecond})
	m := must[*discordgo.Message](t)(dg.ChannelMessageSend(w.text.ID, "eventually"))
	if h.Hits() != 1 {
		t.Fatalf("fault hits %d", h.Hits())
	}
	rl := recv(t, limited)
	if rl.RetryAfter != 20*time.Millisecond || rl.Message != "You are being rate limited." {
		t.Fatalf("rate limit event %+v", rl.TooManyRequests)
	}
	var statuses []int
	for _, r := range w.fake.Requests() {
		if r.Route == "POST /channels/{channel}/messages" {
			statuses = append(statuses, r.Status)
		}
	}
	if len(statuses) != 2 || statuses[0] != 429 || statuses[1] != 200 {
		t.Fatalf("statuses %v", statuses)
	}
	if got := w.fake.Messages(w.text.ID); len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("messages %+v", got)
	}

	// Without retries discordgo returns a RateLimitError; the raw answer
	// has Discord's body and headers.
	dg.ShouldRetryOnRateLimit = false
	w.fake.Inject(Fault{Path: "/users/@me", RetryAfter: 1500 * time.Millisecond})
	_, err := dg.User("@me")
	var rle *discordgo.RateLimitError
	if !errors.As(err, &rle) || rle.RetryAfter != 1500*time.Millisecond {
		t.Fatalf("err %v", err)
	}
	// discordgo honours X-RateLimit-Reset-After of the 429 for the bucket;
	// use another route so that the test does not wait for it.
	w.fake.Inject(Fault{Path: "/users/@me", RetryAfter: 1500 * time.Millisecond, Global: true})
	req, _ := http.NewRequest("GET", w.fake.URL+"/api/v9/users/@me", nil)
	req.Header.Set("Authorization", "Bot "+w.fake.Token())
	resp := must[*http.Response](t)(http.DefaultClient.Do(req))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || resp.Header.Get("X-RateLimit-Global") != "true" ||
		string(body) != `{"global":true,"message":"You are being rate limited.","retry_after":1.5}` {
		t.Fatalf("429: %d %v %s", resp.StatusCode, resp.Header, body)
	}

	// Other statuses: discordgo retries 502 up to MaxRestRetries.
	h502 := w.fake.Inject(Fault{Path: "/channels/" + w.text.ID, Status: 502, Count: 2})
	must[*discordgo.Channel](t)(dg.Channel(w.text.ID))
	if h502.Hits() != 2 {
		t.Fatalf("502 hits %d", h502.Hits())
	}
	h500 := w.fake.Inject(Fault{Method: "GET", Path: "/channels/" + w.text.ID, Status: 500, Count: -1})
	_, err = dg.Channel(w.text.ID)
	restErr(t, err, 500, 0)
	_, err = dg.Channel(w.text.ID)
	restErr(t, err, 500, 0)
	if err := h500.WaitHits(testCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	h500.Clear()
	must[*discordgo.Channel](t)(dg.Channel(w.text.ID))
}

func TestChannelMessageSendEditDelete(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, allIntents, false)
	creates := events[*discordgo.MessageCreate](dg)
	updates := events[*discordgo.MessageUpdate](dg)
	deletes := events[*discordgo.MessageDelete](dg)
	must[struct{}](t)(struct{}{}, dg.Open())
	bot := w.fake.BotUser()

	m := must[*discordgo.Message](t)(dg.ChannelMessageSend(w.text.ID, "thinking…"))
	if m.Author.ID != bot.ID || m.ChannelID != w.text.ID || m.GuildID != w.guild.ID || m.Content != "thinking…" || m.Type != 0 {
		t.Fatalf("sent %+v", m)
	}
	// The bot receives its own message on the gateway, as on Discord.
	if c := recv(t, creates); c.ID != m.ID || c.Member == nil {
		t.Fatalf("MESSAGE_CREATE %+v", c.Message)
	}
	e := must[*discordgo.Message](t)(dg.ChannelMessageEdit(w.text.ID, m.ID, "the answer"))
	if e.Content != "the answer" || e.EditedTimestamp == nil {
		t.Fatalf("edited %+v", e)
	}
	if u := recv(t, updates); u.Content != "the answer" {
		t.Fatalf("MESSAGE_UPDATE %q", u.Content)
	}
	e = must[*discordgo.Message](t)(dg.ChannelMessageEditComplex(&discordgo.MessageEdit{
		ID: m.ID, Channel: w.text.ID, Content: ptr("final"),
		Components: &[]discordgo.MessageComponent{discordgo.ActionsRow{Components: []discordgo.MessageComponent{
			discordgo.Button{Label: "Again", CustomID: "again"},
		}}},
	}))
	if len(e.Components) != 1 {
		t.Fatalf("components in answer %+v", e.Components)
	}
	rec, _ := w.fake.MessageByID(m.ID)
	if rec.Content != "final" || strings.Join(rec.History, "|") != "thinking…|the answer" || len(rec.Components) != 1 {
		t.Fatalf("record %+v history %v", rec.Message, rec.History)
	}
	row := rec.Components[0].(*discordgo.ActionsRow)
	if b := row.Components[0].(*discordgo.Button); b.CustomID != "again" || b.Style != discordgo.PrimaryButton {
		t.Fatalf("button %+v", b)
	}
	got := must[*discordgo.Message](t)(dg.ChannelMessage(w.text.ID, m.ID))
	if got.Content != "final" || len(got.Components) != 1 {
		t.Fatalf("GET %+v", got)
	}
	must[struct{}](t)(struct{}{}, dg.ChannelMessageDelete(w.text.ID, m.ID))
	if d := recvWhere(t, deletes, func(d *discordgo.MessageDelete) bool { return d.ID == m.ID }); d.ChannelID != w.text.ID || d.GuildID != w.guild.ID {
		t.Fatalf("MESSAGE_DELETE %+v", d.Message)
	}
	if len(w.fake.Messages(w.text.ID)) != 0 {
		t.Fatal("deleted message still listed")
	}
	_, err := dg.ChannelMessage(w.text.ID, m.ID)
	restErr(t, err, 404, 10008)
	_, err = dg.ChannelMessageEdit(w.text.ID, m.ID, "x")
	restErr(t, err, 404, 10008)

	// Users' messages cannot be edited by the bot.
	um := w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "mine"})
	_, err = dg.ChannelMessageEdit(w.text.ID, um.ID, "yours")
	restErr(t, err, 403, 50005)
	_, err = dg.ChannelMessageSend("999", "x")
	restErr(t, err, 404, 10003)
}

func ptr[T any](v T) *T { return &v }

func TestMessageValidation(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, 0, false)

	must[*discordgo.Message](t)(dg.ChannelMessageSend(w.text.ID, strings.Repeat("é", 2000)))
	_, err := dg.ChannelMessageSend(w.text.ID, strings.Repeat("x", 2001))
	re := restErr(t, err, 400, 50035)
	var body struct {
		Message string `json:"message"`
		Errors  map[string]struct {
			Errors []struct{ Code, Message string } `json:"_errors"`
		} `json:"errors"`
	}
	must[struct{}](t)(struct{}{}, json.Unmarshal(re.ResponseBody, &body))
	if body.Message != "Invalid Form Body" || body.Errors["content"].Errors[0].Code != "BASE_TYPE_MAX_LENGTH" ||
		body.Errors["content"].Errors[0].Message != "Must be 2000 or fewer in length." {
		t.Fatalf("body %s", re.ResponseBody)
	}

	_, err = dg.ChannelMessageSend(w.text.ID, "")
	restErr(t, err, 400, 50006)
	_, err = dg.ChannelMessageSend(w.text.ID, "   ")
	restErr(t, err, 400, 50006)

	cases := []struct {
		name string
		send *discordgo.MessageSend
		path string
	}{
		{"embed description", &discordgo.MessageSend{Embeds: []*discordgo.MessageEmbed{{Description: strings.Repeat("d", 4097)}}}, `"embeds":{"0":{"description"`},
		{"too many embeds", &discordgo.MessageSend{Embeds: make11Embeds()}, `"embeds":{"_errors"`},
		{"button without custom id", &discordgo.MessageSend{Content: "x", Components: []discordgo.MessageComponent{
			discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.Button{Label: "a"}}}}}, `BUTTON_COMPONENT_CUSTOM_ID_REQUIRED`},
		{"duplicate custom id", &discordgo.MessageSend{Content: "x", Components: []discordgo.MessageComponent{
			discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.Button{Label: "a", CustomID: "c"}, discordgo.Button{Label: "b", CustomID: "c"}}}}}, `COMPONENT_CUSTOM_ID_DUPLICATED`},
		{"allowed mentions exclusive", &discordgo.MessageSend{Content: "x", AllowedMentions: &discordgo.MessageAllowedMentions{
			Parse: []discordgo.AllowedMentionType{discordgo.AllowedMentionTypeUsers}, Users: []string{w.alice.ID}}}, `MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE`},
		{"reply to unknown", &discordgo.MessageSend{Content: "x", Reference: &discordgo.MessageReference{MessageID: "42"}}, `MESSAGE_REFERENCE_UNKNOWN_MESSAGE`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dg.ChannelMessageSendComplex(w.text.ID, tc.send)
			re := restErr(t, err, 400, 50035)
			if !strings.Contains(string(re.ResponseBody), tc.path) {
				t.Fatalf("body %s lacks %s", re.ResponseBody, tc.path)
			}
		})
	}
	// A reply to an unknown message with fail_if_not_exists false is sent
	// as a plain message.
	no := false
	m := must[*discordgo.Message](t)(dg.ChannelMessageSendReply(w.text.ID, "orphan", &discordgo.MessageReference{MessageID: "42", FailIfNotExists: &no}))
	if m.Type != discordgo.MessageTypeDefault || m.MessageReference != nil {
		t.Fatalf("orphan reply %+v", m)
	}
	// Invalid JSON.
	_, err = dg.RequestWithBucketID("POST", discordgo.EndpointChannelMessages(w.text.ID), json.RawMessage(`{"content":`), "")
	if err == nil {
		t.Fatal("invalid JSON accepted")
	}
	req, _ := http.NewRequest("POST", w.fake.URL+"/api/v9/channels/"+w.text.ID+"/messages", strings.NewReader(`{"content":`))
	req.Header.Set("Authorization", "Bot "+w.fake.Token())
	resp := must[*http.Response](t)(http.DefaultClient.Do(req))
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "50109") {
		t.Fatalf("invalid JSON: %d %s", resp.StatusCode, b)
	}
}

func make11Embeds() []*discordgo.MessageEmbed {
	out := make([]*discordgo.MessageEmbed, 11)
	for i := range out {
		out[i] = &discordgo.MessageEmbed{Title: "t"}
	}
	return out
}

func TestRepliesAndMentions(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, 0, false)
	um := w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "question"})

	m := must[*discordgo.Message](t)(dg.ChannelMessageSendReply(w.text.ID, "answer", um.Reference()))
	if m.Type != discordgo.MessageTypeReply || m.MessageReference.MessageID != um.ID || m.ReferencedMessage == nil ||
		m.ReferencedMessage.Content != "question" || len(m.Mentions) != 1 || m.Mentions[0].ID != w.alice.ID {
		t.Fatalf("reply %+v ref %+v mentions %+v", m, m.ReferencedMessage, m.Mentions)
	}
	// allowed_mentions with nothing parsed and replied_user false: no ping.
	none := &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
	m2 := must[*discordgo.Message](t)(dg.ChannelMessageSendComplex(w.text.ID, &discordgo.MessageSend{
		Content: "<@" + w.alice.ID + "> @everyone <@&" + w.role.ID + ">", Reference: um.Reference(), AllowedMentions: none,
	}))
	if len(m2.Mentions) != 0 || m2.MentionEveryone || len(m2.MentionRoles) != 0 {
		t.Fatalf("suppressed mentions %+v %v %v", m2.Mentions, m2.MentionEveryone, m2.MentionRoles)
	}
	rec, _ := w.fake.MessageByID(m2.ID)
	if rec.AllowedMentions == nil || rec.AllowedMentions.Parse == nil || len(rec.AllowedMentions.Parse) != 0 || rec.AllowedMentions.RepliedUser {
		t.Fatalf("recorded allowed_mentions %+v", rec.AllowedMentions)
	}
	// Without allowed_mentions everything in the content mentions.
	m3 := must[*discordgo.Message](t)(dg.ChannelMessageSend(w.text.ID, "<@!"+w.alice.ID+"> <@&"+w.role.ID+"> @here"))
	if len(m3.Mentions) != 1 || len(m3.MentionRoles) != 1 || !m3.MentionEveryone {
		t.Fatalf("default mentions %+v %v %v", m3.Mentions, m3.MentionRoles, m3.MentionEveryone)
	}
	// Only the listed users.
	m4 := must[*discordgo.Message](t)(dg.ChannelMessageSendComplex(w.text.ID, &discordgo.MessageSend{
		Content: "<@" + w.alice.ID + ">", AllowedMentions: &discordgo.MessageAllowedMentions{Users: []string{"1"}},
	}))
	if len(m4.Mentions) != 0 {
		t.Fatalf("unlisted user mentioned %+v", m4.Mentions)
	}
	// A user's reply to the bot mentions the bot, so its content is visible
	// without MESSAGE_CONTENT.
	r := w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "thanks", ReferencedMessageID: m.ID})
	if r.Type != discordgo.MessageTypeReply || len(r.Mentions) != 1 || r.Mentions[0].ID != w.fake.BotUser().ID || r.ReferencedMessage.ID != m.ID {
		t.Fatalf("user reply %+v", r)
	}
	r2 := w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "quiet", ReferencedMessageID: m.ID, NoReplyMention: true})
	if len(r2.Mentions) != 0 {
		t.Fatalf("NoReplyMention mentions %+v", r2.Mentions)
	}
}

func TestNonceDeduplication(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, 0, false)
	send := func(nonce any, enforce bool) *discordgo.Message {
		t.Helper()
		body := map[string]any{"content": "once", "nonce": nonce, "enforce_nonce": enforce}
		b, err := dg.RequestWithBucketID("POST", discordgo.EndpointChannelMessages(w.text.ID), body, discordgo.EndpointChannelMessages(w.text.ID))
		if err != nil {
			t.Fatal(err)
		}
		var m discordgo.Message
		must[struct{}](t)(struct{}{}, json.Unmarshal(b, &m))
		return &m
	}
	a := send("job-1", true)
	b := send("job-1", true)
	if a.ID != b.ID || len(w.fake.Messages(w.text.ID)) != 1 {
		t.Fatalf("nonce not enforced: %s %s", a.ID, b.ID)
	}
	rec, _ := w.fake.MessageByID(a.ID)
	if rec.Nonce != "job-1" {
		t.Fatalf("nonce %q", rec.Nonce)
	}
	if c := send(12345, true); c.ID == a.ID {
		t.Fatal("different nonce deduplicated")
	}
	if d := send("free", false); d.ID == send("free", false).ID {
		t.Fatal("nonce without enforce_nonce deduplicated")
	}
	w.fake.Advance(DefaultNonceWindow + time.Second)
	if e := send("job-1", true); e.ID == a.ID {
		t.Fatal("nonce remembered after the window")
	}
	// Too long.
	_, err := dg.RequestWithBucketID("POST", discordgo.EndpointChannelMessages(w.text.ID),
		map[string]any{"content": "x", "nonce": strings.Repeat("n", 26)}, "")
	restErr(t, err, 400, 50035)
}

func TestMultipartAttachments(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, 0, false)
	data := bytes.Repeat([]byte("long answer\n"), 300)
	m := must[*discordgo.Message](t)(dg.ChannelMessageSendComplex(w.text.ID, &discordgo.MessageSend{
		Content: "see attached",
		Files: []*discordgo.File{
			{Name: "answer.md", ContentType: "text/markdown", Reader: bytes.NewReader(data)},
			{Name: "b.bin", Reader: bytes.NewReader([]byte{0, 1, 2})},
		},
	}))
	if len(m.Attachments) != 2 || m.Attachments[0].Filename != "answer.md" || m.Attachments[0].Size != len(data) ||
		m.Attachments[0].ContentType != "text/markdown" || m.Attachments[1].ContentType != "application/octet-stream" {
		t.Fatalf("attachments %+v", m.Attachments)
	}
	rec, _ := w.fake.MessageByID(m.ID)
	if len(rec.Files) != 2 || !bytes.Equal(rec.Files[0].Data, data) || !bytes.Equal(rec.Files[1].Data, []byte{0, 1, 2}) {
		t.Fatalf("files %+v", rec.Files)
	}
	// The CDN URL works through RewriteTransport.
	resp := must[*http.Response](t)(dg.Client.Get(m.Attachments[0].URL))
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(m.Attachments[0].URL, "https://cdn.discordapp.com/attachments/"+w.text.ID+"/") || !bytes.Equal(got, data) {
		t.Fatalf("CDN %s: %d bytes", m.Attachments[0].URL, len(got))
	}
	// Editing with a new file keeps the old ones unless attachments lists them.
	e := must[*discordgo.Message](t)(dg.ChannelMessageEditComplex(&discordgo.MessageEdit{
		ID: m.ID, Channel: w.text.ID, Attachments: &[]*discordgo.MessageAttachment{m.Attachments[0]},
		Files: []*discordgo.File{{Name: "c.txt", Reader: strings.NewReader("c")}},
	}))
	if len(e.Attachments) != 2 || e.Attachments[0].ID != m.Attachments[0].ID || e.Attachments[1].Filename != "c.txt" {
		t.Fatalf("edited attachments %+v", e.Attachments)
	}
	// Over 10 MiB: 413 code 40005.
	_, err := dg.ChannelMessageSendComplex(w.text.ID, &discordgo.MessageSend{
		Files: []*discordgo.File{{Name: "big", Reader: bytes.NewReader(make([]byte, maxRequestBody+1))}},
	})
	restErr(t, err, 413, 40005)
}

func TestThreads(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, allIntents, false)
	threads := events[*discordgo.ThreadCreate](dg)
	updates := events[*discordgo.MessageUpdate](dg)
	must[struct{}](t)(struct{}{}, dg.Open())

	um := w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "start here"})
	th := must[*discordgo.Channel](t)(dg.MessageThreadStart(w.text.ID, um.ID, "Chat with alice", 60))
	if th.ID != um.ID || th.Type != discordgo.ChannelTypeGuildPublicThread || th.ParentID != w.text.ID ||
		th.GuildID != w.guild.ID || th.Name != "Chat with alice" || th.ThreadMetadata.AutoArchiveDuration != 60 || th.OwnerID != w.fake.BotUser().ID {
		t.Fatalf("thread %+v", th)
	}
	if tc := recv(t, threads); tc.ID != th.ID || !tc.NewlyCreated {
		t.Fatalf("THREAD_CREATE %+v", tc)
	}
	if u := recvWhere(t, updates, func(u *discordgo.MessageUpdate) bool { return u.ID == um.ID }); u.Flags&discordgo.MessageFlagsHasThread == 0 || u.Thread == nil || u.Thread.ID != th.ID {
		t.Fatalf("starter MESSAGE_UPDATE %+v", u.Message)
	}
	if st, err := dg.State.Channel(th.ID); err != nil || st.ParentID != w.text.ID {
		t.Fatalf("state thread %+v %v", st, err)
	}
	_, err := dg.MessageThreadStart(w.text.ID, um.ID, "again", 60)
	restErr(t, err, 400, 160004)
	_, err = dg.MessageThreadStart(w.text.ID, "42", "x", 60)
	restErr(t, err, 404, 10008)
	_, err = dg.MessageThreadStart(w.text.ID, w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "x"}).ID, "", 60)
	restErr(t, err, 400, 50035)

	// Messages in the thread.
	in := must[*discordgo.Message](t)(dg.ChannelMessageSend(th.ID, "in the thread"))
	if in.ChannelID != th.ID || in.GuildID != w.guild.ID {
		t.Fatalf("thread message %+v", in)
	}
	got := must[*discordgo.Channel](t)(dg.Channel(th.ID))
	if got.MessageCount != 1 || got.LastMessageID != in.ID {
		t.Fatalf("thread after message %+v", got)
	}

	// Without a message: API v9 defaults to a private thread.
	priv := must[*discordgo.Channel](t)(dg.ThreadStartComplex(w.text.ID, &discordgo.ThreadStart{Name: "private"}))
	if priv.Type != discordgo.ChannelTypeGuildPrivateThread {
		t.Fatalf("default thread type %d", priv.Type)
	}
	pub := must[*discordgo.Channel](t)(dg.ThreadStart(w.text.ID, "public", discordgo.ChannelTypeGuildPublicThread, 1440))
	if pub.Type != discordgo.ChannelTypeGuildPublicThread || pub.ID == priv.ID {
		t.Fatalf("public thread %+v", pub)
	}
	// In an announcement channel the thread is type 10.
	nm := must[*discordgo.Message](t)(dg.ChannelMessageSend(w.news.ID, "news"))
	nt := must[*discordgo.Channel](t)(dg.MessageThreadStart(w.news.ID, nm.ID, "discussion", 1440))
	if nt.Type != discordgo.ChannelTypeGuildNewsThread {
		t.Fatalf("news thread type %d", nt.Type)
	}
	if n := len(w.fake.Threads()); n != 4 {
		t.Fatalf("%d threads recorded", n)
	}
	// A user posting in the thread.
	w.fake.SendMessage(UserMessage{ChannelID: th.ID, Author: w.alice, Content: "follow-up question"})
	if msgs := w.fake.Messages(th.ID); len(msgs) != 2 || msgs[1].Content != "follow-up question" {
		t.Fatalf("thread messages %+v", msgs)
	}
}

func TestTypingDMsUsersMembers(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, 0, false)
	must[struct{}](t)(struct{}{}, dg.ChannelTyping(w.text.ID))
	if ty := w.fake.Typings(); len(ty) != 1 || ty[0].ChannelID != w.text.ID || !ty[0].At.Equal(DefaultStart) {
		t.Fatalf("typings %+v", ty)
	}
	restErr(t, dg.ChannelTyping("1"), 404, 10003)

	dm := must[*discordgo.Channel](t)(dg.UserChannelCreate(w.alice.ID))
	if dm.Type != discordgo.ChannelTypeDM || len(dm.Recipients) != 1 || dm.Recipients[0].ID != w.alice.ID {
		t.Fatalf("DM %+v", dm)
	}
	if again := must[*discordgo.Channel](t)(dg.UserChannelCreate(w.alice.ID)); again.ID != dm.ID {
		t.Fatal("second DM channel")
	}
	if w.fake.DMChannel(w.alice.ID).ID != dm.ID {
		t.Fatal("DMChannel differs")
	}
	_, err := dg.UserChannelCreate("404")
	restErr(t, err, 400, 50033)
	must[*discordgo.Message](t)(dg.ChannelMessageSend(dm.ID, "hello in private"))
	if got := w.fake.Messages(dm.ID); len(got) != 1 || got[0].GuildID != "" {
		t.Fatalf("DM messages %+v", got)
	}

	mem := must[*discordgo.Member](t)(dg.GuildMember(w.guild.ID, w.alice.ID))
	if mem.User.ID != w.alice.ID || mem.Nick != "ali" || len(mem.Roles) != 1 {
		t.Fatalf("member %+v", mem)
	}
	_, err = dg.GuildMember(w.guild.ID, "404")
	restErr(t, err, 404, 10007)
	_, err = dg.GuildMember("404", w.alice.ID)
	restErr(t, err, 404, 10004)
	if u := must[*discordgo.User](t)(dg.User(w.alice.ID)); u.Username != "alice" {
		t.Fatalf("user %+v", u)
	}
	if me := must[*discordgo.User](t)(dg.User("@me")); !me.Bot || me.ID != w.fake.BotUser().ID {
		t.Fatalf("@me %+v", me)
	}
	if g := must[*discordgo.Guild](t)(dg.Guild(w.guild.ID)); g.Name != "horde" || len(g.Roles) != 2 {
		t.Fatalf("guild %+v", g)
	}
	if c := must[*discordgo.Channel](t)(dg.Channel(w.text.ID)); c.Name != "general" || c.GuildID != w.guild.ID {
		t.Fatalf("channel %+v", c)
	}
	gw := must[*discordgo.GatewayBotResponse](t)(dg.GatewayBot())
	if gw.URL != "ws"+strings.TrimPrefix(w.fake.URL, "http")+"/gateway/" || gw.Shards != 1 {
		t.Fatalf("gateway/bot %+v", gw)
	}
	app := must[*discordgo.Application](t)(dg.Application("@me"))
	if app.ID != w.fake.ApplicationID() {
		t.Fatalf("application %+v", app)
	}
}

func TestListMessagesAndReactions(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, 0, false)
	var ids []string
	for i := range 5 {
		ids = append(ids, must[*discordgo.Message](t)(dg.ChannelMessageSend(w.text.ID, strings.Repeat("m", i+1))).ID)
	}
	list := must[[]*discordgo.Message](t)(dg.ChannelMessages(w.text.ID, 3, "", "", ""))
	if len(list) != 3 || list[0].ID != ids[4] || list[2].ID != ids[2] {
		t.Fatalf("newest first: %v", idsOf(list))
	}
	list = must[[]*discordgo.Message](t)(dg.ChannelMessages(w.text.ID, 2, ids[3], "", ""))
	if len(list) != 2 || list[0].ID != ids[2] || list[1].ID != ids[1] {
		t.Fatalf("before: %v", idsOf(list))
	}
	list = must[[]*discordgo.Message](t)(dg.ChannelMessages(w.text.ID, 2, "", ids[1], ""))
	if len(list) != 2 || list[0].ID != ids[3] || list[1].ID != ids[2] {
		t.Fatalf("after: %v", idsOf(list))
	}
	must[struct{}](t)(struct{}{}, dg.MessageReactionAdd(w.text.ID, ids[0], "⏳"))
	m := must[*discordgo.Message](t)(dg.ChannelMessage(w.text.ID, ids[0]))
	if len(m.Reactions) != 1 || m.Reactions[0].Emoji.Name != "⏳" || !m.Reactions[0].Me {
		t.Fatalf("reactions %+v", m.Reactions)
	}
	must[struct{}](t)(struct{}{}, dg.MessageReactionRemove(w.text.ID, ids[0], "⏳", "@me"))
	m = must[*discordgo.Message](t)(dg.ChannelMessage(w.text.ID, ids[0]))
	if len(m.Reactions) != 0 {
		t.Fatalf("reactions after remove %+v", m.Reactions)
	}
	if r := w.fake.Reactions(); len(r) != 2 || r[0].Emoji != "⏳" || !r[1].Removed {
		t.Fatalf("recorded reactions %+v", r)
	}
}

func idsOf(ms []*discordgo.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestConcurrentUse(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, allIntents, false)
	msgs := events[*discordgo.MessageCreate](dg)
	must[struct{}](t)(struct{}{}, dg.Open())
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			w.fake.SendMessage(UserMessage{ChannelID: w.text.ID, Author: w.alice, Content: "user " + string(rune('a'+i))})
		}()
		go func() {
			defer wg.Done()
			if _, err := dg.ChannelMessageSend(w.text.ID, "bot"); err != nil {
				t.Error(err)
			}
			_ = w.fake.Requests()
			_ = w.fake.AllMessages()
		}()
	}
	wg.Wait()
	for range 2 * n {
		recv(t, msgs)
	}
	if got := len(w.fake.Messages(w.text.ID)); got != 2*n {
		t.Fatalf("%d messages", got)
	}
}

func TestWaitHelpers(t *testing.T) {
	w := newWorld(t)
	dg := mustSession(t, w.fake, 0, false)
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		m, err := dg.ChannelMessageSend(w.text.ID, "placeholder")
		if err == nil {
			_, err = dg.ChannelMessageEdit(w.text.ID, m.ID, "final answer")
		}
		done <- err
	}()
	m, err := w.fake.WaitMessage(ctx, func(m Message) bool { return m.Content == "final answer" })
	if err != nil || strings.Join(m.History, "") != "placeholder" {
		t.Fatalf("WaitMessage %+v %v", m, err)
	}
	r, err := w.fake.WaitRequest(ctx, func(r Request) bool { return r.Route == "PATCH /channels/{channel}/messages/{message}" })
	if err != nil || !strings.Contains(string(r.Body), "final answer") || r.Status != 200 {
		t.Fatalf("WaitRequest %+v %v", r, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.fake.WaitMessage(cctx, func(Message) bool { return false }); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled WaitMessage: %v", err)
	}
	if err := w.fake.WaitResumed(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled WaitResumed: %v", err)
	}
	w.fake.Close()
	w.fake.Close() // idempotent
	if _, err := dg.User("@me"); err == nil {
		t.Fatal("request after Close")
	}
}
