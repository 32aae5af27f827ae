package discordtest

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request is one recorded HTTP request to the REST API.
type Request struct {
	Method string
	// Path is the request path as sent, like /api/v9/channels/1/messages.
	Path string
	// Route is the matched route, like "POST /channels/{channel}/messages";
	// empty for unknown routes.
	Route  string
	Query  url.Values
	Header http.Header
	Body   []byte
	// Status is the status the fake answered with.
	Status int
	// At is the fake clock's time.
	At time.Time
}

// reply is a handler's answer.
type reply struct {
	status int
	body   []byte // nil: no body
	header http.Header
}

func jsonReply(status int, v any) reply {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return reply{status: status, body: b}
}

func rawReply(status int, b []byte) reply { return reply{status: status, body: b} }

func noContent() reply { return reply{status: http.StatusNoContent} }

// apiError is Discord's error body.
func apiError(status, code int, message string) reply {
	return jsonReply(status, map[string]any{"message": message, "code": code})
}

// JSON error codes used by the fake (Discord's numbers).
const (
	codeUnknownApplication   = 10002
	codeUnknownChannel       = 10003
	codeUnknownGuild         = 10004
	codeUnknownMember        = 10007
	codeUnknownMessage       = 10008
	codeUnknownUser          = 10013
	codeUnknownWebhook       = 10015
	codeUnknownCommand       = 10063
	codeUnknownInteraction   = 10062
	codeRequestTooLarge      = 40005
	codeAlreadyAcknowledged  = 40060
	codeMissingAccess        = 50001
	codeCannotEditOthers     = 50005
	codeEmptyMessage         = 50006
	codeNonTextChannel       = 50008
	codeInvalidRecipient     = 50033
	codeWrongChannelType     = 50024
	codeInvalidWebhookToken  = 50027
	codeInvalidFormBody      = 50035
	codeInvalidJSON          = 50109
	codeThreadAlreadyCreated = 160004
)

func errUnauthorized() reply { return apiError(http.StatusUnauthorized, 0, "401: Unauthorized") }
func errNotFound() reply     { return apiError(http.StatusNotFound, 0, "404: Not Found") }

func errUnknown(code int, what string) reply {
	return apiError(http.StatusNotFound, code, "Unknown "+what)
}

// fieldError is one entry of an Invalid Form Body error.
type fieldError struct {
	path    string // dotted, like "embeds.0.description"
	code    string
	message string
}

// formError is 400 code 50035 with Discord's nested errors object:
// {"errors": {"content": {"_errors": [{"code": ..., "message": ...}]}}}.
func formError(errs ...fieldError) reply {
	root := map[string]any{}
	for _, e := range errs {
		node := root
		if e.path != "" {
			for _, part := range strings.Split(e.path, ".") {
				next, ok := node[part].(map[string]any)
				if !ok {
					next = map[string]any{}
					node[part] = next
				}
				node = next
			}
		}
		list, _ := node["_errors"].([]any)
		node["_errors"] = append(list, map[string]string{"code": e.code, "message": e.message})
	}
	return jsonReply(http.StatusBadRequest, map[string]any{
		"message": "Invalid Form Body", "code": codeInvalidFormBody, "errors": root,
	})
}

func maxLengthError(path string, n int) fieldError {
	return fieldError{path, "BASE_TYPE_MAX_LENGTH", fmt.Sprintf("Must be %d or fewer in length.", n)}
}

func requiredError(path string) fieldError {
	return fieldError{path, "BASE_TYPE_REQUIRED", "This field is required"}
}

// call is one REST request being handled.
type call struct {
	r       *http.Request
	body    []byte
	p       map[string]string
	version string
	now     time.Time
}

type auth int

const (
	authBot  auth = iota // Authorization: Bot <token>
	authNone             // interaction and webhook-token routes, /gateway
)

type route struct {
	method string
	segs   []string
	auth   auth
	h      func(*Server, *call) reply
}

func (rt route) String() string { return rt.method + " /" + strings.Join(rt.segs, "/") }

func mk(method, pattern string, a auth, h func(*Server, *call) reply) route {
	return route{method: method, segs: strings.Split(strings.Trim(pattern, "/"), "/"), auth: a, h: h}
}

