package bot

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/hordechat/hordechat/bridge"
)

func f64(v float64) *float64 { return &v }

// builtins declares the commands every platform offers.
func (e *Engine) builtins() []*Command {
	return []*Command{
		{Name: "chat", Description: "Talk with the model in this conversation",
			Options: []Option{{Name: "message", Description: "What you want to say", Type: String, Required: true, Rest: true, MaxLength: 4000}},
			Handler: e.cmdChat(false)},
		{Name: "ask", Description: "Ask a one-off question (no history)",
			Options: []Option{{Name: "message", Description: "Your question", Type: String, Required: true, Rest: true, MaxLength: 4000}},
			Handler: e.cmdChat(true)},
		{Name: "new", Description: "Start a fresh conversation here", Handler: e.cmdNew},
		{Name: "model", Description: "Show or set the model you use",
			Options: []Option{{Name: "name", Description: "A model name (short names work)", Type: String, Autocomplete: true, Rest: true}},
			Handler: e.cmdModel, Complete: e.completeModel},
		{Name: "models", Description: "List the models with workers right now", Handler: e.cmdModels},
		{Name: "link", Description: "Link your own Horde API key (kept encrypted)", Ephemeral: true, Secret: true,
			Options: []Option{{Name: "key", Description: "Your AI Horde API key", Type: String, Required: true, MaxLength: 100}},
			Handler: e.cmdLink},
		{Name: "unlink", Description: "Forget your linked Horde key", Ephemeral: true, Handler: e.cmdUnlink},
		{Name: "me", Description: "Your linked account, kudos and settings", Ephemeral: true, Handler: e.cmdMe},
		{Name: "token", Description: "Create or revoke your personal /v1 API token", Ephemeral: true,
			Options: []Option{{Name: "action", Description: "create or revoke", Type: String, Choices: []Choice{{Name: "create", Value: "create"}, {Name: "revoke", Value: "revoke"}}}},
			Handler: e.cmdToken},
		{Name: "system", Description: "Set this conversation's persona (system prompt)",
			Options: []Option{{Name: "prompt", Description: `The persona, or "reset"`, Type: String, Required: true, Rest: true, MaxLength: 4000}},
			Handler: e.cmdSystem},
		{Name: "settings", Description: "Show or change your temperature and answer length", Ephemeral: true,
			Options: []Option{
				{Name: "temperature", Description: "Randomness, 0 to 2", Type: Number, Min: f64(0), Max: f64(2)},
				{Name: "max_tokens", Description: "Answer length in tokens, 16 to 1024", Type: Integer, Min: f64(16), Max: f64(1024)},
			},
			Handler: e.cmdSettings},
		{Name: "cancel", Description: "Cancel your requests running in this conversation", Ephemeral: true, Handler: e.cmdCancel},
		{Name: "help", Description: "What I can do", Ephemeral: true, Handler: e.cmdHelp},
	}
}

