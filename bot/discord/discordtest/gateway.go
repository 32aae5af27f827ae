package discordtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

// Gateway opcodes.
const (
	opDispatch       = 0
	opHeartbeat      = 1
	opIdentify       = 2
	opPresenceUpdate = 3
	opVoiceState     = 4
	opResume         = 6
	opReconnect      = 7
	opRequestMembers = 8
	opInvalidSession = 9
	opHello          = 10
	opHeartbeatAck   = 11
)

// Gateway close codes the fake uses, as Discord documents them.
const (
	CloseUnknownError         = 4000
	CloseUnknownOpcode        = 4001
	CloseDecodeError          = 4002
	CloseNotAuthenticated     = 4003
	CloseAuthenticationFailed = 4004
	CloseAlreadyAuthenticated = 4005
	CloseInvalidSeq           = 4007
	CloseInvalidShard         = 4010
	CloseInvalidAPIVersion    = 4012
	CloseInvalidIntents       = 4013
	CloseDisallowedIntents    = 4014
)

// knownIntents are the intent bits Discord accepts.
const knownIntents = discordgo.IntentsAll | discordgo.IntentGuildMessagePolls | discordgo.IntentDirectMessagePolls

// Identify is a recorded IDENTIFY payload (op 2).
type Identify struct {
	Token          string
	Intents        discordgo.Intent
	Shard          [2]int // [id, count]; [0, 1] when absent
	Compress       bool
	LargeThreshold int
	Properties     map[string]string
	Presence       json.RawMessage
	// Accepted is false when the fake closed the connection instead of
	// answering READY.
	Accepted bool
	// CloseCode is the close code sent when not accepted.
	CloseCode int
}

// GatewayPayload is one payload a client sent on the gateway.
type GatewayPayload struct {
	Op   int
	Data json.RawMessage
}

type wireIdentify struct {
	Token          string            `json:"token"`
	Intents        *int64            `json:"intents"`
	Shard          *[2]int           `json:"shard"`
	Compress       bool              `json:"compress"`
	LargeThreshold int               `json:"large_threshold"`
	Properties     map[string]string `json:"properties"`
	Presence       json.RawMessage   `json:"presence"`
}

type wireResume struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	Seq       int64  `json:"seq"`
}

type wireFrame struct {
	Op   int             `json:"op"`
	Data json.RawMessage `json:"d"`
	Seq  *int64          `json:"s"`
	Type *string         `json:"t"`
}

// session is a gateway session: it outlives connections and can be resumed.
type session struct {
	id      string
	token   string
	intents discordgo.Intent
	shard   [2]int
	seq     int64
	log     []loggedFrame
	conn    *gwConn
}

type loggedFrame struct {
	seq   int64
	frame []byte
}

// maxSessionLog bounds the frames kept for RESUME; older ones are dropped
// and resuming from before them gets op 9.
const maxSessionLog = 10000

// event is one dispatch, built per session (intents change its content).
type event struct {
	name    string
	guildID string // "" for DMs and global events
	// intent the session needs (0: always sent).
	intent discordgo.Intent
	build  func(*session) any
}

// gwConn is one websocket connection with an ordered write queue.
type gwConn struct {
	ws   *websocket.Conn
	host string

	mu    sync.Mutex
	cond  *sync.Cond
	queue []outFrame
	dead  bool

	// guarded by Server.mu
	sess    *session
	ready   bool
	closing bool
}

type outFrame struct {
	data      []byte
	closeCode int
	closeText string
}

func newGWConn(ws *websocket.Conn, host string) *gwConn {
	c := &gwConn{ws: ws, host: host}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *gwConn) enqueue(f outFrame) {
	c.mu.Lock()
	if !c.dead {
		c.queue = append(c.queue, f)
		c.cond.Signal()
	}
	c.mu.Unlock()
}

