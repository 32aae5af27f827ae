package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bot/discord/discordtest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// The kill -9 tests drive two hordechat processes, one after the other, on
// one data directory, against fakes that outlive both: a fake Horde whose
// clock only the test moves (so nothing finishes before the kill unless
// the test says so) and a fake Discord.

const (
	k9Model   = "koboldcpp/Fimbulvetr-11B-v2"
	k9Passkey = "k9-proxy-passkey"
	k9OpKey   = "k9-operator-key-0123456789"
	// k9JobTime is how long a worker takes for one answer, in the fake
	// Horde's time: every answer is k9AnswerLen runes, 4 to a token, and
	// the workers write one token a second.
	k9JobTime   = 10 * time.Second
	k9AnswerLen = 40
	// k9Threads is how many jobs the fake's workers run at once; the rest
	// wait in the queue.
	k9Threads = 40
	// k9Timeout guards every wait against a hang; no test asserts on time.
	k9Timeout = 3 * time.Minute
)

// k9Question is what a person asks; the tag names the turn everywhere
// (in the prompt, the Horde's answer, the chat and the history).
func k9Question(tag string) string { return "please answer qid=" + tag }

// k9Answer is what the fake Horde's workers answer to the prompt whose
// latest question is tag: always k9AnswerLen runes, so every job takes
// k9JobTime.
func k9Answer(tag string) string {
	s := "Answer to " + tag + ": "
	pad := "all good here, my friend and more words to pad"
	return s + pad[:k9AnswerLen-utf8.RuneCountInString(s)]
}

// k9Responder answers the latest question of the prompt.
func k9Responder(j hordetest.Job) string { return k9Answer(k9TagOf(j.Prompt)) }

// k9TagOf returns the tag of the latest question in a prompt ("" if none).
func k9TagOf(prompt string) string {
	i := strings.LastIndex(prompt, "qid=")
	if i < 0 || len(prompt) < i+8 {
		return ""
	}
	return prompt[i+4 : i+8]
}

// k9World is what outlives the processes: the fakes, the configuration and
// the data directory.
type k9World struct {
	t      *testing.T
	horde  *hordetest.Server
	dc     *discordtest.Server
	env    []string
	dbPath string

	bot      *discordgo.User
	guild    *discordgo.Guild
	channels []*discordgo.Channel
	users    []*discordgo.User
	// hordeKeys are the Horde keys of users[i] for i < len(hordeKeys):
	// those users link them with /link.
	hordeKeys []string
	// v1Keys are the Horde keys /v1 callers send as bearer tokens.
	v1Keys []string
	// tags maps the Horde's request ids to the tags of their questions.
	tags map[string]string
	mx   *k9Matrix // nil when Matrix is off
}

