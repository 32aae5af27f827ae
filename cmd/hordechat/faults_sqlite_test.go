package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/hordechat/hordechat/bot/discord/discordtest"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/storage"
)

// The whole binary, with a tiny busy_timeout, while another connection
// holds the database's write lock (as an sqlite3 shell's BEGIN IMMEDIATE
// or a backup does): several Discord users mention the bot. Their writes
// retry until the lock is released; then each user gets the Horde's answer
// once, no message anywhere shows an error, and the history has every turn.
func TestFaultSQLiteLockedNoUserError(t *testing.T) {
	const users = 4
	horde := bridgetest.FastHorde(t)
	dc := discordtest.New(t)
	guild := dc.AddGuild(&discordgo.Guild{Name: "horde", OwnerID: "100000000000000009"})
	general := dc.AddChannel(&discordgo.Channel{GuildID: guild.ID, Name: "general", Type: discordgo.ChannelTypeGuildText})
	var members []*discordgo.User
	for i := range users {
		u := dc.AddUser(&discordgo.User{ID: fmt.Sprint(100000000000000100 + i), Username: fmt.Sprint("user", i)})
		dc.AddMember(guild.ID, &discordgo.Member{User: u})
		members = append(members, u)
	}

	r, env := startOnDiscord(t, horde, dc,
		"HORDECHAT_STORAGE__BUSY_TIMEOUT=1ms",
		"HORDECHAT_STORAGE__BUSY_RETRY_FOR=10m", // far beyond the test: no write may give up
	)
	dbPath := envValue(env, "HORDECHAT_STORAGE__PATH")
	app, ctx := r.app, context.Background()
	store := app.store
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute) // guards a hang only
	defer wcancel()

	release, lockedAt := holdDBWriteLock(t, dbPath)
	var questions []*discordgo.Message
	for i, u := range members {
		questions = append(questions, dc.SendMessage(discordtest.UserMessage{ChannelID: general.ID, GuildID: guild.ID, Author: u,
			Content: fmt.Sprintf("<@%s> question %d while the database is locked", dc.BotUser().ID, i)}))
	}
	// Every user is new, so each turn has to write (the user, the
	// conversation, the job journal) before anything is asked of the Horde:
	// the bot has nothing to post until the lock is released.
	posted := make(chan discordtest.Message, 1)
	go func() {
		if m, err := dc.WaitMessage(wctx, func(m discordtest.Message) bool { return isBot(dc, m) }); err == nil {
			posted <- m
		}
	}()
	for {
		next := store.BusyRetried()
		if store.BusyRetries() >= users {
			break
		}
		select {
		case <-next:
		case m := <-posted:
			t.Fatalf("the bot posted %q while every turn waited for the lock:\n%s", m.Content, r.stderr.String())
		case <-wctx.Done():
			t.Fatalf("writes never met the lock:\n%s", r.stderr.String())
		}
	}
	if n := metricValue(t, "http://"+r.addr.String()+"/metrics", "hordechat_storage_busy_retries_total"); n < users {
		t.Errorf("/metrics hordechat_storage_busy_retries_total = %v while locked, want at least %d", n, users)
	}
	select {
	case m := <-posted:
		t.Errorf("the bot posted %q while every turn waited for the lock", m.Content)
	default:
	}
	release()
	locked := time.Since(lockedAt)

	for i, q := range questions {
		if _, err := dc.WaitMessage(wctx, func(m discordtest.Message) bool {
			return isBot(dc, m) && m.ChannelID == q.ID && strings.Contains(m.Content, "Echo")
		}); err != nil {
			t.Fatalf("user %d got no answer: %v\n%s", i, err, r.stderr.String())
		}
	}
	retries := store.BusyRetries()
	r.stop(t) // waits for the deliveries, which store the turns
	t.Logf("lock held %s; %d busy retries", locked.Round(time.Millisecond), retries)

	answers := map[string]int{}
	for _, m := range botMessages(dc) {
		for _, text := range append(append([]string(nil), m.History...), m.Content) {
			for _, bad := range []string{"⚠️", "error", "locked", "could not", "Try again"} {
				if strings.Contains(text, bad) {
					t.Errorf("the bot posted %q in %s", text, m.ChannelID)
				}
			}
		}
		if strings.Contains(m.Content, "Echo") {
			answers[m.ChannelID]++
		}
	}
	for i, q := range questions {
		if answers[q.ID] != 1 {
			t.Errorf("user %d got %d answers, want 1", i, answers[q.ID])
		}
	}
	if len(answers) != users {
		t.Errorf("answers in %d places, want %d (one thread per question)", len(answers), users)
	}
	logs := r.stderr.String()
	if n := strings.Count(logs, "database is locked by another connection"); n != 1 {
		t.Errorf("%d lock warnings, want 1 for the whole locked spell:\n%s", n, logs)
	}
	if n := strings.Count(logs, "database lock released"); n != 1 {
		t.Errorf("%d lock released lines, want 1:\n%s", n, logs)
	}
	checkLockedHistory(t, dbPath, guild.ID, questions)
}

// holdDBWriteLock takes the write lock of the database at path from a
// connection of its own and returns the function releasing it (once; the
// test's cleanup releases it too) and when it was taken.
func holdDBWriteLock(t *testing.T, path string) (release func(), at time.Time) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	at = time.Now()
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Errorf("release the write lock: %v", err)
		}
		conn.Close()
		db.Close()
	}
	t.Cleanup(release)
	return release, at
}

// checkLockedHistory reopens the database after the clean stop: each
// question's conversation holds its turn once, question then answer, and
// no job is left unfinished.
func checkLockedHistory(t *testing.T, path, guildID string, questions []*discordgo.Message) {
	t.Helper()
	ctx := context.Background()
	cfg := storage.DefaultConfig()
	cfg.Path = path
	store, err := storage.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i, q := range questions {
		key := "discord:" + guildID + ":" + q.ID
		if ok, err := store.HasActiveConversation(ctx, key); err != nil || !ok {
			t.Errorf("user %d: no conversation %s (%v)", i, key, err)
			continue
		}
		conv, err := store.ActiveConversation(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := store.LastMessages(ctx, conv.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("question %d while the database is locked", i)
		if len(msgs) != 2 || msgs[0].Role != storage.RoleUser || !strings.Contains(msgs[0].Content, want) ||
			msgs[1].Role != storage.RoleAssistant || !strings.Contains(msgs[1].Content, "Echo") {
			t.Errorf("user %d: history = %+v, want the question and its answer once", i, msgs)
		}
	}
	if jobs, err := store.UnfinishedJobs(ctx); err != nil || len(jobs) != 0 {
		t.Errorf("%d jobs left unfinished (%v)", len(jobs), err)
	}
}

func isBot(dc *discordtest.Server, m discordtest.Message) bool {
	return m.Author != nil && m.Author.ID == dc.BotUser().ID
}

// botMessages returns every message the bot created, anywhere.
func botMessages(dc *discordtest.Server) []discordtest.Message {
	var out []discordtest.Message
	for _, m := range dc.AllMessages() {
		if isBot(dc, m) {
			out = append(out, m)
		}
	}
	return out
}

// envValue returns the value of name in env.
func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// metricValue scrapes one unlabelled sample from a Prometheus endpoint.
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("%s is not on %s (status %d)", name, url, resp.StatusCode)
	return 0
}
