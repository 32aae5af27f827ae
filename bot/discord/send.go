package discord

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/bwmarrin/discordgo"

	"github.com/hordechat/hordechat/bot"
)

// Discord error codes the adapter reacts to.
const (
	codeUnknownMessage       = 10008
	codeUnknownWebhook       = 10015
	codeInvalidWebhookToken  = 50027
	codeThreadAlreadyCreated = 160004
)

const (
	flagLoading   = discordgo.MessageFlags(1 << 7) // a deferred response still "thinking"
	ephemeralFlag = discordgo.MessageFlagsEphemeral
	followupQuery = "?wait=true"
	nonceLength   = 25 // Discord's limit

	maxButtonsPerRow = 5
	maxRows          = 5
	maxCustomID      = 100
	maxButtonLabel   = 80
	maxAuditReason   = 512

	// Bounds of the in-memory maps; what they forget is recovered from
	// Discord (the original response's state, the existing thread) or
	// only costs a duplicate progress message.
	maxInteractionStates = 1000
	maxReplaced          = 10000
	maxThreads           = 10000
)

// noMentions is sent with every message: model output (and anything else
// the bot says) can never ping anyone, replied-to authors included.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}

// messageBody is a message create or edit. discordgo's MessageSend has no
// nonce nor enforce_nonce, hence this.
type messageBody struct {
	Content         string                            `json:"content"`
	Components      []discordgo.MessageComponent      `json:"components"`
	AllowedMentions *discordgo.MessageAllowedMentions `json:"allowed_mentions"`
	Flags           discordgo.MessageFlags            `json:"flags,omitempty"`
	Nonce           string                            `json:"nonce,omitempty"`
	EnforceNonce    bool                              `json:"enforce_nonce,omitempty"`
	Reference       *discordgo.MessageReference       `json:"message_reference,omitempty"`
}

func body(out bot.Outgoing) messageBody {
	text := out.Text
	if strings.TrimSpace(text) == "" {
		text = "…" // Discord refuses empty messages
	}
	return messageBody{Content: text, Components: components(out.Buttons), AllowedMentions: noMentions()}
}

// nonce turns an idempotency key into a message nonce (at most 25
// characters), so a redelivery after a restart returns the message posted
// before instead of posting again.
func nonce(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])[:nonceLength]
}

// components renders buttons as action rows.
func components(bs []bot.Button) []discordgo.MessageComponent {
	out := []discordgo.MessageComponent{}
	var row []discordgo.MessageComponent
	for _, b := range bs {
		if len(out) == maxRows {
			break
		}
		style := discordgo.SecondaryButton
		if strings.HasPrefix(b.ID, "cancel") {
			style = discordgo.DangerButton
		}
		id := buttonPrefix + b.ID
		if len(id) > maxCustomID {
			continue // cannot work; the engine's ids are short
		}
		row = append(row, discordgo.Button{Label: truncateRunes(b.Label, maxButtonLabel), Style: style, CustomID: id})
		if len(row) == maxButtonsPerRow {
			out = append(out, discordgo.ActionsRow{Components: row})
			row = nil
		}
	}
	if len(row) > 0 && len(out) < maxRows {
		out = append(out, discordgo.ActionsRow{Components: row})
	}
	return out
}

// sentMessage is what the adapter reads of a message Discord returns.
type sentMessage struct {
	ID    string                 `json:"id"`
	Flags discordgo.MessageFlags `json:"flags"`
}

// rest makes one REST call through the session (its rate limiter and
// retries) and decodes the message it returns, if any.
func (a *Adapter) rest(ctx context.Context, method, endpoint, bucket string, data any, files []*discordgo.File, opts ...discordgo.RequestOption) (sentMessage, error) {
	opts = append(opts, discordgo.WithContext(ctx))
	var raw []byte
	var err error
	if len(files) > 0 {
		ct, b, merr := discordgo.MultipartBodyWithJSON(data, files)
		if merr != nil {
			return sentMessage{}, fmt.Errorf("encode upload: %w", merr)
		}
		raw, err = a.s.RequestRaw(method, endpoint, ct, b, bucket, 0, opts...)
	} else {
		raw, err = a.s.RequestWithBucketID(method, endpoint, data, bucket, opts...)
	}
	if err != nil {
		return sentMessage{}, scrub(err)
	}
	var m sentMessage
	if len(bytes.TrimSpace(raw)) > 0 {
		_ = json.Unmarshal(raw, &m)
	}
	return m, nil
}