// kill closes the socket at once, without a close frame: an abrupt drop.
func (c *gwConn) kill() {
	c.mu.Lock()
	c.dead = true
	c.queue = nil
	c.cond.Broadcast()
	c.mu.Unlock()
	_ = c.ws.Close()
}

func (c *gwConn) writeLoop() {
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.dead {
			c.cond.Wait()
		}
		if c.dead {
			c.mu.Unlock()
			return
		}
		f := c.queue[0]
		c.queue = c.queue[1:]
		c.mu.Unlock()
		deadline := time.Now().Add(10 * time.Second)
		if f.closeCode != 0 {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(f.closeCode, f.closeText), deadline)
			c.kill()
			return
		}
		_ = c.ws.SetWriteDeadline(deadline)
		if err := c.ws.WriteMessage(websocket.TextMessage, f.data); err != nil {
			c.kill()
			return
		}
	}
}

func frame(op int, d any) []byte {
	b, err := json.Marshal(struct {
		Op   int     `json:"op"`
		Data any     `json:"d"`
		Seq  *int64  `json:"s"`
		Type *string `json:"t"`
	}{op, d, nil, nil})
	if err != nil {
		panic(err)
	}
	return b
}

func dispatchFrame(seq int64, name string, d any) []byte {
	b, err := json.Marshal(struct {
		Op   int    `json:"op"`
		Data any    `json:"d"`
		Seq  int64  `json:"s"`
		Type string `json:"t"`
	}{opDispatch, d, seq, name})
	if err != nil {
		panic(err)
	}
	return b
}

// sendLocked assigns the next sequence number, logs the frame for RESUME
// and writes it if a connection is attached.
func (ss *session) sendLocked(name string, d any) {
	ss.seq++
	f := dispatchFrame(ss.seq, name, d)
	ss.log = append(ss.log, loggedFrame{seq: ss.seq, frame: f})
	if len(ss.log) > maxSessionLog {
		ss.log = ss.log[len(ss.log)-maxSessionLog:]
	}
	if ss.conn != nil {
		ss.conn.enqueue(outFrame{data: f})
	}
}

// dispatchLocked sends an event to every session whose shard and intents
// want it, connected or not (a disconnected session gets it on RESUME).
func (s *Server) dispatchLocked(ev event) {
	for _, ss := range s.sessionListLocked() {
		if guildShard(ev.guildID, ss.shard[1]) != ss.shard[0] {
			continue
		}
		if ev.intent != 0 && ss.intents&ev.intent == 0 {
			continue
		}
		ss.sendLocked(ev.name, ev.build(ss))
	}
	s.notifyLocked()
}

// sessionListLocked lists the sessions; the order does not matter since
// each session numbers its own dispatches.
func (s *Server) sessionListLocked() []*session {
	out := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		out = append(out, ss)
	}
	return out
}

func (s *Server) connListLocked() []*gwConn {
	out := make([]*gwConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// gatewayURL is the ws:// URL clients should connect to.
func (s *Server) gatewayURL(host string) string {
	if s.URL != "" {
		return "ws" + strings.TrimPrefix(s.URL, "http") + "/gateway"
	}
	return "ws://" + host + "/gateway"
}

func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(1 << 20)
	c := newGWConn(ws, r.Host)
	go c.writeLoop()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.kill()
		return
	}
	s.conns[c] = struct{}{}
	c.enqueue(outFrame{data: frame(opHello, map[string]any{
		"heartbeat_interval": s.opts.HeartbeatInterval.Milliseconds(),
		"_trace":             []string{"[\"discordtest\"]"},
	})})
	q := r.URL.Query()
	switch {
	case q.Get("v") != "" && q.Get("v") != "9" && q.Get("v") != "10":
		s.closeConnLocked(c, CloseInvalidAPIVersion, "Invalid API version.")
	case q.Get("encoding") != "" && q.Get("encoding") != "json":
		s.closeConnLocked(c, CloseDecodeError, "Error while decoding payload.")
	case q.Get("compress") != "":
		// Transport compression (zlib-stream) is not simulated.
		s.closeConnLocked(c, CloseUnknownError, "Unknown error.")
	}
	s.notifyLocked()
	s.mu.Unlock()

	var closeErr *websocket.CloseError
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			errors.As(err, &closeErr)
			break
		}
		s.handleClientFrame(c, mt, data)
	}

	s.mu.Lock()
	delete(s.conns, c)
	if c.ready {
		c.ready = false
		s.connLostLocked()
	}
	if ss := c.sess; ss != nil {
		if ss.conn == c {
			ss.conn = nil
		}
		// A client that closes with 1000 or 1001 ends its session.
		if closeErr != nil && (closeErr.Code == websocket.CloseNormalClosure || closeErr.Code == websocket.CloseGoingAway) {
			delete(s.sessions, ss.id)
		}
	}
	s.notifyLocked()
	s.mu.Unlock()
	c.kill()
}