// RunCommand checks permissions and runs a parsed command; errors become a
// reply.
func (e *Engine) RunCommand(ctx context.Context, c *Call) {
	reply := func(msg string) {
		if err := c.Respond(ctx, Outgoing{Text: msg, Ephemeral: true, Notice: true}); err != nil {
			e.log.Warn("command reply", "command", c.Command.Name, "err", err)
		}
	}
	defer func() {
		// A bug in one command must not end the process for everyone.
		if r := recover(); r != nil {
			e.log.Error("internal error in a command; the bot goes on", "command", c.Command.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			reply("⚠️ Something went wrong on my side. It has been logged; please try again.")
		}
	}()
	if msg := e.cfg.allowed(c.In); msg != "" {
		reply(msg)
		return
	}
	if c.Command.Access == Admins && !e.cfg.isAdmin(c.In) {
		reply(fmt.Sprintf("Only admins can use %s%s.", c.Prefix, c.Command.Name))
		return
	}
	if err := c.Command.Handler(ctx, c); err != nil {
		var be *bridge.Error
		if errors.As(err, &be) {
			reply("⚠️ " + be.Message)
			return
		}
		e.log.Error("command failed", "command", c.Command.Name, "err", err)
		reply("⚠️ That did not work. Try again in a moment.")
	}
}

// Complete answers an autocomplete request.
func (e *Engine) Complete(ctx context.Context, c *Call, option, partial string) []Choice {
	if c.Command.Complete == nil {
		return nil
	}
	return c.Command.Complete(ctx, c, option, partial)
}

// Button handles a click on one of the buttons the engine attached.
func (e *Engine) Button(ctx context.Context, in Incoming, id string) {
	switch {
	case id == "regenerate":
		e.chat(ctx, in, chatTurn{regenerate: true})
	case id == "continue":
		e.chat(ctx, in, chatTurn{text: "Continue exactly where your last answer stopped.", cont: true})
	case strings.HasPrefix(id, "cancel:"):
		e.cancelButton(ctx, in, strings.TrimPrefix(id, "cancel:"))
	}
}

// cancelButton cancels the job a Cancel button is on. Its owner may, and so
// may an admin (moderation); anyone else is told why nothing happens.
func (e *Engine) cancelButton(ctx context.Context, in Incoming, jobID string) {
	refuse := func(msg string) {
		p := e.platform(in.Platform)
		if p == nil {
			return
		}
		if _, err := p.Send(ctx, in.Target, Outgoing{Text: msg, Ephemeral: true, Notice: true}); err != nil {
			e.log.Warn("send refusal", "platform", in.Platform, "err", err)
		}
	}
	if jobID == "" {
		return
	}
	userKey := in.Platform + ":" + in.Author.ID
	e.mu.Lock()
	var owner string
	found := false
	for _, j := range e.live {
		if j.jobID == jobID {
			owner, found = j.userKey, true
			break
		}
	}
	e.mu.Unlock()
	switch {
	case !found:
		refuse("That request has already finished; there is nothing to cancel.")
	case owner != userKey && !e.cfg.isAdmin(in):
		refuse("Only the person who asked, or an admin, can cancel this request.")
	case !e.bridge.Cancel(jobID):
		refuse("That request has already finished; there is nothing to cancel.")
	}
}

func (e *Engine) cmdChat(oneShot bool) func(context.Context, *Call) error {
	return func(ctx context.Context, c *Call) error {
		in := c.In
		in.Text = c.String("message")
		e.chat(ctx, in, chatTurn{text: in.Text, oneShot: oneShot})
		return nil
	}
}

func (e *Engine) cmdNew(ctx context.Context, c *Call) error {
	if _, err := e.store.EndConversation(ctx, c.In.ConversationID); err != nil {
		return err
	}
	return c.Reply(ctx, "🆕 Started a fresh conversation. I have forgotten what we said here before.")
}

func (e *Engine) user(ctx context.Context, in Incoming) (User, error) {
	return e.store.UpsertUser(ctx, in.Platform, in.Author.ID, in.Author.DisplayName)
}

func (e *Engine) cmdModel(ctx context.Context, c *Call) error {
	u, err := e.user(ctx, c.In)
	if err != nil {
		return err
	}
	st, err := e.store.UserSettings(ctx, u.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	name := strings.TrimSpace(c.String("name"))
	if name == "" {
		if st.Model == "" {
			return c.Reply(ctx, "You use the default model (the one with the shortest queue). Set one with %smodel <name>.", c.Prefix)
		}
		return c.Reply(ctx, "Your model is %s.", st.Model)
	}
	if strings.EqualFold(name, bridge.DefaultModel) {
		st.Model = ""
		if err := e.store.SaveUserSettings(ctx, u.ID, st); err != nil {
			return err
		}
		return c.Reply(ctx, "You now use the default model.")
	}
	mi, err := e.bridge.Models().Resolve(name)
	if err != nil {
		return bridge.Classify(err)
	}
	st.Model = mi.Name
	if err := e.store.SaveUserSettings(ctx, u.ID, st); err != nil {
		return err
	}
	return c.Reply(ctx, "Your model is now %s (%s).", mi.Name, describeModel(mi))
}

func describeModel(mi bridge.ModelInfo) string {
	return fmt.Sprintf("%d workers, queue about %s, context %d", mi.Workers, humanWait(mi.ETA), mi.MaxContextLength)
}

func (e *Engine) completeModel(_ context.Context, _ *Call, _, partial string) []Choice {
	partial = strings.ToLower(strings.TrimSpace(partial))
	snap := e.bridge.Models().Snapshot()
	var out []Choice
	for _, mi := range snap.Models {
		if mi.Workers == 0 || partial != "" && !strings.Contains(strings.ToLower(mi.Name), partial) {
			continue
		}
		label := fmt.Sprintf("%s · %d workers · ~%s", shortModel(mi.Name), mi.Workers, humanWait(mi.ETA))
		out = append(out, Choice{Name: truncate(label, 100), Value: mi.Name})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) > 25 { // Discord's limit, and plenty for a list
		out = out[:25]
	}
	return out
}

func (e *Engine) cmdModels(ctx context.Context, c *Call) error {
	snap := e.bridge.Models().Snapshot()
	var ms []bridge.ModelInfo
	for _, mi := range snap.Models {
		if mi.Workers > 0 {
			ms = append(ms, mi)
		}
	}
	if len(ms) == 0 {
		return c.Reply(ctx, "No text models have workers right now (or the list is not loaded yet). Try again in a minute.")
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Threads > ms[j].Threads })
	var b strings.Builder
	b.WriteString("**Models with workers now** (busiest first):\n")
	for i, mi := range ms {
		if i == 20 {
			fmt.Fprintf(&b, "…and %d more.\n", len(ms)-20)
			break
		}
		fmt.Fprintf(&b, "• `%s`: %s\n", mi.Name, describeModel(mi))
	}
	if snap.Stale {
		b.WriteString("-# The Horde did not answer the last refresh; this list may be out of date.\n")
	}
	fmt.Fprintf(&b, "Pick one with %smodel <name>.", c.Prefix)
	return c.Reply(ctx, "%s", b.String())
}

func (e *Engine) cmdLink(ctx context.Context, c *Call) error {
	key := strings.TrimSpace(c.String("key"))
	if e.keys == nil {
		return c.Reply(ctx, "Linking keys is not available on this bot.")
	}
	if len(key) < 10 || strings.ContainsAny(key, " \t\r\n") {
		return c.Reply(ctx, "That does not look like a Horde API key. Copy it from https://aihorde.net/register and try again.")
	}
	acct, err := e.keys.CheckKey(ctx, key)
	if err != nil {
		be := bridge.Classify(err)
		if be.Code == bridge.CodeInvalidKey {
			return c.Reply(ctx, "The Horde does not know that key. Check it at https://aihorde.net/register and try again.")
		}
		return be
	}
	u, err := e.user(ctx, c.In)
	if err != nil {
		return err
	}
	if err := e.store.LinkHordeKey(ctx, u.ID, key, acct.Username, acct.ID); err != nil {
		return err
	}
	return c.Reply(ctx, "🔑 Linked to Horde account **%s** (%s kudos). Your requests now use your key and your kudos. Use %sunlink to remove it.", acct.Username, formatKudos(acct.Kudos), c.Prefix)
}

func formatKudos(k float64) string {
	s := fmt.Sprintf("%.0f", k)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 && r != '-' && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (e *Engine) cmdUnlink(ctx context.Context, c *Call) error {
	u, err := e.user(ctx, c.In)
	if err != nil {
		return err
	}
	ok, err := e.store.UnlinkHordeKey(ctx, u.ID)
	if err != nil {
		return err
	}
	if !ok {
		return c.Reply(ctx, "You had no Horde key linked.")
	}
	return c.Reply(ctx, "Your Horde key is forgotten. Your requests now use the bot's key.")
}

func (e *Engine) cmdMe(ctx context.Context, c *Call) error {
	u, err := e.user(ctx, c.In)
	if err != nil {
		return err
	}
	var b strings.Builder
	lk, err := e.store.LinkedKey(ctx, u.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		fmt.Fprintf(&b, "No Horde key linked: you use the bot's key. Link yours with %slink for your own kudos and priority.\n", c.Prefix)
	case err != nil:
		return err
	default:
		fmt.Fprintf(&b, "Horde account: **%s** (linked %s)", lk.Username, lk.LinkedAt.Format("2006-01-02"))
		if key, err := e.store.HordeKey(ctx, u.ID); err == nil && e.keys != nil {
			if acct, err := e.keys.CheckKey(ctx, key); err == nil {
				fmt.Fprintf(&b, ", %s kudos", formatKudos(acct.Kudos))
			} else if bridge.Classify(err).Code == bridge.CodeInvalidKey {
				fmt.Fprintf(&b, "; the Horde no longer accepts this key: link it again")
			}
		}
		b.WriteString(".\n")
	}
	if usage, err := e.store.Usage(ctx, u.ID); err == nil {
		fmt.Fprintf(&b, "Usage: %d questions, %s kudos spent.\n", usage.Questions, formatKudos(usage.Kudos))
	}
	st, err := e.store.UserSettings(ctx, u.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	fmt.Fprintf(&b, "Model: %s. %s", firstNonEmpty(st.Model, "default"), describeSettings(st))
	return c.Reply(ctx, "%s", b.String())
}

func describeSettings(st Settings) string {
	temp, length := "the model's default", "the bot's default"
	if st.Temperature != nil {
		temp = fmt.Sprintf("%g", *st.Temperature)
	}
	if st.MaxTokens != nil {
		length = fmt.Sprintf("%d tokens", *st.MaxTokens)
	}
	return fmt.Sprintf("Temperature: %s. Answer length: %s.", temp, length)
}

func (e *Engine) cmdToken(ctx context.Context, c *Call) error {
	u, err := e.user(ctx, c.In)
	if err != nil {
		return err
	}
	if c.String("action") == "revoke" {
		n, err := e.store.RevokeAPITokens(ctx, u.ID)
		if err != nil {
			return err
		}
		return c.Reply(ctx, "Revoked %d token(s). Tools using them will get 401 now.", n)
	}
	tok, err := e.store.CreateAPIToken(ctx, u.ID, "chat "+time.Now().UTC().Format("2006-01-02"))
	if err != nil {
		return err
	}
	return c.Reply(ctx, "Your personal API token (shown once; keep it secret):\n`%s`\nUse it as the API key of any OpenAI-compatible tool pointed at this bot's /v1. Revoke with %stoken revoke.", tok, c.Prefix)
}

func (e *Engine) cmdSystem(ctx context.Context, c *Call) error {
	if e.cfg.PersonaAdminsOnly && !e.cfg.isAdmin(c.In) {
		return c.Reply(ctx, "Only admins can change the persona here.")
	}
	conv, err := e.store.ActiveConversation(ctx, c.In.ConversationID)
	if err != nil {
		return err
	}
	p := strings.TrimSpace(c.String("prompt"))
	if strings.EqualFold(p, "reset") {
		p = ""
	}
	if err := e.store.SetConversationSystemPrompt(ctx, conv.ID, p); err != nil {
		return err
	}
	if p == "" {
		return c.Reply(ctx, "The persona is back to the default.")
	}
	return c.Reply(ctx, "🎭 New persona for this conversation set.")
}

func (e *Engine) cmdSettings(ctx context.Context, c *Call) error {
	u, err := e.user(ctx, c.In)
	if err != nil {
		return err
	}
	st, err := e.store.UserSettings(ctx, u.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	changed := false
	if t, ok := c.Float("temperature"); ok {
		st.Temperature, changed = &t, true
	}
	if n, ok := c.Int("max_tokens"); ok {
		st.MaxTokens, changed = &n, true
	}
	if !changed {
		return c.Reply(ctx, "%s Change with %s.", describeSettings(st), Usage(c.Prefix, c.Command))
	}
	if err := e.store.SaveUserSettings(ctx, u.ID, st); err != nil {
		return err
	}
	return c.Reply(ctx, "Saved. %s", describeSettings(st))
}

func (e *Engine) cmdCancel(ctx context.Context, c *Call) error {
	if n := e.cancelJobs(c.In, ""); n > 0 {
		return c.Reply(ctx, "Cancelling %d request(s).", n)
	}
	return c.Reply(ctx, "You have nothing running here.")
}

// cancelJobs cancels the caller's live jobs in the conversation (or one job).
func (e *Engine) cancelJobs(in Incoming, jobID string) int {
	userKey := in.Platform + ":" + in.Author.ID
	e.mu.Lock()
	var ids []string
	for _, j := range e.live {
		if j.userKey == userKey && j.jobID != "" && (jobID == "" && j.conversation == in.ConversationID || j.jobID == jobID) {
			ids = append(ids, j.jobID)
		}
	}
	e.mu.Unlock()
	n := 0
	for _, id := range ids {
		if e.bridge.Cancel(id) {
			n++
		}
	}
	return n
}

func (e *Engine) cmdHelp(ctx context.Context, c *Call) error {
	var b strings.Builder
	b.WriteString("**hordechat** answers with models running on the AI Horde, a free crowdsourced GPU cluster. Mention me or DM me to chat.\n")
	for _, cmd := range e.commands.All() {
		if cmd.Access == Admins && !e.cfg.isAdmin(c.In) {
			continue
		}
		fmt.Fprintf(&b, "• `%s`: %s\n", Usage(c.Prefix, cmd), cmd.Description)
	}
	return c.Reply(ctx, "%s", b.String())
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