// restCode returns the HTTP status and Discord error code of err.
func restCode(err error) (status, code int) {
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil {
		status = re.Response.StatusCode
		if re.Message != nil {
			code = re.Message.Code
		}
	}
	return status, code
}

// tokenGone reports an interaction token Discord no longer accepts.
func tokenGone(err error) bool {
	status, code := restCode(err)
	return code == codeInvalidWebhookToken || code == codeUnknownWebhook || status == http.StatusUnauthorized
}

// Send implements bot.Platform. Text over the limit is split (the engine
// splits answers itself; command replies may be long); the id of the
// first message is returned.
func (a *Adapter) Send(ctx context.Context, targetStr string, out bot.Outgoing) (string, error) {
	t, err := parseTarget(targetStr)
	if err != nil {
		return "", err
	}
	parts := bot.Split(out.Text, MaxMessageLength)
	if len(parts) == 0 {
		parts = []string{""}
	}
	first := ""
	for i, p := range parts {
		o := out
		o.Text = p
		if i > 0 && out.Key != "" {
			o.Key = out.Key + "#" + strconv.Itoa(i)
		}
		if i < len(parts)-1 {
			o.Buttons = nil
		}
		id, err := a.sendOne(ctx, t, o)
		if err != nil {
			return first, fmt.Errorf("discord: send: %w", err)
		}
		if i == 0 {
			first = id
		}
	}
	return first, nil
}

// errPrivateExpired refuses to post an ephemeral answer in the channel
// when its interaction token no longer works.
var errPrivateExpired = errors.New("the interaction expired (or this host's clock is over 15 minutes off); its private answer was not posted in the channel")

// sendOne posts one message at t:
//   - a live command interaction: the first answer fills the original
//     response (the deferred "thinking" message); later ones are ephemeral
//     follow-ups, or channel messages when they have a key (a nonce makes
//     them idempotent, which follow-ups cannot be);
//   - a live button interaction: ephemeral answers are follow-ups, others
//     channel messages;
//   - a thread target: the thread is opened first, except for ephemeral
//     answers (refusals), which reply to the message in the channel;
//   - otherwise, and once the interaction token is gone (15 minutes), a
//     channel message.
func (a *Adapter) sendOne(ctx context.Context, t target, o bot.Outgoing) (string, error) {
	if t.alive(a.clock.Now()) {
		id, err := a.sendInteraction(ctx, t, o)
		if err == nil && id != "" || err != nil && !tokenGone(err) {
			return id, err
		}
		// The token expired early, or id is "": answer in the channel.
	}
	if o.Ephemeral && t.interaction() {
		// A private answer (a new /v1 token, /me) must not become a
		// channel message because the interaction is gone.
		return "", errPrivateExpired
	}
	switch t.kind {
	case kindThread:
		if o.Ephemeral {
			return a.channelSend(ctx, t.channel, t.message, o)
		}
		ch, err := a.ensureThread(ctx, t)
		if err != nil {
			return "", err
		}
		reply := ""
		if ch == t.channel {
			reply = t.message // no thread: answer the message in place
		}
		return a.channelSend(ctx, ch, reply, o)
	case kindReply:
		return a.channelSend(ctx, t.channel, t.message, o)
	}
	return a.channelSend(ctx, t.channel, "", o)
}

// sendInteraction returns "" when the message should go to the channel.
func (a *Adapter) sendInteraction(ctx context.Context, t target, o bot.Outgoing) (string, error) {
	if t.kind == kindCommand {
		if id, done, err := a.fillOriginal(ctx, t, o); done {
			return id, err
		}
	}
	if o.Ephemeral || t.kind == kindCommand && o.Key == "" {
		return a.followup(ctx, t, o)
	}
	return "", nil
}

// ixState is what the adapter knows of a command interaction's original
// response. After a restart it is unknown and read back from Discord.
type ixState struct {
	mu        sync.Mutex
	known     bool
	used      bool // the original response holds a message (or was deleted)
	ephemeral bool // the deferred response is ephemeral
	issued    int64
}