func newK9World(t *testing.T, nUsers, nChannels, nLinked, nV1Keys int) *k9World {
	t.Helper()
	w := &k9World{t: t}
	hordeUsers := []hordetest.User{{APIKey: k9OpKey, Username: "operator", Kudos: 1e7, Concurrency: 500}}
	for i := range nLinked {
		k := fmt.Sprintf("k9-linked-key-%02d-abcdef0123", i)
		w.hordeKeys = append(w.hordeKeys, k)
		hordeUsers = append(hordeUsers, hordetest.User{APIKey: k, Username: fmt.Sprintf("linked%02d", i), Kudos: 1e6, Concurrency: 100})
	}
	for i := range nV1Keys {
		k := fmt.Sprintf("k9-v1-key-%02d-abcdef0123456", i)
		w.v1Keys = append(w.v1Keys, k)
		hordeUsers = append(hordeUsers, hordetest.User{APIKey: k, Username: fmt.Sprintf("v1user%02d", i), Kudos: 1e6, Concurrency: 100})
	}
	worker := func(name string) hordetest.Worker {
		return hordetest.Worker{Name: name, Models: []string{k9Model}, MaxLength: 512, MaxContextLength: 8192,
			TokensPerSecond: float64(k9AnswerLen/4) / k9JobTime.Seconds(), Threads: k9Threads / 2}
	}
	w.horde = hordetest.New(t,
		hordetest.WithPasskey(k9Passkey),
		hordetest.WithoutRateLimits(),
		hordetest.WithResponder(k9Responder),
		hordetest.WithWorkers(worker("k9-worker-a"), worker("k9-worker-b")),
		hordetest.WithUsers(hordeUsers...),
	)

	// Discord's clock stands still at the real now: interaction tokens
	// stay alive for the processes, which read the real clock.
	w.dc = discordtest.New(t, discordtest.WithClock(clockwork.NewFakeClockAt(time.Now())))
	w.bot = w.dc.BotUser()
	owner := w.dc.AddUser(&discordgo.User{ID: "100000000000000999", Username: "owner"})
	w.guild = w.dc.AddGuild(&discordgo.Guild{Name: "horde", OwnerID: owner.ID})
	for i := range nUsers {
		u := w.dc.AddUser(&discordgo.User{ID: fmt.Sprintf("1000000000000001%02d", i), Username: fmt.Sprintf("user%02d", i)})
		w.dc.AddMember(w.guild.ID, &discordgo.Member{User: u})
		w.users = append(w.users, u)
	}
	for i := range nChannels {
		w.channels = append(w.channels, w.dc.AddChannel(&discordgo.Channel{GuildID: w.guild.ID, Name: fmt.Sprintf("chan%02d", i), Type: discordgo.ChannelTypeGuildText}))
	}

	w.env = testEnv(t,
		"HORDECHAT_HORDE__BASE_URL="+w.horde.URL,
		"HORDECHAT_HORDE__API_KEY="+k9OpKey,
		"HORDECHAT_HORDE__PROXY_PASSKEY="+k9Passkey,
		"HORDECHAT_BRIDGE__DEFAULT_MODEL="+k9Model,
		"HORDECHAT_BRIDGE__STATUS_CALLS_PER_SECOND=100",
		"HORDECHAT_DISCORD__TOKEN="+w.dc.Token(),
		"HORDECHAT_DISCORD__API_BASE_URL="+w.dc.URL+"/api/v10",
		"HORDECHAT_DISCORD__MESSAGE_CONTENT=true",
		"HORDECHAT_CHAT__USER_RATE=0s",
		"HORDECHAT_CHAT__USER_CONCURRENCY=20",
		"HORDECHAT_CHAT__MAX_PROGRESS_EDITS=0",
		"HORDECHAT_OPENAI__MAX_CONCURRENT=0",
		"HORDECHAT_OPENAI__RATE_LIMIT_PER_MINUTE=0",
	)
	for _, kv := range w.env {
		if p, ok := strings.CutPrefix(kv, "HORDECHAT_STORAGE__PATH="); ok {
			w.dbPath = p
		}
	}
	if w.dbPath == "" || filepath.Base(w.dbPath) != "hordechat.db" {
		t.Fatalf("no storage path in %q", w.env)
	}
	return w
}

// k9Poll waits until cond holds, checking it every few milliseconds: the
// child's log, its /readyz and the fake Horde's records are the signals
// another process gives, and none of them can be waited on directly.
func k9Poll(ctx context.Context, what string, cond func() bool) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
	return nil
}

