package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hordechat/hordechat/bot/discord/discordtest"
	"github.com/hordechat/hordechat/bridge/bridgetest"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// The fakes of the load runs (load_test.go), all in the test process so
// that the hordechat child is measured alone: a Horde whose jobs last a
// known time, and a Discord whose bot messages are watched as they arrive.

const (
	loadModel       = "koboldcpp/Fimbulvetr-11B-v2"
	loadOperatorKey = "load-operator-key-0123456789"
	// loadTokensPerSecond is the worker's speed; an answer of n tokens
	// takes n/loadTokensPerSecond seconds of Horde time.
	loadTokensPerSecond = 10
)

// markerRE finds the question markers the load puts in every message:
// LD-<platform letter><conversation>-t<turn>.
var markerRE = regexp.MustCompile(`LD-[a-z][0-9]+-t[0-9]+`)

// answerRE finds the marker an answer names.
var answerRE = regexp.MustCompile(`Answer (LD-[a-z][0-9]+-t[0-9]+)`)

// lastMarker is the newest question of a prompt: history comes first.
func lastMarker(s string) string {
	all := markerRE.FindAllString(s, -1)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// loadResponder answers "Answer <marker>." padded to exactly tokens
// tokens (4 characters each), so every job lasts the same known time.
func loadResponder(tokens int) hordetest.Responder {
	return func(j hordetest.Job) string {
		text := "Answer " + lastMarker(j.Prompt) + "."
		if n := tokens * 4; len(text) < n {
			text += strings.Repeat(" ", n-len(text)-1) + "."
		}
		return text
	}
}

// loadHorde is a fake Horde on the real clock with one worker that takes
// every job at once (threads to spare) and needs jobTokens/10 s for each,
// an operator account without a concurrency limit, and rate limits off.
// srv serves it and counts the TCP connections hordechat opened.
func loadHorde(tb testing.TB, jobTokens int) (fake *hordetest.Server, srv *countingServer) {
	tb.Helper()
	fake = hordetest.NewServer(hordetest.Options{
		Clock:             clockwork.NewRealClock(),
		Passkey:           bridgetest.Passkey,
		DisableRateLimits: true,
		Workers: []hordetest.Worker{{
			Name: "load-worker", Models: []string{loadModel}, MaxLength: 512, MaxContextLength: 8192,
			TokensPerSecond: loadTokensPerSecond, Threads: 10000,
		}},
		Users:     []hordetest.User{{APIKey: loadOperatorKey, Username: "operator", Kudos: 1e9, Concurrency: 1000000}},
		Responder: loadResponder(jobTokens),
	})
	srv = newCountingServer(fake.Handler())
	srv.Start()
	fake.URL = srv.URL + "/api"
	tb.Cleanup(func() {
		srv.Close()
		_ = fake.Close()
	})
	return fake, srv
}

// countingServer is an httptest server that counts the connections it
// accepted.
type countingServer struct {
	*httptest.Server
	conns atomic.Int64
}

// newCountingServer returns the server unstarted.
func newCountingServer(h http.Handler) *countingServer {
	s := &countingServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	return s
}

// answerBook records when the answer to each marker reached a chat
// server, and every other bot message that is not progress: an error
// that reached a user.
type answerBook struct {
	mu      sync.Mutex
	at      map[string]time.Time
	waiters map[string]chan struct{}
	odd     []string      // bot messages that are neither progress nor an answer
	trouble chan struct{} // closed at the first odd message: waiting is over
}

func newAnswerBook() *answerBook {
	return &answerBook{at: map[string]time.Time{}, waiters: map[string]chan struct{}{}, trouble: make(chan struct{})}
}

// errTrouble ends every wait once a user got something other than an
// answer: the run has failed, so it should not wait out its timeout.
var errTrouble = errors.New("a user got an error instead of an answer")

// progressPrefixes start the placeholder and its progress edits.
var progressPrefixes = []string{"⏳", "✍️", "🔁"}

// unexpected reports whether a bot message is neither progress nor an
// answer.
func unexpected(text string) bool {
	for _, p := range progressPrefixes {
		if strings.HasPrefix(text, p) {
			return false
		}
	}
	return !answerRE.MatchString(text)
}

// saw takes a bot message's text as the chat server stored it.
func (b *answerBook) saw(text string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := answerRE.FindStringSubmatch(text)
	if m == nil {
		if !unexpected(text) {
			return
		}
		b.failLocked(text)
		return
	}
	if _, ok := b.at[m[1]]; ok {
		return
	}
	b.at[m[1]] = now
	if ch, ok := b.waiters[m[1]]; ok {
		close(ch)
	}
}

// fail records a message that reached a user instead of an answer.
func (b *answerBook) fail(text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failLocked(text)
}

func (b *answerBook) failLocked(text string) {
	if len(b.odd) == 0 {
		close(b.trouble)
	}
	b.odd = append(b.odd, text)
}

// wait returns when the answer to marker arrived.
func (b *answerBook) wait(ctx context.Context, marker string) (time.Time, error) {
	b.mu.Lock()
	if at, ok := b.at[marker]; ok {
		b.mu.Unlock()
		return at, nil
	}
	ch, ok := b.waiters[marker]
	if !ok {
		ch = make(chan struct{})
		b.waiters[marker] = ch
	}
	b.mu.Unlock()
	select {
	case <-ch:
	case <-b.trouble:
		return time.Time{}, errTrouble
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.at[marker], nil
}

// oddMessages returns the bot messages that were neither progress nor an
// answer.
func (b *answerBook) oddMessages() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.odd...)
}

// loadDiscord is a fake Discord served through a handler that hands every
// message the bot creates or edits to book the moment the fake stored it.
// (WaitMessage would snapshot every message on every change: quadratic
// with a thousand conversations.) srv serves it and counts the TCP
// connections hordechat opened.
func loadDiscord(tb testing.TB, book *answerBook) (dc *discordtest.Server, srv *countingServer) {
	tb.Helper()
	dc = discordtest.NewServer(discordtest.Options{})
	botID := dc.BotUser().ID
	next := dc.Handler()
	srv = newCountingServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodPost && r.Method != http.MethodPatch) || !strings.HasSuffix(strings.TrimRight(r.URL.Path, "/0123456789"), "/messages") {
			next.ServeHTTP(w, r)
			return
		}
		tee := &teeWriter{ResponseWriter: w}
		next.ServeHTTP(tee, r)
		var m struct {
			Content string `json:"content"`
			Author  struct {
				ID string `json:"id"`
			} `json:"author"`
		}
		if tee.status < 300 && json.Unmarshal(tee.body.Bytes(), &m) == nil && m.Author.ID == botID {
			book.saw(m.Content, time.Now())
		}
	}))
	dc.URL = "http://" + srv.Listener.Addr().String()
	srv.Start()
	tb.Cleanup(func() {
		dc.Close()
		srv.Close()
	})
	return dc, srv
}

// teeWriter keeps a copy of a response.
type teeWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (t *teeWriter) WriteHeader(code int) {
	t.status = code
	t.ResponseWriter.WriteHeader(code)
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	t.body.Write(p)
	return t.ResponseWriter.Write(p)
}