func (a *Adapter) ixFor(t target) *ixState {
	a.mu.Lock()
	defer a.mu.Unlock()
	st, ok := a.ix[t.token]
	if ok {
		return st
	}
	if len(a.ix) >= maxInteractionStates {
		now := a.clock.Now()
		for k, v := range a.ix {
			if now.Unix()-v.issued > int64(tokenLifetime.Seconds()) {
				delete(a.ix, k)
			}
		}
	}
	st = &ixState{issued: t.issued.Unix()}
	a.ix[t.token] = st
	return st
}

// deferred records the deferred response the adapter just sent.
func (a *Adapter) deferred(t target, ephemeral bool) {
	st := a.ixFor(t)
	st.mu.Lock()
	st.known, st.used, st.ephemeral = true, false, ephemeral
	st.mu.Unlock()
}

// fillOriginal puts o in the original response if it is still the
// deferred "thinking" message. done is false when o must go elsewhere.
func (a *Adapter) fillOriginal(ctx context.Context, t target, o bot.Outgoing) (id string, done bool, err error) {
	st := a.ixFor(t)
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.known {
		m, err := a.rest(ctx, http.MethodGet, discordgo.EndpointWebhookMessage(t.app, t.token, "@original"), webhookBucket(t), nil, nil)
		switch {
		case err == nil:
			st.used, st.ephemeral = m.Flags&flagLoading == 0, m.Flags&ephemeralFlag != 0
		case tokenGone(err):
			return "", false, nil
		default:
			st.used = true // never risk overwriting an answer
		}
		st.known = true
	}
	if st.used {
		return "", false, nil
	}
	if o.Ephemeral && !st.ephemeral {
		// A public "thinking" message cannot turn ephemeral: remove it
		// and answer with an ephemeral follow-up.
		_, err := a.rest(ctx, http.MethodDelete, discordgo.EndpointWebhookMessage(t.app, t.token, "@original"), webhookBucket(t), nil, nil)
		if _, code := restCode(err); err != nil && code != codeUnknownMessage {
			return "", true, err
		}
		st.used = true
		return "", false, nil
	}
	m, err := a.rest(ctx, http.MethodPatch, discordgo.EndpointWebhookMessage(t.app, t.token, "@original"), webhookBucket(t), body(o), nil)
	if err != nil {
		return "", true, err
	}
	st.used = true
	return string(prefixOriginal) + m.ID, true, nil
}

// webhookBucket is the rate-limit bucket of an interaction's webhook.
// discordgo serializes the requests of a bucket and never forgets one, so
// the tokens share a few buckets: bounded memory, parallel enough.
func webhookBucket(t target) string {
	return bucketShard(discordgo.EndpointWebhookToken(t.app, ""), t.token)
}

func bucketShard(prefix, key string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return prefix + "#" + strconv.Itoa(int(h.Sum32()%16))
}

func (a *Adapter) followup(ctx context.Context, t target, o bot.Outgoing) (string, error) {
	b := body(o)
	if o.Ephemeral {
		b.Flags = ephemeralFlag
	}
	m, err := a.rest(ctx, http.MethodPost, discordgo.EndpointWebhookToken(t.app, t.token)+followupQuery, webhookBucket(t), b, nil)
	if err != nil {
		return "", err
	}
	return string(prefixFollowup) + m.ID, nil
}

// channelSend posts a message in a channel, replying to reply when set.
func (a *Adapter) channelSend(ctx context.Context, channel, reply string, o bot.Outgoing) (string, error) {
	b := body(o)
	if o.Key != "" {
		b.Nonce, b.EnforceNonce = nonce(o.Key), true
	}
	if reply != "" {
		no := false
		b.Reference = &discordgo.MessageReference{MessageID: reply, ChannelID: channel, FailIfNotExists: &no}
	}
	m, err := a.rest(ctx, http.MethodPost, discordgo.EndpointChannelMessages(channel), discordgo.EndpointChannelMessages(channel), b, nil)
	if err != nil {
		return "", err
	}
	return m.ID, nil
}