// closeConnLocked sends a close frame after what is queued, then closes.
func (s *Server) closeConnLocked(c *gwConn, code int, text string) {
	if c.closing {
		return
	}
	c.closing = true
	c.enqueue(outFrame{closeCode: code, closeText: text})
}

func (s *Server) handleClientFrame(c *gwConn, mt int, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closing {
		return
	}
	var f wireFrame
	if mt != websocket.TextMessage || json.Unmarshal(data, &f) != nil {
		s.closeConnLocked(c, CloseDecodeError, "Error while decoding payload.")
		return
	}
	s.payloads = append(s.payloads, GatewayPayload{Op: f.Op, Data: append(json.RawMessage(nil), f.Data...)})
	s.notifyLocked()
	switch f.Op {
	case opHeartbeat:
		c.enqueue(outFrame{data: frame(opHeartbeatAck, nil)})
		return
	case opIdentify:
		s.identifyLocked(c, f.Data)
		return
	case opResume:
		s.resumeLocked(c, f.Data)
		return
	case opPresenceUpdate, opVoiceState, opRequestMembers:
		if c.sess == nil {
			s.closeConnLocked(c, CloseNotAuthenticated, "Not authenticated.")
		}
		// Recorded above; not otherwise simulated.
		return
	default:
		s.closeConnLocked(c, CloseUnknownOpcode, "Unknown opcode.")
	}
}