// routes lists the REST API the fake serves; literal segments are listed
// before parameters at the same place.
var routes = []route{
	mk("GET", "/gateway", authNone, (*Server).handleGateway),
	mk("GET", "/gateway/bot", authBot, (*Server).handleGatewayBot),
	mk("GET", "/users/@me", authBot, (*Server).handleMe),
	mk("POST", "/users/@me/channels", authBot, (*Server).handleCreateDM),
	mk("GET", "/users/{user}", authBot, (*Server).handleUser),
	mk("GET", "/oauth2/applications/@me", authBot, (*Server).handleApplication),
	mk("GET", "/applications/@me", authBot, (*Server).handleApplication),
	mk("GET", "/applications/{app}/commands", authBot, (*Server).handleGetCommands),
	mk("PUT", "/applications/{app}/commands", authBot, (*Server).handleBulkCommands),
	mk("POST", "/applications/{app}/commands", authBot, (*Server).handleCreateCommand),
	mk("GET", "/applications/{app}/commands/{command}", authBot, (*Server).handleGetCommand),
	mk("DELETE", "/applications/{app}/commands/{command}", authBot, (*Server).handleDeleteCommand),
	mk("GET", "/applications/{app}/guilds/{guild}/commands", authBot, (*Server).handleGetCommands),
	mk("PUT", "/applications/{app}/guilds/{guild}/commands", authBot, (*Server).handleBulkCommands),
	mk("POST", "/applications/{app}/guilds/{guild}/commands", authBot, (*Server).handleCreateCommand),
	mk("GET", "/applications/{app}/guilds/{guild}/commands/{command}", authBot, (*Server).handleGetCommand),
	mk("DELETE", "/applications/{app}/guilds/{guild}/commands/{command}", authBot, (*Server).handleDeleteCommand),
	mk("POST", "/interactions/{interaction}/{token}/callback", authNone, (*Server).handleCallback),
	mk("POST", "/webhooks/{app}/{token}", authNone, (*Server).handleFollowup),
	mk("GET", "/webhooks/{app}/{token}/messages/{message}", authNone, (*Server).handleGetWebhookMessage),
	mk("PATCH", "/webhooks/{app}/{token}/messages/{message}", authNone, (*Server).handleEditWebhookMessage),
	mk("DELETE", "/webhooks/{app}/{token}/messages/{message}", authNone, (*Server).handleDeleteWebhookMessage),
	mk("GET", "/channels/{channel}", authBot, (*Server).handleGetChannel),
	mk("GET", "/channels/{channel}/messages", authBot, (*Server).handleListMessages),
	mk("POST", "/channels/{channel}/messages", authBot, (*Server).handleCreateMessage),
	mk("GET", "/channels/{channel}/messages/{message}", authBot, (*Server).handleGetMessage),
	mk("PATCH", "/channels/{channel}/messages/{message}", authBot, (*Server).handleEditMessage),
	mk("DELETE", "/channels/{channel}/messages/{message}", authBot, (*Server).handleDeleteMessage),
	mk("POST", "/channels/{channel}/messages/{message}/threads", authBot, (*Server).handleThreadFromMessage),
	mk("PUT", "/channels/{channel}/messages/{message}/reactions/{emoji}/@me", authBot, (*Server).handleAddReaction),
	mk("DELETE", "/channels/{channel}/messages/{message}/reactions/{emoji}/@me", authBot, (*Server).handleRemoveReaction),
	mk("POST", "/channels/{channel}/threads", authBot, (*Server).handleThreadWithoutMessage),
	mk("POST", "/channels/{channel}/typing", authBot, (*Server).handleTyping),
	mk("GET", "/guilds/{guild}", authBot, (*Server).handleGetGuild),
	mk("GET", "/guilds/{guild}/members/{user}", authBot, (*Server).handleGetMember),
}

