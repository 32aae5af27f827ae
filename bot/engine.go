package bot

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/prompt"
)

// HordeAccount is what a Horde key belongs to.
type HordeAccount struct {
	Username string
	ID       int64
	Kudos    float64
}

// KeyChecker validates a Horde key (find_user) before it is linked.
type KeyChecker interface {
	CheckKey(ctx context.Context, key string) (HordeAccount, error)
}

// Deps are what an Engine is built from.
type Deps struct {
	Store  Store
	Bridge *bridge.Service
	Keys   KeyChecker
	Clock  clockwork.Clock
	Log    *slog.Logger
}

// Engine is the conversation engine shared by every platform: one serial
// queue per conversation, parallel across conversations.
type Engine struct {
	cfg      Config
	store    Store
	bridge   *bridge.Service
	keys     KeyChecker
	clock    clockwork.Clock
	log      *slog.Logger
	commands *Registry
	limiter  *userLimiter
	slots    *userSlots

	mu          sync.Mutex
	platforms   map[string]Platform
	queues      map[string]chan func()
	live        map[string]*liveJob // by request token
	progressors map[string]*progressor
	wg          sync.WaitGroup
	stop        chan struct{} // closed by Close
	stopOnce    sync.Once
	inbox       inboxState

	// submitted, when set (tests only), sees each job id once the Horde
	// accepted the job and its Cancel button can work.
	submitted func(userKey, jobID string)
}

// liveJob is a chat job this process started.
type liveJob struct {
	jobID        string
	conversation string
	userKey      string // platform:user
}