// start runs a hordechat process on the world and waits until it serves
// chat: Discord identified, commands registered (the first start only:
// they stay registered), the Horde's models loaded.
func (w *k9World) start(ctx context.Context, first bool) *child {
	w.t.Helper()
	w.dc.DropConnections() // marks: WaitIdentified waits for this process
	c := startChild(w.t, w.env)
	if _, err := w.dc.WaitIdentified(ctx); err != nil {
		w.t.Fatalf("hordechat never identified on Discord: %v\n%s", err, c.stderr.String())
	}
	if first {
		if _, err := w.dc.WaitRequest(ctx, func(r discordtest.Request) bool {
			return r.Method == http.MethodPut && strings.HasSuffix(r.Path, "/commands") && r.Status == http.StatusOK
		}); err != nil {
			w.t.Fatalf("slash commands never registered: %v\n%s", err, c.stderr.String())
		}
	}
	if w.mx != nil {
		w.waitMatrix(ctx, c)
	}
	if err := k9Poll(ctx, "/readyz", func() bool {
		resp, err := http.Get(c.url() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		w.t.Fatalf("%v\n%s", err, c.stderr.String())
	}
	return c
}

// link makes user i link their Horde key with /link and its modal.
func (w *k9World) link(ctx context.Context, i int) {
	w.t.Helper()
	u := w.users[i]
	ix := w.dc.SlashCommand(discordtest.SlashCommand{Name: "link", ChannelID: w.channels[0].ID, User: u})
	got, err := w.dc.WaitResponse(ctx, ix.ID)
	if err != nil || got.Response.Type != discordgo.InteractionResponseModal || got.Response.Data == nil {
		w.t.Fatalf("/link did not open a modal: %v %+v", err, got.Response)
	}
	sub := w.dc.SubmitModal(discordtest.ModalSubmit{CustomID: got.Response.Data.CustomID, User: u, Values: map[string]string{"key": w.hordeKeys[i]}})
	if _, err := w.dc.WaitInteraction(ctx, sub.ID, func(in discordtest.Interaction) bool {
		return in.Original != nil && strings.Contains(in.Original.Content, "Linked")
	}); err != nil {
		w.t.Fatalf("user %d: /link not confirmed: %v", i, err)
	}
}

// k9Turn is one question asked in chat and where its answer belongs.
type k9Turn struct {
	tag      string
	platform string // "" is Discord
	// place is where the answer goes: the Discord channel, thread or DM;
	// the Matrix room, or room|thread root.
	place string
	room  string // the Matrix room
	conv  string // the conversation's key in storage
	user  int
}

// mention asks in channel ch with a mention: the bot answers in a new
// thread from the message.
func (w *k9World) mention(ch, user int, tag string) k9Turn {
	m := w.dc.SendMessage(discordtest.UserMessage{ChannelID: w.channels[ch].ID, Author: w.users[user], Content: "<@" + w.bot.ID + "> " + k9Question(tag)})
	return k9Turn{tag: tag, place: m.ID, conv: "discord:" + w.guild.ID + ":" + m.ID, user: user}
}

// inThread asks in one of the bot's threads, without a mention.
func (w *k9World) inThread(thread k9Turn, user int, tag string) k9Turn {
	w.dc.SendMessage(discordtest.UserMessage{ChannelID: thread.place, Author: w.users[user], Content: k9Question(tag)})
	return k9Turn{tag: tag, place: thread.place, conv: thread.conv, user: user}
}

// dm asks in a direct message.
func (w *k9World) dm(user int, tag string) k9Turn {
	ch := w.dc.DMChannel(w.users[user].ID)
	w.dc.SendMessage(discordtest.UserMessage{ChannelID: ch.ID, Author: w.users[user], Content: k9Question(tag)})
	return k9Turn{tag: tag, place: ch.ID, conv: "discord:dm:" + ch.ID, user: user}
}

// slashChat asks with /chat in channel ch: the answer fills the
// interaction's response.
func (w *k9World) slashChat(ch, user int, tag string) k9Turn {
	w.dc.SlashCommand(discordtest.SlashCommand{Name: "chat", ChannelID: w.channels[ch].ID, User: w.users[user], Options: map[string]any{"message": k9Question(tag)}})
	return k9Turn{tag: tag, place: w.channels[ch].ID, conv: "discord:" + w.guild.ID + ":" + w.channels[ch].ID, user: user}
}

// isBot reports a message of the bot that people see.
func (w *k9World) isBot(m discordtest.Message) bool {
	return m.Author != nil && m.Author.ID == w.bot.ID && !m.Ephemeral && !m.Deleted
}

// waitAnswer waits until the answer of a turn shows in chat.
func (w *k9World) waitAnswer(ctx context.Context, tu k9Turn) error {
	if tu.platform == "matrix" {
		return w.mxWaitAnswer(ctx, tu)
	}
	want := "Answer to " + tu.tag + ":"
	_, err := w.dc.WaitMessage(ctx, func(m discordtest.Message) bool { return w.isBot(m) && strings.Contains(m.Content, want) })
	return err
}

// track records the tag of every request the fake Horde holds now, so
// that requests deleted later are still known.
func (w *k9World) track() {
	if w.tags == nil {
		w.tags = map[string]string{}
	}
	for _, id := range w.horde.RequestIDs() {
		if _, ok := w.tags[id]; ok {
			continue
		}
		if info, ok := w.horde.Request(id); ok {
			w.tags[id] = k9TagOf(info.Prompt)
		}
	}
}

// idsOf returns the tracked Horde request ids of a tag.
func (w *k9World) idsOf(tag string) []string {
	var out []string
	for id, t := range w.tags {
		if t == tag {
			out = append(out, id)
		}
	}
	return out
}

// submits counts the generation requests the Horde received per tag.
func (w *k9World) submits() map[string]int {
	out := map[string]int{}
	for _, r := range w.horde.RequestsTo(http.MethodPost, "/v2/generate/text/async") {
		var body struct {
			Prompt string `json:"prompt"`
		}
		if json.Unmarshal(r.Body, &body) == nil {
			out[k9TagOf(body.Prompt)]++
		}
	}
	return out
}

// polled returns the request ids the Horde has seen a status call for:
// the process journals a request id before it polls.
func (w *k9World) polled() map[string]bool {
	out := map[string]bool{}
	const prefix = "/api/v2/generate/text/status/"
	for _, r := range w.horde.RequestsTo(http.MethodGet, prefix) {
		out[strings.TrimPrefix(r.Path, prefix)] = true
	}
	return out
}

// k9LogHas reports whether a line of the log holds every part.
func k9LogHas(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// k9LogErrors returns the child's log lines at level ERROR.
func k9LogErrors(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		var rec struct {
			Level string `json:"level"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "ERROR" {
			out = append(out, line)
		}
	}
	return out
}

// discordMessage is the fake Discord's record of a message.
type discordMessage = discordtest.Message