// match finds the route for a path (segments after /api/vN). known reports
// whether some route has that path with another method.
func match(method string, segs []string) (rt *route, params map[string]string, known bool) {
	for i := range routes {
		cand := &routes[i]
		if len(cand.segs) != len(segs) {
			continue
		}
		p := map[string]string{}
		ok := true
		for j, seg := range cand.segs {
			if strings.HasPrefix(seg, "{") {
				p[strings.Trim(seg, "{}")] = segs[j]
			} else if seg != segs[j] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if cand.method == method {
			return cand, p, true
		}
		known = true
	}
	return nil, nil, known
}

// maxRequestBody is the upload limit of a guild without boosts (10 MiB).
const maxRequestBody = 10 << 20

func (s *Server) serveHTTP(w http.ResponseWriter, req *http.Request) {
	path := req.URL.Path
	switch {
	case path == "/gateway" || path == "/gateway/":
		s.serveGateway(w, req)
		return
	case strings.HasPrefix(path, "/attachments/") || strings.HasPrefix(path, "/ephemeral-attachments/"):
		s.serveAttachment(w, req)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxRequestBody+1))
	if err != nil {
		return
	}
	s.mu.Lock()
	rec := Request{
		Method: req.Method, Path: path, Query: req.URL.Query(), Header: req.Header.Clone(),
		Body: body, At: s.now(),
	}
	rep, bucket := s.routeLocked(req, body, &rec)
	rec.Status = rep.status
	s.requests = append(s.requests, rec)
	s.notifyLocked()
	limit := s.opts.RateLimitLimit
	now := s.now()
	s.mu.Unlock()

	h := w.Header()
	for k, v := range rep.header {
		h[k] = v
	}
	if bucket != "" {
		if h.Get("X-RateLimit-Remaining") == "" {
			h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
			h.Set("X-RateLimit-Remaining", strconv.Itoa(limit-1))
			h.Set("X-RateLimit-Reset", epochSeconds(now.Add(time.Second)))
			h.Set("X-RateLimit-Reset-After", "1.000")
		}
		h.Set("X-RateLimit-Bucket", bucket)
	}
	if rep.body != nil {
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(rep.body)))
	}
	w.WriteHeader(rep.status)
	if rep.body != nil {
		_, _ = w.Write(rep.body)
	}
}

func epochSeconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// routeLocked authenticates and runs the handler. bucket is the rate-limit
// bucket hash ("" for unknown routes).
func (s *Server) routeLocked(req *http.Request, body []byte, rec *Request) (reply, string) {
	segs, version, ok := apiSegments(req.URL.EscapedPath())
	if !ok {
		return errNotFound(), ""
	}
	rt, params, known := match(req.Method, segs)
	if rt == nil {
		if known {
			return apiError(http.StatusMethodNotAllowed, 0, "405: Method Not Allowed"), ""
		}
		return errNotFound(), ""
	}
	rec.Route = rt.String()
	bucket := bucketHash(rt, params)
	if rt.auth == authBot && req.Header.Get("Authorization") != "Bot "+s.opts.Token {
		return errUnauthorized(), bucket
	}
	if len(body) > maxRequestBody {
		return apiError(http.StatusRequestEntityTooLarge, codeRequestTooLarge, "Request entity too large"), bucket
	}
	rest := "/" + strings.Join(segs, "/")
	if f := s.faults.match(req.Method, rest); f != nil {
		return f.reply(), bucket
	}
	return rt.h(s, &call{r: req, body: body, p: params, version: version, now: s.now()}), bucket
}

// apiSegments splits /api/v9/a/b into ["a","b"], unescaping each segment.
func apiSegments(escaped string) (segs []string, version string, ok bool) {
	parts := strings.Split(strings.Trim(escaped, "/"), "/")
	if len(parts) < 3 || parts[0] != "api" || (parts[1] != "v9" && parts[1] != "v10") {
		return nil, "", false
	}
	for _, p := range parts[2:] {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, "", false
		}
		segs = append(segs, u)
	}
	return segs, parts[1], true
}