func (s *Server) identifyLocked(c *gwConn, d json.RawMessage) {
	var in wireIdentify
	if err := json.Unmarshal(d, &in); err != nil {
		s.closeConnLocked(c, CloseDecodeError, "Error while decoding payload.")
		return
	}
	rec := Identify{
		Token: in.Token, Compress: in.Compress, LargeThreshold: in.LargeThreshold,
		Properties: in.Properties, Presence: in.Presence, Shard: [2]int{0, 1},
	}
	if in.Intents != nil {
		rec.Intents = discordgo.Intent(*in.Intents)
	}
	if in.Shard != nil {
		rec.Shard = *in.Shard
	}
	reject := func(code int, text string) {
		rec.CloseCode = code
		s.identifies = append(s.identifies, rec)
		s.closeConnLocked(c, code, text)
	}
	switch {
	case c.sess != nil:
		reject(CloseAlreadyAuthenticated, "Already authenticated.")
		return
	case strings.TrimPrefix(in.Token, "Bot ") != s.opts.Token:
		reject(CloseAuthenticationFailed, "Authentication failed.")
		return
	case rec.Shard[1] < 1 || rec.Shard[0] < 0 || rec.Shard[0] >= rec.Shard[1]:
		reject(CloseInvalidShard, "Invalid shard.")
		return
	case in.Intents == nil || *in.Intents < 0 || discordgo.Intent(*in.Intents)&^knownIntents != 0:
		reject(CloseInvalidIntents, "Invalid intent(s).")
		return
	case rec.Intents&PrivilegedIntents&s.opts.DenyPrivilegedIntents != 0:
		reject(CloseDisallowedIntents, "Disallowed intent(s).")
		return
	}
	rec.Accepted = true
	s.identifies = append(s.identifies, rec)

	ss := &session{id: randomHex(16), token: s.opts.Token, intents: rec.Intents, shard: rec.Shard, conn: c}
	s.sessions[ss.id] = ss
	c.sess = ss
	var unavailable []map[string]any
	var mine []*guild
	for _, gid := range s.guildOrder {
		if guildShard(gid, ss.shard[1]) == ss.shard[0] {
			unavailable = append(unavailable, map[string]any{"id": gid, "unavailable": true})
			mine = append(mine, s.guilds[gid])
		}
	}
	if unavailable == nil {
		unavailable = []map[string]any{}
	}
	ss.sendLocked("READY", map[string]any{
		"v":                   9,
		"user":                s.bot,
		"guilds":              unavailable,
		"session_id":          ss.id,
		"session_type":        "normal",
		"resume_gateway_url":  s.gatewayURL(c.host),
		"shard":               ss.shard,
		"application":         map[string]any{"id": s.opts.ApplicationID, "flags": s.applicationFlags()},
		"private_channels":    []any{},
		"relationships":       []any{},
		"presences":           []any{},
		"guild_join_requests": []any{},
		"user_settings":       map[string]any{},
		"_trace":              []string{"[\"discordtest\"]"},
	})
	if ss.intents&discordgo.IntentGuilds != 0 {
		for _, gl := range mine {
			ss.sendLocked("GUILD_CREATE", s.guildCreateLocked(gl, ss.intents&discordgo.IntentGuildPresences != 0))
		}
	}
	s.nIdentified++
	s.connReadyLocked(c)
}

func (s *Server) resumeLocked(c *gwConn, d json.RawMessage) {
	var in wireResume
	if err := json.Unmarshal(d, &in); err != nil {
		s.closeConnLocked(c, CloseDecodeError, "Error while decoding payload.")
		return
	}
	if c.sess != nil {
		s.closeConnLocked(c, CloseAlreadyAuthenticated, "Already authenticated.")
		return
	}
	if strings.TrimPrefix(in.Token, "Bot ") != s.opts.Token {
		s.closeConnLocked(c, CloseAuthenticationFailed, "Authentication failed.")
		return
	}
	ss, ok := s.sessions[in.SessionID]
	if ok && in.Seq > ss.seq {
		s.closeConnLocked(c, CloseInvalidSeq, "Invalid seq.")
		return
	}
	if ok && len(ss.log) > 0 && ss.log[0].seq > in.Seq+1 {
		ok = false // the frames after in.Seq are gone
		delete(s.sessions, ss.id)
	}
	if !ok {
		c.enqueue(outFrame{data: frame(opInvalidSession, false)})
		return
	}
	if old := ss.conn; old != nil && old != c {
		old.sess = nil
		if old.ready {
			old.ready = false
			s.connLostLocked()
		}
		go old.kill()
	}
	ss.conn = c
	c.sess = ss
	for _, f := range ss.log {
		if f.seq > in.Seq {
			c.enqueue(outFrame{data: f.frame})
		}
	}
	ss.sendLocked("RESUMED", map[string]any{"_trace": []string{"[\"discordtest\"]"}})
	s.nResumed++
	s.connReadyLocked(c)
}

func (s *Server) connReadyLocked(c *gwConn) {
	if !c.ready {
		c.ready = true
		s.liveConns++
		if !s.connClosed {
			close(s.connCh)
			s.connClosed = true
		}
	}
	s.notifyLocked()
}

func (s *Server) connLostLocked() {
	s.liveConns--
	if s.liveConns == 0 && s.connClosed {
		s.connCh = make(chan struct{})
		s.connClosed = false
	}
}

