package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bot/discord/discordtest"
	"github.com/hordechat/hordechat/bot/matrix/matrixtest"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// The secrets of TestSecurityNoSecretInAnyOutput: distinctive values, so a
// match anywhere is a leak.
const (
	secOperatorKey  = "OPKEY-3b9f1c7e5a2d8f4b6c0e"
	secPasskey      = "PASSKEY-8d2e6a4c0f9b7e1d3a5c"
	secDiscordToken = "DISCORDTOKEN-5c1e9a7d3b2f8e6a4d0c"
	secIdentity     = "IDSECRET-2a8c4e6f0b1d3f5a7c9e"
	secLinkedKey    = "LINKEDKEY-6f4d2b0a8e9c1f3d5b7a"
	secWrongKey     = "WRONGKEY-1d3f5b7a9c2e4a6c8e0f"
	secPassthrough  = "PASSTHRU-9e7c5a3d1f0b2d4f6a8c"
	secBadPassthru  = "BADPASSTHRU-4c6e8a0d2f1b3d5f7a9e"
	secMatrixPass   = "MXPASSWORD-7a5c3e1f9d8b6f4a2c0e"
	secMatrixToken  = "MXTOKEN-0f2b4d6a8c1e3f5b7d9a"
	secMatrixKey    = "MXLINKED-3e5a7c9f1b0d2f4a6c8e"
	secMetricsToken = "METRICS-8b0d2f4a6c9e1a3c5e7f"
)

// secStorageKey is the storage encryption key's 32 raw bytes.
var secStorageKey = []byte("STORAGEKEY-1f3a5c7e9b2d4f6a8c0e7")

// panicPath is served by a handler that panics, added in front of the
// app's routes by the test, to see what the HTTP server logs.
const panicPath = "/v1/security-test-panic"

// httpCapture is every response the test got, for the scan.
type httpCapture struct {
	t      *testing.T
	base   string
	client *http.Client
	got    bytes.Buffer
}

// do sends a request and keeps the status, headers and body.
func (h *httpCapture) do(method, path, bearer, body string, header ...string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	fmt.Fprintf(&h.got, "%s %s -> %d\n", method, path, resp.StatusCode)
	for k, vs := range resp.Header {
		fmt.Fprintf(&h.got, "%s: %s\n", k, strings.Join(vs, ", "))
	}
	h.got.Write(raw)
	h.got.WriteByte('\n')
	return resp.StatusCode, string(raw)
}

func chatJSON(model, content string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":%q}]}`, model, stream, content)
}