// ensureThread opens the thread of a thread target (once) and returns the
// channel its answers go to: the thread, or the channel itself when the
// bot may not open threads there.
func (a *Adapter) ensureThread(ctx context.Context, t target) (string, error) {
	// Per message, not adapter-wide: a thousand mentions at once would
	// otherwise wait for each other's thread creation round trip.
	defer a.opening.lock(t.message)()
	a.mu.Lock()
	ch, ok := a.threads[t.message]
	name := a.names[t.message]
	a.mu.Unlock()
	if ok {
		return ch, nil
	}
	if name == "" {
		name = "Chat" // the name was lost in a restart; the thread usually exists by then
	}
	minutes := int(a.cfg.ThreadArchive.Minutes())
	_, err := a.s.MessageThreadStartComplex(t.channel, t.message, &discordgo.ThreadStart{Name: name, AutoArchiveDuration: minutes}, discordgo.WithContext(ctx))
	status, code := restCode(err)
	switch {
	case err == nil, code == codeThreadAlreadyCreated:
		ch = t.message // a thread started from a message has the message's id
	case status >= 400 && status < 500 && status != http.StatusTooManyRequests:
		a.log.Warn("cannot open a thread; answering in the channel", "channel", t.channel, "status", status, "code", code)
		ch = t.channel
	default:
		return "", fmt.Errorf("open thread: %w", scrub(err))
	}
	a.mu.Lock()
	if len(a.threads) > maxThreads {
		clear(a.threads)
	}
	a.threads[t.message] = ch
	delete(a.names, t.message)
	a.mu.Unlock()
	return ch, nil
}