// NewEngine builds the engine and declares the built-in commands.
func NewEngine(cfg Config, deps Deps) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Bridge == nil {
		return nil, errors.New("bot: Store and Bridge are required")
	}
	clock := deps.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg: cfg, store: deps.Store, bridge: deps.Bridge, keys: deps.Keys, clock: clock,
		log:         log.With("component", "bot"),
		commands:    NewRegistry(),
		limiter:     newUserLimiter(cfg.UserRate, cfg.UserBurst),
		slots:       newUserSlots(cfg.UserConcurrency),
		platforms:   map[string]Platform{},
		queues:      map[string]chan func(){},
		live:        map[string]*liveJob{},
		progressors: map[string]*progressor{},
		stop:        make(chan struct{}),
		inbox:       newInboxState(),
	}
	for _, c := range e.builtins() {
		if err := e.commands.Add(c); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Commands is the registry adapters render.
func (e *Engine) Commands() *Registry { return e.commands }

// AddPlatform connects an adapter: answers for its targets, also those
// resumed after a restart, are delivered through it. Call before the
// bridge starts.
func (e *Engine) AddPlatform(p Platform) {
	e.mu.Lock()
	e.platforms[p.Name()] = p
	e.mu.Unlock()
	e.bridge.RegisterDeliverer(p.Name(), bridge.DelivererFunc(e.deliver))
}

func (e *Engine) platform(name string) Platform {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.platforms[name]
}

// Close stops waiting for answers; queued turns not yet started stay in the
// inbox, and jobs journaled by the bridge, for the next start.
func (e *Engine) Close() {
	e.stopOnce.Do(func() { close(e.stop) })
	e.wg.Wait()
}

// maxQueuedTurns bounds the turns waiting in one conversation; a busy
// shared channel gets a refusal past it rather than an unbounded backlog.
const maxQueuedTurns = 64

// enqueue runs task on the conversation's serial queue. It reports false,
// and drops task, when the queue is full. It never blocks: drain needs
// e.mu to take the next task.
func (e *Engine) enqueue(conversation string, task func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	wrapped := func() { defer e.wg.Done(); task() }
	q, running := e.queues[conversation]
	if !running {
		q = make(chan func(), maxQueuedTurns)
	}
	select {
	case q <- wrapped:
	default:
		return false
	}
	e.wg.Add(1)
	if !running {
		e.queues[conversation] = q
		go e.drain(conversation, q)
	}
	return true
}

// recoverTurn stops a panic in one turn from ending the process, and with
// it every other conversation: it logs the panic with its stack and tells
// the person. Deferred by the task that runs a turn.
func (e *Engine) recoverTurn(ctx context.Context, p Platform, in Incoming) {
	r := recover()
	if r == nil {
		return
	}
	e.log.Error("internal error while answering; the bot goes on", "platform", in.Platform, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	if _, err := p.Send(ctx, in.Target, Outgoing{Text: "⚠️ Something went wrong on my side while answering that. It has been logged; please try again.", Notice: true}); err != nil {
		e.log.Warn("send error notice", "err", err)
	}
}

// drain runs a conversation's tasks in order and exits when it is idle.
func (e *Engine) drain(conversation string, q chan func()) {
	for {
		e.mu.Lock()
		select {
		case task := <-q:
			e.mu.Unlock()
			task()
		default:
			delete(e.queues, conversation)
			e.mu.Unlock()
			return
		}
	}
}

// Knows reports whether the bot already converses under conversationID,
// so an adapter can recognise its threads after a restart.
func (e *Engine) Knows(ctx context.Context, conversationID string) bool {
	ok, err := e.store.HasActiveConversation(ctx, conversationID)
	if err != nil {
		e.log.Warn("look up conversation", "err", err)
	}
	return ok
}

// HandleMessage takes a chat message (a mention, a DM, a thread reply) and
// answers it in the background. It never blocks on the Horde.
func (e *Engine) HandleMessage(ctx context.Context, in Incoming) {
	e.chat(ctx, in, chatTurn{text: in.Text})
}

// chatTurn is what to ask in a conversation.
type chatTurn struct {
	text       string
	oneShot    bool // no history: /ask
	regenerate bool // ask the last question again
	// cont asks the model to go on with the last answer (Continue).
	cont bool
}

// chat checks permissions and limits at once, then queues the turn.
func (e *Engine) chat(ctx context.Context, in Incoming, turn chatTurn) {
	p := e.platform(in.Platform)
	if p == nil {
		e.log.Error("message from an unknown platform", "platform", in.Platform)
		return
	}
	refuse := func(msg string) {
		if _, err := p.Send(ctx, in.Target, Outgoing{Text: msg, Ephemeral: true, Notice: true}); err != nil {
			e.log.Warn("send refusal", "platform", in.Platform, "err", err)
		}
	}
	if msg := e.cfg.allowed(in); msg != "" {
		refuse(msg)
		return
	}
	if strings.TrimSpace(turn.text) == "" && !turn.regenerate {
		refuse("Say something after mentioning me, or use " + "help to see what I can do.")
		return
	}
	userKey := in.Platform + ":" + in.Author.ID
	if ok, wait := e.limiter.take(userKey, e.clock.Now()); !ok {
		refuse(fmt.Sprintf("You're sending too fast. Try again in %s.", retryIn(wait)))
		return
	}
	// The slot is taken now, not when the turn starts: a burst across
	// conversations must not get past the limit before any job is live.
	if n, ok := e.slots.take(userKey); !ok {
		refuse(fmt.Sprintf("You already have %d requests running. Wait for one to finish, or cancel it.", n))
		return
	}
	conversation := in.ConversationID
	if turn.oneShot {
		conversation = in.ConversationID + "#ask:" + in.MessageID
	}
	ctx = context.WithoutCancel(ctx)
	// Accepted: kept in the inbox before it is queued, so that a crash
	// while it waits behind another turn does not lose it.
	kept, err := e.keepTurn(ctx, conversation, in, turn)
	if err != nil {
		e.slots.put(userKey)
		e.log.Error("keep an accepted message", "platform", in.Platform, "err", err)
		refuse("I could not save your message (a database problem on my side). Send it again in a moment.")
		return
	}
	if !e.enqueue(conversation, e.turnTask(ctx, p, kept, userKey)) {
		e.slots.put(userKey)
		e.dropInbox(kept.id)
		refuse(fmt.Sprintf("%d questions are already waiting in this conversation. Try again when some are answered, or start a new conversation.", maxQueuedTurns))
	}
}

// envelope is what a job's delivery target carries, so an answer can be
// delivered and stored after a restart with nothing else at hand.
type envelope struct {
	Target       string `json:"t"`           // the adapter's reply target
	Placeholder  string `json:"p,omitempty"` // message to replace with the answer
	Conversation int64  `json:"c,omitempty"` // 0 for one-shot questions
	User         int64  `json:"u"`
	Name         string `json:"n,omitempty"`
	Question     string `json:"q"`
	Token        string `json:"r"`           // live request token, for progress
	Regenerate   bool   `json:"g,omitempty"` // the answer replaces the last one
	Inbox        int64  `json:"i,omitempty"` // the turn's inbox item, deleted once delivered
	Platform     string `json:"-"`
}

func (env envelope) encode(platform string) string {
	raw, _ := json.Marshal(env)
	return platform + ":" + base64.RawURLEncoding.EncodeToString(raw)
}

func decodeEnvelope(target string) (envelope, error) {
	platform, rest, ok := strings.Cut(target, ":")
	if !ok {
		return envelope{}, fmt.Errorf("bad target")
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return envelope{}, fmt.Errorf("decode target: %w", err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return envelope{}, fmt.Errorf("decode target: %w", err)
	}
	env.Platform = platform
	return env, nil
}

// runTurn builds the message list and submits the job as jobID; it holds
// the conversation's queue until the answer is in, so turns stay in order.
// It reports whether the job was submitted: its delivery then ends the
// turn's inbox item.
func (e *Engine) runTurn(ctx context.Context, p Platform, in Incoming, turn chatTurn, inbox int64, jobID string) (submitted bool) {
	fail := func(msg string) {
		if _, err := p.Send(ctx, in.Target, Outgoing{Text: "⚠️ " + msg, Notice: true}); err != nil {
			e.log.Warn("send error notice", "err", err)
		}
	}
	user, err := e.store.UpsertUser(ctx, in.Platform, in.Author.ID, in.Author.DisplayName)
	if err != nil {
		e.log.Error("load user", "err", err)
		fail("I could not load your profile. Try again in a moment.")
		return false
	}
	settings, err := e.store.UserSettings(ctx, user.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		e.log.Error("load settings", "err", err)
	}
	var conv Conversation
	var history []Message
	if !turn.oneShot {
		if conv, err = e.store.ActiveConversation(ctx, in.ConversationID); err == nil && e.cfg.HistoryMessages > 0 {
			history, err = e.store.LastMessages(ctx, conv.ID, e.cfg.HistoryMessages)
		}
		if err != nil {
			e.log.Error("load conversation", "err", err)
			fail("I could not load this conversation. Try again in a moment.")
			return false
		}
	}
	// Regenerate and Continue act on the last question: only the person
	// who asked it may press them, or one user could replace or extend
	// another's answer. Checked here, on the conversation's queue, so a
	// question asked meanwhile is taken into account. Admins get no
	// exception: these buttons spend the presser's identity, not moderate.
	if turn.regenerate || turn.cont {
		if asker := lastAsker(history); asker != 0 && asker != user.ID {
			if _, err := p.Send(ctx, in.Target, Outgoing{Text: notYourAnswer, Ephemeral: true, Notice: true}); err != nil {
				e.log.Warn("send refusal", "platform", in.Platform, "err", err)
			}
			return false
		}
	}
	question := turn.text
	if turn.regenerate {
		// Ask the last question again, without the answer it got.
		for i := len(history) - 1; i >= 0; i-- {
			if history[i].Role == "user" {
				question, history = history[i].Content, history[:i]
				break
			}
		}
		if question == "" {
			fail("There is nothing to regenerate in this conversation yet.")
			return false
		}
	}
	system := firstNonEmpty(conv.SystemPrompt, settings.SystemPrompt, e.cfg.SystemPrompt)
	msgs := make([]prompt.Message, 0, len(history)+2)
	if system != "" {
		msgs = append(msgs, prompt.Message{Role: prompt.RoleSystem, Content: system})
	}
	for _, m := range history {
		msgs = append(msgs, prompt.Message{Role: m.Role, Name: m.Name, Content: m.Content})
	}
	name := ""
	if !in.DM {
		name = in.Author.DisplayName
	}
	msgs = append(msgs, prompt.Message{Role: prompt.RoleUser, Name: name, Content: question})

	token := newToken()
	// Keyed by the job: a turn run again after a crash reuses the
	// placeholder it may have posted before.
	placeholder, err := p.Send(ctx, in.Target, Outgoing{Text: "⏳ Asking the Horde…", Notice: true, Key: jobID + ":wait"})
	if err != nil {
		e.log.Warn("send placeholder", "err", err) // the answer still comes as a new message
	}
	pr := e.newProgressor(p, in.Target, placeholder, token)
	if t, ok := p.(Typer); ok {
		_ = t.Typing(ctx, in.Target)
	}
	env := envelope{Target: in.Target, Placeholder: placeholder, Conversation: conv.ID, User: user.ID, Name: name, Question: question, Token: token, Regenerate: turn.regenerate, Inbox: inbox}
	req := bridge.Request{
		Principal: bridge.Principal{Platform: in.Platform, UserID: in.Author.ID, StoreUserID: user.ID},
		Models:    []string{firstNonEmpty(conv.Model, settings.Model, bridge.DefaultModel)},
		Messages:  msgs,
		Params:    bridge.Params{Temperature: settings.Temperature, MaxTokens: settings.MaxTokens},
		Target:    env.encode(in.Platform),
		JobID:     jobID,
	}
	e.mu.Lock()
	e.live[token] = &liveJob{conversation: in.ConversationID, userKey: in.Platform + ":" + in.Author.ID}
	e.mu.Unlock()
	if _, err := e.bridge.Submit(ctx, req, pr.update); err != nil {
		pr.finish()
		e.dropProgressor(token)
		e.mu.Lock()
		delete(e.live, token)
		e.mu.Unlock()
		be := bridge.Classify(err)
		text := "⚠️ " + be.Message
		if placeholder != "" {
			if ed, ok := p.(Editor); ok && ed.Edit(ctx, in.Target, placeholder, Outgoing{Text: text, Notice: true}) == nil {
				return false
			}
		}
		fail(be.Message)
		return false
	}
	e.mu.Lock()
	if lj, ok := e.live[token]; ok { // gone if it was already delivered
		lj.jobID = jobID
	}
	e.mu.Unlock()
	pr.setJob(jobID)
	if e.submitted != nil {
		e.submitted(in.Platform+":"+in.Author.ID, jobID)
	}
	// Hold the queue until the answer is delivered, so the next turn's
	// history has it.
	select {
	case <-pr.dlv:
	case <-e.stop:
	}
	return true
}

// notYourAnswer refuses Regenerate or Continue pressed by someone other
// than the person who asked.
const notYourAnswer = "Only the person who asked the last question here can use Regenerate or Continue on its answer. Mention me to ask your own question."

// lastAsker is the store user id of the author of the last question in
// history; 0 when unknown.
func lastAsker(history []Message) int64 {
	for i := len(history) - 1; i >= 0; i-- {
		if history[i].Role == "user" {
			return history[i].AuthorID
		}
	}
	return 0
}

// deliver is the bridge Deliverer for every platform: it replaces the
// placeholder with the answer (split to the platform's limit, or as a file),
// then stores the turn in the conversation's history.
func (e *Engine) deliver(ctx context.Context, d bridge.Delivery) (err error) {
	defer func() {
		// The bridge keeps a job whose delivery failed for the next start;
		// a bug here must not end the process for everyone.
		if r := recover(); r != nil {
			e.log.Error("internal error while delivering; the bot goes on", "job", d.JobID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("deliver job %s: internal error", d.JobID)
		}
	}()
	env, err := decodeEnvelope(d.Target)
	if err != nil {
		e.log.Error("undeliverable job", "job", d.JobID, "err", err)
		return nil // nothing will ever make it deliverable
	}
	p := e.platform(env.Platform)
	if p == nil {
		return fmt.Errorf("platform %s is not connected", env.Platform)
	}
	pr := e.takeProgressor(env.Token)
	defer func() {
		e.mu.Lock()
		delete(e.live, env.Token)
		delete(e.live, resumedLiveKey(d.JobID))
		e.mu.Unlock()
		if pr != nil {
			pr.delivered()
		}
		e.inboxDelivered(env.Inbox, d.Resumed)
	}()
	if pr != nil {
		pr.finish()
	}
	if err := e.deliverTurn(ctx, p, env, d); err != nil {
		return err
	}
	// Posted and stored: the turn is over. A redelivery after a crash
	// before this deletes nothing, and stores nothing twice.
	e.dropInbox(env.Inbox)
	return nil
}

// deliverTurn posts a job's answer or error and stores the turn.
func (e *Engine) deliverTurn(ctx context.Context, p Platform, env envelope, d bridge.Delivery) error {
	if d.Err != nil {
		if d.Err.Code == bridge.CodeCanceled {
			return e.post(ctx, p, env, d.JobID, "🛑 Cancelled.", nil)
		}
		return e.post(ctx, p, env, d.JobID, "⚠️ "+d.Err.Message, nil)
	}
	res := d.Result
	answer := ""
	if len(res.Choices) > 0 {
		answer = res.Choices[0].Text
	}
	if strings.TrimSpace(answer) == "" {
		answer = "(The model returned an empty answer. Try again or pick another model.)"
	}
	shown := sanitizeMentions(answer)
	if notes := answerNotes(res); notes != "" {
		shown += "\n\n" + notes
	}
	buttons := []Button{{ID: "regenerate", Label: "Regenerate"}, {ID: "continue", Label: "Continue"}}
	if env.Conversation == 0 {
		buttons = nil
	}
	if err := e.post(ctx, p, env, d.JobID, shown, buttons); err != nil {
		return err
	}
	if env.Conversation != 0 {
		if d.Resumed && e.turnStored(ctx, env.Conversation, res.HordeID) {
			// Stored before a crash that came ahead of the journal update.
			return nil
		}
		reply := Message{Role: "assistant", Content: answer, Model: res.Model, HordeID: res.HordeID, Kudos: res.Kudos}
		var err error
		if env.Regenerate {
			// The question is already stored; the new answer replaces the old.
			err = e.store.ReplaceLastAssistant(ctx, env.Conversation, reply)
		} else {
			err = e.store.AppendMessages(ctx, env.Conversation,
				Message{Role: "user", Name: env.Name, Content: env.Question, AuthorID: env.User}, reply)
		}
		if err != nil {
			return fmt.Errorf("store turn: %w", err)
		}
	}
	return nil
}

// redeliveryWindow is how many of a conversation's latest messages a
// redelivered answer is looked for in; turns asked after the restart may
// have come after it.
const redeliveryWindow = 50

// turnStored reports whether the answer of Horde request hordeID is
// already in the conversation's latest messages: the process died after
// storing the turn but before the bridge closed the job, which is then
// delivered again.
func (e *Engine) turnStored(ctx context.Context, conv int64, hordeID string) bool {
	if hordeID == "" {
		return false
	}
	msgs, err := e.store.LastMessages(ctx, conv, redeliveryWindow)
	if err != nil {
		e.log.Warn("look up a redelivered turn", "err", err)
		return false
	}
	for _, m := range msgs {
		if m.Role == "assistant" && m.HordeID == hordeID {
			return true
		}
	}
	return false
}

// answerNotes tells the person what shaped the answer.
func answerNotes(res *bridge.Result) string {
	var notes []string
	if res.Dropped > 0 {
		notes = append(notes, fmt.Sprintf("the %d oldest messages were left out to fit %s's context", res.Dropped, shortModel(res.Model)))
	}
	if res.Truncated {
		notes = append(notes, "your message was cut to fit the model's context")
	}
	if res.KudosLimited {
		notes = append(notes, fmt.Sprintf("the answer was limited to %d tokens because the Horde is busy; link a Horde key with kudos for longer ones", res.MaxTokens))
	}
	if len(res.Choices) > 0 && res.Choices[0].FinishReason == bridge.FinishLength {
		notes = append(notes, "the answer hit the length limit; press Continue for more")
	}
	if len(notes) == 0 {
		return "-# " + shortModel(res.Model)
	}
	return "-# " + shortModel(res.Model) + " · " + strings.Join(notes, " · ")
}

func shortModel(m string) string {
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		return m[i+1:]
	}
	return m
}

// post replaces the placeholder with text (split, or as a file) and sends
// the rest; every send has a key derived from the job, so a redelivery
// after a restart does not post twice.
func (e *Engine) post(ctx context.Context, p Platform, env envelope, jobID, text string, buttons []Button) error {
	if fs, ok := p.(FileSender); ok && e.cfg.AttachOver > 0 && len([]rune(text)) > e.cfg.AttachOver {
		preview := fmt.Sprintf("📄 The answer is long (%d characters), so it is attached.", len([]rune(text)))
		if err := e.sendPart(ctx, p, env, jobID, 0, Outgoing{Text: preview, Buttons: buttons}); err != nil {
			return err
		}
		_, err := fs.SendFile(ctx, env.Target, File{Name: "answer.md", ContentType: "text/markdown; charset=utf-8", Data: []byte(text)}, Outgoing{Key: jobID + ":file"})
		return err
	}
	parts := Split(text, p.MaxMessageLength())
	for i, part := range parts {
		out := Outgoing{Text: part}
		if i == len(parts)-1 {
			out.Buttons = buttons
		}
		if err := e.sendPart(ctx, p, env, jobID, i, out); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) sendPart(ctx context.Context, p Platform, env envelope, jobID string, i int, out Outgoing) error {
	out.Key = fmt.Sprintf("%s:%d", jobID, i)
	if i == 0 && env.Placeholder != "" {
		if ed, ok := p.(Editor); ok {
			if err := ed.Edit(ctx, env.Target, env.Placeholder, out); err == nil {
				return nil
			}
			// The placeholder may be gone; post the answer instead.
		}
	}
	_, err := p.Send(ctx, env.Target, out)
	return err
}

// progressor edits a job's placeholder with its progress, at a bounded
// rate and at most MaxProgressEdits times, and never after the answer.
type progressor struct {
	e           *Engine
	p           Platform
	target, msg string
	token       string

	mu       sync.Mutex
	jobID    string
	last     time.Time
	edits    int
	lastText string
	done     bool
	dlv      chan struct{}
	dlvOnce  sync.Once
}

func (e *Engine) newProgressor(p Platform, target, msg, token string) *progressor {
	pr := &progressor{e: e, p: p, target: target, msg: msg, token: token, last: e.clock.Now(), dlv: make(chan struct{})}
	e.mu.Lock()
	e.progressors[token] = pr
	e.mu.Unlock()
	return pr
}

func (e *Engine) takeProgressor(token string) *progressor {
	e.mu.Lock()
	defer e.mu.Unlock()
	pr := e.progressors[token]
	delete(e.progressors, token)
	return pr
}

func (e *Engine) dropProgressor(token string) { e.takeProgressor(token) }

func (pr *progressor) setJob(id string) {
	pr.mu.Lock()
	pr.jobID = id
	pr.mu.Unlock()
}

// update gets bridge progress; it must not block the scheduler, so the
// edit runs in its own goroutine, serialized by the mutex.
func (pr *progressor) update(p bridge.Progress) {
	ed, ok := pr.p.(Editor)
	if !ok || pr.msg == "" {
		return
	}
	text := progressText(p)
	if text == "" {
		return
	}
	go func() {
		pr.mu.Lock()
		defer pr.mu.Unlock()
		now := pr.e.clock.Now()
		if pr.done || text == pr.lastText || pr.edits >= pr.e.cfg.MaxProgressEdits || now.Sub(pr.last) < pr.e.cfg.ProgressEvery {
			return
		}
		pr.last, pr.lastText = now, text
		pr.edits++
		var buttons []Button
		if pr.jobID != "" {
			buttons = []Button{{ID: "cancel:" + pr.jobID, Label: "Cancel"}}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ed.Edit(ctx, pr.target, pr.msg, Outgoing{Text: text, Notice: true, Buttons: buttons}); err != nil {
			pr.e.log.Debug("progress edit", "err", err)
		}
		if t, ok := pr.p.(Typer); ok {
			_ = t.Typing(ctx, pr.target)
		}
	}()
}

// finish stops progress edits; it returns once none is running.
func (pr *progressor) finish() {
	pr.mu.Lock()
	pr.done = true
	pr.mu.Unlock()
}

func (pr *progressor) delivered() { pr.dlvOnce.Do(func() { close(pr.dlv) }) }

func progressText(p bridge.Progress) string {
	switch p.Stage {
	case bridge.StageQueued:
		if p.QueuePosition > 0 {
			return fmt.Sprintf("⏳ In the Horde's queue: position %d, about %s.", p.QueuePosition, humanWait(p.ETA))
		}
		return fmt.Sprintf("⏳ In the Horde's queue, about %s.", humanWait(p.ETA))
	case bridge.StageProcessing:
		return "✍️ A worker is writing the answer…"
	case bridge.StageRetrying:
		return "🔁 The Horde hiccuped; retrying…"
	}
	return ""
}

// humanWait prints a short wait: "12 s", "3 min".
func humanWait(d time.Duration) string {
	switch {
	case d <= 0:
		return "a moment"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second)+btoi(d%time.Second > 0 && d < time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int((d+30*time.Second)/time.Minute))
	default:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