// TestSecurityNoSecretInAnyOutput runs the whole binary at debug level
// with Discord, Matrix and /v1 on and distinctive secrets everywhere,
// drives every scenario that touches a secret (chat, /link good and bad,
// /me, /token, /unlink, /v1 with each credential, streaming, errors and
// injected Horde failures, /metrics, the status page, a panic in a
// handler, check-config, shutdown) and then looks for every secret, in
// every encoding, in everything the process let out: its stdout and
// stderr, every request it made to Discord and Matrix, every HTTP answer,
// and every file in its data directory (while running and after).
// It also checks the Horde never received a secret it has no use for,
// and the modes of the data directory and its files.
func TestSecurityNoSecretInAnyOutput(t *testing.T) {
	ctx := context.Background()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second) // guards a hang only
	defer wcancel()

	horde := bridgetest.FastHorde(t, hordetest.WithPasskey(secPasskey), hordetest.WithUsers(
		hordetest.User{APIKey: secOperatorKey, Username: "operator", Kudos: 1e6, Concurrency: 1000},
		hordetest.User{APIKey: secLinkedKey, Username: "alicehorde", Kudos: 5000},
		hordetest.User{APIKey: secMatrixKey, Username: "carolhorde", Kudos: 7000},
		hordetest.User{APIKey: secPassthrough, Username: "toolhorde", Kudos: 9000},
	))
	// The fake's clock stands still at the real now: interactions are
	// fresh for the app's real clock, and no 3 s deadline passes.
	dc := discordtest.New(t, discordtest.WithToken(secDiscordToken), discordtest.WithClock(clockwork.NewFakeClockAt(time.Now())))
	alice := dc.AddUser(&discordgo.User{ID: "100000000000000001", Username: "alice"})
	bob := dc.AddUser(&discordgo.User{ID: "100000000000000002", Username: "bob"})
	guild := dc.AddGuild(&discordgo.Guild{Name: "horde", OwnerID: "100000000000000009"})
	dc.AddMember(guild.ID, &discordgo.Member{User: alice})
	dc.AddMember(guild.ID, &discordgo.Member{User: bob})
	general := dc.AddChannel(&discordgo.Channel{GuildID: guild.ID, Name: "general", Type: discordgo.ChannelTypeGuildText})
	hs := matrixtest.New(t, matrixtest.WithBot("@hordechat:hs.test", secMatrixToken, secMatrixPass))
	const carol = "@carol:hs.test"

	root := t.TempDir()
	dataDir := filepath.Join(root, "data")
	secretsDir := filepath.Join(root, "secrets")
	if err := os.Mkdir(secretsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(secretsDir, "storage.key")
	storageKeyB64 := base64.StdEncoding.EncodeToString(secStorageKey)
	if err := os.WriteFile(keyFile, []byte(storageKeyB64+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	secrets := newSecretSet()
	for name, v := range map[string]string{
		"operator key": secOperatorKey, "proxy passkey": secPasskey, "discord token": secDiscordToken,
		"identity secret": secIdentity, "linked key": secLinkedKey, "wrong key": secWrongKey,
		"pass-through key": secPassthrough, "bad pass-through key": secBadPassthru,
		"matrix password": secMatrixPass, "matrix token": secMatrixToken, "matrix linked key": secMatrixKey,
		"metrics token": secMetricsToken, "storage key (base64)": storageKeyB64, "storage key (raw)": string(secStorageKey),
	} {
		secrets.add(t, name, v)
	}

	env := []string{
		"HORDECHAT_STORAGE__PATH=" + filepath.Join(dataDir, "hordechat.db"),
		"HORDECHAT_STORAGE__ENCRYPTION_KEY_FILE=" + keyFile,
		"HORDECHAT_HTTP__LISTEN=127.0.0.1:0",
		"HORDECHAT_HORDE__BASE_URL=" + horde.URL,
		"HORDECHAT_HORDE__API_KEY=" + secOperatorKey,
		"HORDECHAT_HORDE__PROXY_PASSKEY=" + secPasskey,
		"HORDECHAT_HORDE__MAX_RETRIES=0",
		"HORDECHAT_BRIDGE__IDENTITY_SECRET=" + secIdentity,
		"HORDECHAT_DISCORD__TOKEN=" + secDiscordToken,
		"HORDECHAT_DISCORD__API_BASE_URL=" + dc.URL + "/api/v10",
		"HORDECHAT_MATRIX__HOMESERVER=" + hs.URL(),
		"HORDECHAT_MATRIX__USER_ID=" + hs.BotID(),
		"HORDECHAT_MATRIX__PASSWORD=" + secMatrixPass,
		"HORDECHAT_OPENAI__METRICS_TOKEN=" + secMetricsToken,
		"HORDECHAT_OPENAI__RATE_LIMIT_PER_MINUTE=0",
		"HORDECHAT_CHAT__USER_RATE=0s",
		"HORDECHAT_LOG__LEVEL=debug",
	}

	// check-config with the same secrets.
	var ccOut, ccErr bytes.Buffer
	if code := run(ctx, []string{"check-config"}, env, &ccOut, &ccErr, nil); code != 0 {
		t.Fatalf("check-config exited %d: %s", code, ccErr.String())
	}
	secrets.check(t, "check-config output", append(ccOut.Bytes(), ccErr.Bytes()...))

	r := startRunWith(t, env, func(a *App) {
		inner := a.http.Handler
		a.http.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path == panicPath {
				panic("security test panic in " + req.URL.Path)
			}
			inner.ServeHTTP(w, req)
		})
	})
	app := r.app
	if err := app.bridge.RefreshModels(ctx); err != nil {
		t.Fatal(err)
	}
	for name, ready := range map[string]<-chan struct{}{"discord": app.discord.Ready(), "matrix": app.matrix.Ready()} {
		select {
		case <-ready:
		case <-wctx.Done():
			t.Fatalf("%s never got ready:\n%s", name, r.stderr.String())
		}
	}
	botID := dc.BotUser().ID
	fromBot := func(channel, want string, not ...string) discordtest.Message {
		t.Helper()
		m, err := dc.WaitMessage(wctx, func(m discordtest.Message) bool {
			return m.Author != nil && m.Author.ID == botID && m.ChannelID == channel && strings.Contains(m.Content, want) && !contains(not, m.ID)
		})
		if err != nil {
			t.Fatalf("no bot message holding %q in %s: %v\n%s", want, channel, err, r.stderr.String())
		}
		return m
	}
	// reply runs a slash command and waits for its reply to hold want.
	reply := func(ix *discordgo.Interaction, want string) discordtest.Interaction {
		t.Helper()
		got, err := dc.WaitInteraction(wctx, ix.ID, func(in discordtest.Interaction) bool {
			if in.Original != nil && strings.Contains(in.Original.Content, want) {
				return true
			}
			for _, f := range in.Followups {
				if strings.Contains(f.Content, want) {
					return true
				}
			}
			return false
		})
		if err != nil {
			snap, _ := dc.Interaction(ix.ID)
			t.Fatalf("no reply holding %q: %v\ninteraction: %+v %+v %+v\n%s", want, err, snap.Response, snap.Original, snap.Followups, r.stderr.String())
		}
		return got
	}
	slash := func(user *discordgo.User, name string, opts map[string]any) *discordgo.Interaction {
		return dc.SlashCommand(discordtest.SlashCommand{Name: name, ChannelID: general.ID, User: user, Options: opts})
	}
	link := func(user *discordgo.User, key, want string) {
		t.Helper()
		ix := slash(user, "link", nil)
		got, err := dc.WaitResponse(wctx, ix.ID)
		if err != nil || got.Response.Type != discordgo.InteractionResponseModal {
			t.Fatalf("/link did not open a modal: %v %+v", err, got.Response)
		}
		sub := dc.SubmitModal(discordtest.ModalSubmit{CustomID: got.Response.Data.CustomID, User: user, Values: map[string]string{"key": key}})
		reply(sub, want)
	}

	// Discord: a chat, a good and a bad /link, /me, /token, a chat on the
	// linked key, a /chat slash command (its target holds the
	// interaction token), and a press on someone else's button.
	q := dc.SendMessage(discordtest.UserMessage{ChannelID: general.ID, GuildID: guild.ID, Author: alice, Content: "<@" + botID + "> hello from discord"})
	answer1 := fromBot(q.ID, "Echo")
	link(alice, secLinkedKey, "Linked")
	link(bob, secWrongKey, "does not know that key")
	reply(slash(alice, "me", nil), "alicehorde")
	tokIx := reply(slash(alice, "token", nil), "hc_")
	personal := regexp.MustCompile(`hc_[A-Za-z0-9_-]+`).FindString(tokIx.Original.Content)
	if personal == "" {
		t.Fatalf("no token in %q", tokIx.Original.Content)
	}
	secrets.add(t, "personal token", personal)
	dc.SendMessage(discordtest.UserMessage{ChannelID: q.ID, GuildID: guild.ID, Author: alice, Content: "<@" + botID + "> again, on my key"})
	answer2 := fromBot(q.ID, "Echo", answer1.ID)
	chatIx := slash(alice, "chat", map[string]any{"message": "a slash chat"})
	reply(chatIx, "Echo")
	if ids := buttonCustomIDs(answer2); len(ids) > 0 {
		press := dc.ClickButton(discordtest.ButtonClick{MessageID: answer2.ID, CustomID: ids[0], User: bob})
		if _, err := dc.WaitResponse(wctx, press.ID); err != nil {
			t.Fatal(err)
		}
	}

	// The linked key is stored, sealed: the store decrypts it, the file
	// scan below finds it nowhere in clear.
	u, err := app.store.UpsertUser(ctx, "discord", alice.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if k, err := app.store.HordeKey(ctx, u.ID); err != nil || k.Key != secLinkedKey {
		t.Fatalf("the linked key is not stored: %v", err)
	}

	// Matrix: !link in a DM (redacted), a chat.
	dm := hs.NewDM(carol)
	linkMsg := hs.Say(dm, carol, "!link "+secMatrixKey)
	if _, err := hs.WaitBotMessage(wctx, dm, "Linked"); err != nil {
		t.Fatalf("matrix !link: %v\n%s", err, r.stderr.String())
	}
	if _, err := hs.WaitRedacted(wctx, dm, linkMsg); err != nil {
		t.Fatalf("the !link message was not redacted: %v", err)
	}
	hs.Say(dm, carol, "hello from matrix")
	if _, err := hs.WaitBotMessage(wctx, dm, "Echo"); err != nil {
		t.Fatalf("matrix chat: %v\n%s", err, r.stderr.String())
	}

	// /v1 with every credential, plain, streaming and failing.
	h := &httpCapture{t: t, base: "http://" + r.addr.String(), client: &http.Client{Timeout: 60 * time.Second}}
	const model = "koboldcpp/Fimbulvetr-11B-v2"
	for _, c := range []struct {
		name, bearer, body string
		status             int
	}{
		{"token", personal, chatJSON(model, "v1 hello", false), 200},
		{"token streaming", personal, chatJSON(model, "v1 stream", true), 200},
		{"pass-through", secPassthrough, chatJSON(model, "v1 passthrough", false), 200},
		{"pass-through streaming", secPassthrough, chatJSON(model, "v1 passthrough stream", true), 200},
		{"unknown model", personal, chatJSON("gpt-4o", "x", false), 404},
		{"bad pass-through key", secBadPassthru, chatJSON(model, "x", false), 401},
		{"revoked-looking token", "hc_" + secWrongKey, chatJSON(model, "x", false), 401},
		{"no credential", "", chatJSON(model, "x", false), 401},
		{"bad json", personal, `{"model":` + secWrongKey, 400},
	} {
		if got, body := h.do(http.MethodPost, "/v1/chat/completions", c.bearer, c.body); got != c.status {
			t.Errorf("/v1 %s: %d, want %d: %s", c.name, got, c.status, body)
		}
	}
	h.do(http.MethodGet, "/v1/models", personal, "")
	h.do(http.MethodPost, "/v1/completions", secPassthrough, `{"model":"`+model+`","prompt":"complete me"}`)
	// Horde failures: a 500 and a 401 on the submit, for each credential.
	for _, f := range []hordetest.Fault{
		{Kind: hordetest.FaultStatus, Method: http.MethodPost, Path: "/v2/generate/text/async", Status: 500, Count: 2},
		{Kind: hordetest.FaultStatus, Method: http.MethodPost, Path: "/v2/generate/text/async", Status: 401, Body: `{"message":"No user matching sent API Key. Have you remembered to register at https://aihorde.net/register ?","rc":"InvalidAPIKey"}`, Count: 2},
	} {
		fh := horde.Inject(f)
		for _, bearer := range []string{personal, secPassthrough} {
			if got, body := h.do(http.MethodPost, "/v1/chat/completions", bearer, chatJSON(model, "fails", false)); got < 400 {
				t.Errorf("injected Horde %d: /v1 answered %d: %s", f.Status, got, body)
			}
		}
		fh.Clear()
	}
	// The pages anyone can read, and /metrics with and without its token.
	for _, p := range []string{"/", "/status.json", "/healthz", "/readyz", "/metrics"} {
		h.do(http.MethodGet, p, "", "")
	}
	if got, _ := h.do(http.MethodGet, "/metrics", secMetricsToken, ""); got != 200 {
		t.Errorf("/metrics with its token: %d", got)
	}
	// A panic in a handler while the request carries secrets.
	if _, err := (&http.Client{Timeout: 30 * time.Second}).Do(mustRequest(t, h.base+panicPath, personal)); err == nil {
		t.Log("the panicking request got an answer")
	}

	// Interaction tokens are secrets too (each lets its holder post for
	// 15 minutes in the bot's name).
	seenIx := map[string]bool{}
	var itokens []string
	addInteractionTokens := func() {
		for _, in := range dc.Interactions() {
			if !seenIx[in.ID] {
				seenIx[in.ID] = true
				itokens = append(itokens, in.Token)
				secrets.add(t, "interaction token "+in.ID, in.Token)
			}
		}
	}
	addInteractionTokens()

	// The data directory while running: DB, -wal, -shm, session file.
	// The session file holds the token the login returned. While the
	// process runs, an interaction token is in the job journal for as
	// long as its job is in flight (a restart must still answer it), and
	// old WAL frames keep it until SQLite reuses them; the database file
	// itself, after shutdown, must not hold it.
	allowedIn := map[string][]string{"matrix-session.json": {"matrix token"}}
	walAllowed := map[string][]string{"matrix-session.json": {"matrix token"}}
	for _, in := range dc.Interactions() {
		walAllowed["hordechat.db-wal"] = append(walAllowed["hordechat.db-wal"], "interaction token "+in.ID)
	}
	running := secrets.scanDir(t, "while running", dataDir, walAllowed)
	for _, want := range []string{"hordechat.db", "hordechat.db-wal", "hordechat.db-shm", "matrix-session.json"} {
		if !contains(running, want) {
			t.Errorf("data dir while running holds %v, no %s: the scan and mode checks would miss it", running, want)
		}
	}
	checkModes(t, dataDir)

	// /unlink, then shut down.
	reply(slash(alice, "unlink", nil), "forgotten")
	addInteractionTokens()
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	logs := r.stderr.String()
	if !strings.Contains(logs, "level=DEBUG") {
		t.Error("no debug line logged: the scan would miss what debug logs")
	}
	if !strings.Contains(logs, "panic serving") {
		t.Errorf("the handler panic was not logged by the HTTP server")
	}
	secrets.check(t, "stderr", []byte(logs))
	secrets.check(t, "stdout", []byte(r.stdout.String()))
	secrets.check(t, "HTTP answers", h.got.Bytes(), "personal token")
	// A personal token may appear in an answer only as the token itself
	// in no other answer than /token's: /v1 never echoes it.
	if strings.Contains(h.got.String(), personal) {
		t.Error("an HTTP answer echoes the personal token")
	}

	// Everything the bot sent to Discord: bodies, paths (but an
	// interaction callback's path holds its own token), queries, and the
	// headers other than Authorization.
	for _, req := range dc.Requests() {
		allowed := []string{}
		if strings.Contains(string(req.Body), personal) && strings.Contains(req.Path, tokIx.Token) {
			allowed = append(allowed, "personal token") // the /token reply itself
		}
		where := "discord request " + req.Method + " " + req.Route
		secrets.check(t, where+" body", req.Body, allowed...)
		path := req.Path
		for _, tok := range itokens {
			path = strings.ReplaceAll(path, tok, "{token}")
		}
		secrets.check(t, where+" path", []byte(path+"?"+req.Query.Encode()))
		hdr := req.Header.Clone()
		if hdr.Get("Authorization") != "Bot "+secDiscordToken && hdr.Get("Authorization") != "" {
			t.Errorf("%s carried Authorization %q", where, hdr.Get("Authorization"))
		}
		hdr.Del("Authorization")
		secrets.check(t, where+" headers", []byte(fmt.Sprint(hdr)))
	}
	for _, m := range dc.AllMessages() {
		if m.Author != nil && m.Author.ID == botID {
			allowed := []string{}
			if m.InteractionID == tokIx.ID {
				allowed = append(allowed, "personal token")
			}
			secrets.check(t, "discord message "+m.ID, []byte(m.Content), allowed...)
		}
	}
	// Everything the bot sent to the homeserver.
	for _, req := range hs.Requests() {
		allowed := []string{}
		if strings.HasSuffix(req.Path, "/login") {
			allowed = append(allowed, "matrix password")
		}
		secrets.check(t, "matrix request "+req.Method+" "+req.Path, append([]byte(req.Path+"?"+req.Query+"\n"), req.Body...), allowed...)
	}
	for _, ev := range hs.BotMessages(dm) {
		secrets.check(t, "matrix message "+ev.ID, []byte(fmt.Sprint(ev.Content)))
	}

	// The Horde legitimately gets Horde keys and the passkey; nothing else.
	hordeMay := []string{"operator key", "proxy passkey", "linked key", "wrong key", "pass-through key", "bad pass-through key", "matrix linked key"}
	for _, rr := range horde.Requests() {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s?%s\n", rr.Method, rr.Path, rr.RawQuery)
		for k, vs := range rr.Header {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(vs, ","))
		}
		b.Write(rr.Body)
		secrets.check(t, "horde request "+rr.Method+" "+rr.Path, []byte(b.String()), hordeMay...)
	}

	// The data directory after shutdown.
	secrets.scanDir(t, "after shutdown", dataDir, allowedIn)
	checkModes(t, dataDir)
}

// buttonCustomIDs lists a Discord message's button custom ids.
func buttonCustomIDs(m discordtest.Message) []string {
	var out []string
	for _, c := range m.Components {
		row, ok := c.(*discordgo.ActionsRow)
		if !ok {
			continue
		}
		for _, rc := range row.Components {
			if b, ok := rc.(*discordgo.Button); ok {
				out = append(out, b.CustomID)
			}
		}
	}
	return out
}

func mustRequest(t *testing.T, url, bearer string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Apikey", secPassthrough)
	return req
}

// checkModes: the data directory is 0700 and every file in it 0600.
func checkModes(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSecurityGeneratedKeyFileModes: with no key configured, the key
// file the first start writes, the database and its -wal and -shm are
// owner-only, in an owner-only directory.
func TestSecurityGeneratedKeyFileModes(t *testing.T) {
	env := testEnv(t)
	r := startRun(t, env)
	dir := filepath.Dir(strings.TrimPrefix(env[0], "HORDECHAT_STORAGE__PATH="))
	for _, name := range []string{"hordechat.db", "hordechat.key"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	checkModes(t, dir)
	_ = r
}