// home is the channel of t where the bot's messages are (for a thread
// target: the thread once opened).
func (a *Adapter) home(t target) string {
	if t.kind != kindThread {
		return t.channel
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ch, ok := a.threads[t.message]; ok {
		return ch
	}
	return t.message
}

// Edit implements bot.Editor. Interaction messages are edited through the
// interaction webhook while its token lives; after that the new text is
// posted as a channel message, which later edits then change.
func (a *Adapter) Edit(ctx context.Context, targetStr, messageID string, out bot.Outgoing) error {
	t, err := parseTarget(targetStr)
	if err != nil {
		return err
	}
	parts := bot.Split(out.Text, MaxMessageLength)
	if len(parts) == 0 {
		parts = []string{""}
	}
	o := out
	o.Text = parts[0]
	if len(parts) > 1 {
		o.Buttons = nil
	}
	if err := a.editOne(ctx, t, messageID, o); err != nil {
		return fmt.Errorf("discord: edit: %w", err)
	}
	for i := 1; i < len(parts); i++ {
		o := out
		o.Text = parts[i]
		if out.Key != "" {
			o.Key = out.Key + "#" + strconv.Itoa(i)
		}
		if i < len(parts)-1 {
			o.Buttons = nil
		}
		if _, err := a.sendOne(ctx, t, o); err != nil {
			return fmt.Errorf("discord: edit: %w", err)
		}
	}
	return nil
}

func (a *Adapter) editOne(ctx context.Context, t target, id string, o bot.Outgoing) error {
	if id == "" {
		return errors.New("no message id")
	}
	a.mu.Lock()
	rid, replaced := a.replaced[id]
	a.mu.Unlock()
	if replaced {
		return a.channelEdit(ctx, t.channel, rid, o)
	}
	prefix := id[0]
	if prefix != prefixOriginal && prefix != prefixFollowup {
		return a.channelEdit(ctx, a.home(t), id, o)
	}
	if t.alive(a.clock.Now()) {
		mid := id[1:]
		if prefix == prefixOriginal {
			mid = "@original"
		}
		_, err := a.rest(ctx, http.MethodPatch, discordgo.EndpointWebhookMessage(t.app, t.token, mid), webhookBucket(t), body(o), nil)
		if err == nil || !tokenGone(err) {
			return err
		}
	}
	// The token is gone: post the text as a channel message instead and
	// remember it, so progress edits do not post again and again. The
	// nonce covers a restart within Discord's nonce window.
	if o.Key == "" {
		o.Key = "edit:" + id
	}
	o.Ephemeral = false
	nid, err := a.channelSend(ctx, t.channel, "", o)
	if err != nil {
		return err
	}
	a.mu.Lock()
	if len(a.replaced) > maxReplaced {
		clear(a.replaced)
	}
	a.replaced[id] = nid
	a.mu.Unlock()
	return nil
}

func (a *Adapter) channelEdit(ctx context.Context, channel, id string, o bot.Outgoing) error {
	b := body(o)
	_, err := a.rest(ctx, http.MethodPatch, discordgo.EndpointChannelMessage(channel, id), discordgo.EndpointChannelMessages(channel), b, nil)
	return err
}

// Typing implements bot.Typer. A live command interaction already shows
// "thinking", so it types nothing there.
func (a *Adapter) Typing(ctx context.Context, targetStr string) error {
	t, err := parseTarget(targetStr)
	if err != nil {
		return err
	}
	if t.kind == kindCommand && t.alive(a.clock.Now()) {
		return nil
	}
	ch := t.channel
	if t.kind == kindThread {
		a.mu.Lock()
		if c, ok := a.threads[t.message]; ok {
			ch = c
		}
		a.mu.Unlock()
	}
	if _, err := a.rest(ctx, http.MethodPost, discordgo.EndpointChannelTyping(ch), discordgo.EndpointChannelTyping(ch), nil, nil); err != nil {
		return fmt.Errorf("discord: typing: %w", err)
	}
	return nil
}

// Redact implements bot.Redactor: it deletes a message (the bot needs
// Manage Messages for other people's).
func (a *Adapter) Redact(ctx context.Context, targetStr, messageID, reason string) error {
	t, err := parseTarget(targetStr)
	if err != nil {
		return err
	}
	if messageID == "" {
		return errors.New("discord: redact: no message id")
	}
	var opts []discordgo.RequestOption
	if reason != "" {
		opts = append(opts, discordgo.WithAuditLogReason(truncateRunes(reason, maxAuditReason)))
	}
	endpoint, bucket := "", ""
	switch prefix := messageID[0]; {
	case (prefix == prefixOriginal || prefix == prefixFollowup) && t.alive(a.clock.Now()):
		mid := messageID[1:]
		if prefix == prefixOriginal {
			mid = "@original"
		}
		endpoint, bucket = discordgo.EndpointWebhookMessage(t.app, t.token, mid), webhookBucket(t)
	case prefix == prefixOriginal || prefix == prefixFollowup:
		endpoint, bucket = discordgo.EndpointChannelMessage(t.channel, messageID[1:]), discordgo.EndpointChannelMessages(t.channel)
	default:
		ch := a.home(t)
		if t.kind == kindThread && messageID == t.message {
			ch = t.channel // the starter message is in the channel
		}
		endpoint, bucket = discordgo.EndpointChannelMessage(ch, messageID), discordgo.EndpointChannelMessages(ch)
	}
	if _, err := a.rest(ctx, http.MethodDelete, endpoint, bucket, nil, nil, opts...); err != nil {
		return fmt.Errorf("discord: redact: %w", err)
	}
	return nil
}

// SendFile implements bot.FileSender with a multipart upload. Ephemeral
// files go to a live interaction as a follow-up; the rest to the channel,
// idempotent by the key's nonce.
func (a *Adapter) SendFile(ctx context.Context, targetStr string, f bot.File, out bot.Outgoing) (string, error) {
	t, err := parseTarget(targetStr)
	if err != nil {
		return "", err
	}
	b := body(out)
	if strings.TrimSpace(out.Text) == "" {
		b.Content = ""
	}
	b.Content = truncateRunes(b.Content, MaxMessageLength)
	ct := f.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	files := []*discordgo.File{{Name: f.Name, ContentType: ct, Reader: bytes.NewReader(f.Data)}}
	if out.Ephemeral && t.interaction() {
		if t.alive(a.clock.Now()) {
			b.Flags = ephemeralFlag
			m, err := a.rest(ctx, http.MethodPost, discordgo.EndpointWebhookToken(t.app, t.token)+followupQuery, webhookBucket(t), b, files)
			if err == nil {
				return string(prefixFollowup) + m.ID, nil
			}
			if !tokenGone(err) {
				return "", fmt.Errorf("discord: send file: %w", err)
			}
		}
		// Never in the channel: the file was meant for one person.
		return "", fmt.Errorf("discord: send file: %w", errPrivateExpired)
	}
	ch := a.home(t)
	if t.kind == kindThread {
		if ch, err = a.ensureThread(ctx, t); err != nil {
			return "", fmt.Errorf("discord: send file: %w", err)
		}
	}
	if out.Key != "" {
		b.Nonce, b.EnforceNonce = nonce(out.Key), true
	}
	m, err := a.rest(ctx, http.MethodPost, discordgo.EndpointChannelMessages(ch), discordgo.EndpointChannelMessages(ch), b, files)
	if err != nil {
		return "", fmt.Errorf("discord: send file: %w", err)
	}
	return m.ID, nil
}