// applicationFlags are the GATEWAY_* flags for the granted privileged intents.
func (s *Server) applicationFlags() int {
	flags := 0
	if s.opts.DenyPrivilegedIntents&discordgo.IntentGuildPresences == 0 {
		flags |= 1 << 12 // GATEWAY_PRESENCE
	}
	if s.opts.DenyPrivilegedIntents&discordgo.IntentGuildMembers == 0 {
		flags |= 1 << 14 // GATEWAY_GUILD_MEMBERS
	}
	if s.opts.DenyPrivilegedIntents&discordgo.IntentMessageContent == 0 {
		flags |= 1 << 18 // GATEWAY_MESSAGE_CONTENT
	}
	return flags
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Connected returns a channel that is closed while at least one gateway
// connection is ready (READY or RESUMED sent). Once every connection is
// gone, later calls return a new, open channel.
func (s *Server) Connected() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connCh
}

// WaitIdentified blocks until a client has identified (READY sent) since
// the last DropConnections, SendReconnect or InvalidateSessions call (or
// since the start), and returns that IDENTIFY.
func (s *Server) WaitIdentified(ctx context.Context) (Identify, error) {
	var out Identify
	err := s.waitFor(ctx, func() bool {
		if s.nIdentified <= s.markIdent {
			return false
		}
		for i := len(s.identifies) - 1; i >= 0; i-- {
			if s.identifies[i].Accepted {
				out = s.identifies[i]
				break
			}
		}
		return true
	})
	return out, err
}

// WaitResumed blocks until a client has resumed a session (RESUMED sent)
// since the last DropConnections, SendReconnect or InvalidateSessions call
// (or since the start).
func (s *Server) WaitResumed(ctx context.Context) error {
	return s.waitFor(ctx, func() bool { return s.nResumed > s.markResume })
}

func (s *Server) markLocked() {
	s.markIdent, s.markResume = s.nIdentified, s.nResumed
}

// DropConnections closes every gateway socket abruptly (no close frame), as
// a network failure would. Sessions stay resumable: dispatches made while
// the client is away are replayed when it RESUMEs.
func (s *Server) DropConnections() {
	s.mu.Lock()
	s.markLocked()
	conns := s.connListLocked()
	for _, c := range conns {
		if ss := c.sess; ss != nil && ss.conn == c {
			ss.conn = nil
		}
		c.sess = nil
		c.closing = true
		if c.ready {
			c.ready = false
			s.connLostLocked()
		}
		delete(s.conns, c)
	}
	s.notifyLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.kill()
	}
}

// SendReconnect sends op 7 RECONNECT on every connection; the client is
// expected to close and RESUME.
func (s *Server) SendReconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markLocked()
	for _, c := range s.connListLocked() {
		c.enqueue(outFrame{data: frame(opReconnect, nil)})
	}
}

// InvalidateSessions sends op 9 INVALID SESSION with d = resumable on every
// identified connection. When not resumable the sessions are forgotten, so
// the client must IDENTIFY again.
func (s *Server) InvalidateSessions(resumable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markLocked()
	for _, c := range s.connListLocked() {
		if c.sess == nil {
			continue
		}
		if !resumable {
			delete(s.sessions, c.sess.id)
			if c.sess.conn == c {
				c.sess.conn = nil
			}
			c.sess = nil
		}
		c.enqueue(outFrame{data: frame(opInvalidSession, resumable)})
	}
	s.notifyLocked()
}

// Identifies returns every IDENTIFY received, accepted or not, in order.
func (s *Server) Identifies() []Identify {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Identify(nil), s.identifies...)
}

// GatewayPayloads returns every payload clients sent on the gateway
// (heartbeats, IDENTIFY, RESUME, presence updates...), in order.
func (s *Server) GatewayPayloads() []GatewayPayload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]GatewayPayload(nil), s.payloads...)
}

// Sessions is how many gateway sessions exist (resumable or live).
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