// bucketHash imitates Discord's opaque bucket ids: one per route and major
// parameter (channel, guild, webhook).
func bucketHash(rt *route, p map[string]string) string {
	h := fnv.New64a()
	_, _ = io.WriteString(h, rt.String())
	for _, k := range []string{"channel", "guild", "app", "token", "interaction"} {
		_, _ = io.WriteString(h, "|"+p[k])
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

// Requests returns every REST request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// WaitRequest blocks until a recorded request satisfies pred, and returns
// the first one that does.
func (s *Server) WaitRequest(ctx context.Context, pred func(Request) bool) (Request, error) {
	var out Request
	err := waitSnap(ctx, s, func() []Request { return append([]Request(nil), s.requests...) },
		func(all []Request) bool {
			for _, rq := range all {
				if pred(rq) {
					out = rq
					return true
				}
			}
			return false
		})
	return out, err
}

// Fault is an injected REST failure. The default is a per-route 429 that
// discordgo retries after RetryAfter.
type Fault struct {
	// Method matches one method; "" matches all.
	Method string
	// Path is a prefix of the path after /api/vN, like "/channels/123/messages";
	// "" matches all REST paths.
	Path string
	// Count is how many requests it hits: 0 means 1, negative means until
	// Clear.
	Count int
	// Status is the HTTP status; 0 means 429.
	Status int
	// RetryAfter is the 429's retry_after; 0 means 500 ms. discordgo sleeps
	// exactly this long (real time) before retrying.
	RetryAfter time.Duration
	// Global makes the 429 global (X-RateLimit-Global, "global": true).
	Global bool
	// Body replaces the JSON body. For other statuses the default is
	// {"message": "<status text>", "code": 0}.
	Body string
}

// FaultHandle controls one injected fault.
type FaultHandle struct {
	f   Fault
	set *faultSet

	mu     sync.Mutex
	hits   int
	left   int
	notify chan struct{}
}

type faultSet struct {
	mu     sync.Mutex
	faults []*FaultHandle
}

// Inject adds a REST fault; faults are tried in the order they were added.
func (s *Server) Inject(f Fault) *FaultHandle {
	if f.Count == 0 {
		f.Count = 1
	}
	if f.Status == 0 {
		f.Status = http.StatusTooManyRequests
	}
	if f.RetryAfter == 0 {
		f.RetryAfter = 500 * time.Millisecond
	}
	h := &FaultHandle{f: f, set: &s.faults, left: f.Count, notify: make(chan struct{})}
	s.faults.mu.Lock()
	s.faults.faults = append(s.faults.faults, h)
	s.faults.mu.Unlock()
	return h
}

func (fs *faultSet) match(method, path string) *FaultHandle {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, h := range fs.faults {
		if (h.f.Method != "" && h.f.Method != method) || !strings.HasPrefix(path, h.f.Path) {
			continue
		}
		h.mu.Lock()
		h.hits++
		if h.left > 0 {
			h.left--
			if h.left == 0 {
				fs.faults = append(fs.faults[:i:i], fs.faults[i+1:]...)
			}
		}
		close(h.notify)
		h.notify = make(chan struct{})
		h.mu.Unlock()
		return h
	}
	return nil
}

func (h *FaultHandle) reply() reply {
	f := h.f
	hdr := http.Header{}
	if f.Status != http.StatusTooManyRequests {
		if f.Body != "" {
			return reply{status: f.Status, body: []byte(f.Body)}
		}
		return apiError(f.Status, 0, fmt.Sprintf("%d: %s", f.Status, http.StatusText(f.Status)))
	}
	secs := f.RetryAfter.Seconds()
	after := strconv.FormatFloat(secs, 'f', 3, 64)
	hdr.Set("Retry-After", strconv.Itoa(int(math.Ceil(secs))))
	hdr.Set("X-RateLimit-Limit", "5")
	hdr.Set("X-RateLimit-Remaining", "0")
	hdr.Set("X-RateLimit-Reset-After", after)
	if f.Global {
		hdr.Set("X-RateLimit-Global", "true")
		hdr.Set("X-RateLimit-Scope", "global")
	} else {
		hdr.Set("X-RateLimit-Scope", "user")
	}
	var rep reply
	if f.Body != "" {
		rep = reply{status: f.Status, body: []byte(f.Body)}
	} else {
		rep = jsonReply(f.Status, map[string]any{
			"message": "You are being rate limited.", "retry_after": secs, "global": f.Global,
		})
	}
	rep.header = hdr
	return rep
}

// Hits is how many requests the fault has hit so far.
func (h *FaultHandle) Hits() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits
}

// WaitHits blocks until the fault has hit at least n requests or ctx ends.
func (h *FaultHandle) WaitHits(ctx context.Context, n int) error {
	for {
		h.mu.Lock()
		if h.hits >= n {
			h.mu.Unlock()
			return nil
		}
		ch := h.notify
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Clear removes the fault.
func (h *FaultHandle) Clear() {
	h.set.mu.Lock()
	defer h.set.mu.Unlock()
	for i, f := range h.set.faults {
		if f == h {
			h.set.faults = append(h.set.faults[:i:i], h.set.faults[i+1:]...)
			return
		}
	}
}
