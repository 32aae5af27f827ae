package hordetest

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
)

const (
	msgNoWorkers = "Warning: No available workers can fulfill this request. It will expire in 20 minutes. " +
		"Consider reducing the amount of tokens to generate."
	msgInvalidKey = "No user matching sent API Key. Have you remembered to register at https://stablehorde.net/register ?"
	hordeTitle    = "AI Horde"
)

// handleSubmit is POST /v2/generate/text/async: the limiter decorators, then
// Flask-RESTX payload validation, then reqparse, then the Horde's checks in
// the order GenerateTemplate.validate and the text endpoint run them.
func (s *Server) handleSubmit(r *http.Request, body []byte, id identity) reply {
	keys, hasKey := r.Header[http.CanonicalHeaderKey("apikey")]
	apikey := ""
	if hasKey && len(keys) > 0 {
		apikey = keys[0]
	}
	lim, ok := s.checkLimits(func() []limitCheck { return s.submitLimits(id, r.URL.Path, apikey, hasKey) })
	if !ok {
		return lim
	}
	return withHeaders(s.submit(r, body, id, apikey, hasKey), lim.header)
}

func (s *Server) submit(r *http.Request, body []byte, id identity, apikey string, hasKey bool) reply {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return plainError(http.StatusUnsupportedMediaType,
			"Did not attempt to load JSON data because the request Content-Type was not 'application/json'.")
	}
	doc, err := decodeJSON(body)
	if err != nil {
		return plainError(http.StatusBadRequest, "Failed to decode JSON object: "+err.Error())
	}
	if errs := validateSubmit(doc); len(errs) > 0 {
		return validationError(errs)
	}
	if !hasKey {
		return validationError(map[string]string{
			"apikey": "The API Key corresponding to a registered user. Missing required parameter in the HTTP headers",
		})
	}
	in := parseSubmit(doc.(map[string]any))

	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())

	if s.maintenance {
		return rcError(http.StatusBadRequest, "MaintenanceMode", hordeTitle+" has entered maintenance mode. Please try again later.")
	}
	if in.webhook != "" && !strings.HasPrefix(in.webhook, "https://") {
		return rcError(http.StatusBadRequest, "BadRequest", "webhooks need to point to an https endpoint.")
	}
	u := s.users[apikey]
	if apikey == "" || u == nil {
		return rcError(http.StatusUnauthorized, "InvalidAPIKey", msgInvalidKey)
	}
	if u.Deleted {
		return rcError(http.StatusForbidden, "DeletedUser", "This account has been scheduled for deletion and is disabled.")
	}
	if !u.Service && in.proxiedAccount != "" {
		return rcError(http.StatusBadRequest, "OnlyServiceAccountProxy", "Only service accounts can provide a proxied_account value.")
	}
	if in.extraSourceImages > 5 {
		return rcError(http.StatusBadRequest, "TooManyExtraSourceImages.", "You can send a maximum of 5 extra source images.")
	}
	if (u.Education || u.Trusted || u.Service) && !id.proxied {
		s.whitelist[id.addr] = s.now.Add(dynamicWhitelist)
	}
	if in.prompt == "" {
		return rcError(http.StatusBadRequest, "MissingPrompt", "You cannot specify an empty prompt.")
	}
	for _, wid := range in.workers {
		if !slices.ContainsFunc(s.workers, func(w *worker) bool { return w.ID == wid }) {
			return rcError(http.StatusNotFound, "WorkerNotFound", fmt.Sprintf("Worker with ID '%s' not found.", wid))
		}
	}
	if in.n > 1 && in.disableBatching && !u.Trusted && !u.Patron {
		return rcError(http.StatusBadRequest, "RequiresTrust", "Only trusted users and patreon supporters can disable batching.")
	}
	if count, limit := s.waitingJobsLocked(u, in.models)+in.n, u.concurrency(); count > limit {
		msg := fmt.Sprintf("Parallel requests (%d) exceeded user limit (%d). "+
			"Please try again later or request to increase your concurrency.", count, limit)
		if u.anonymous() {
			msg = fmt.Sprintf("Too many anonymous requests on using the %s currently (%d/%d). "+
				"Please consider getting a personal API key at https://aihorde.net/register "+
				"which will also provide higher priority.", hordeTitle, count, limit)
		}
		return rcError(http.StatusTooManyRequests, "TooManyPrompts", msg)
	}
	if id.proxied && !s.opts.LenientProxiedFor && !validProxiedFor(id.addr) {
		return plainError(http.StatusInternalServerError, msgInternal)
	}
	if secs := s.timeoutLocked(id.addr); secs > 0 {
		msg := fmt.Sprintf("Due to abuse prevention, your IP address has been put into timeout for %d more seconds. "+
			"Please try again later, or contact us on discord if you think this was an error.", secs)
		if secs > 4*24*3600 {
			msg = "Due to abuse prevention, your IP address has been put into timeout. " +
				"Please try again later, or contact us on discord if you think this was an error."
		}
		return rcError(http.StatusForbidden, "TimeoutIP", msg)
	}
	if rp, bad := textChecks(in); bad {
		return rp
	}
	if in.style != "" {
		return rcError(http.StatusNotFound, "StyleNotFound", fmt.Sprintf("Style with ID '%s' not found.", in.style))
	}
	if containsNul(doc) {
		return rcError(http.StatusBadRequest, "NulByteInPayload", "The request payload contains a NUL (\\u0000) character, which is not allowed.")
	}
	req := s.newRequestLocked(in, u, id, r.Header.Get("Client-Agent"))
	if rp, bad := s.upfrontKudosLocked(req, in.allowDowngrade); bad {
		return rp
	}
	if in.dryRun {
		return jsonReply(http.StatusOK, dryRunBody{Kudos: pyRound(dryRunKudos(req))})
	}
	return s.activateLocked(req)
}

// submitInput is the decoded submit body after schema validation.
type submitInput struct {
	prompt            string
	params            map[string]any
	models            []string
	workers           []string
	blacklist         bool
	trustedOnly       bool
	validatedOnly     bool
	slowOK            bool
	softprompt        string
	dryRun            bool
	proxiedAccount    string
	disableBatching   bool
	allowDowngrade    bool
	webhook           string
	style             string
	extraSourceImages int
	n                 int
	maxLength         int
	maxCtx            int
	stops             []string
	samplerOrder      []any
	hasSamplerOrder   bool
	singleline        bool
}

func parseSubmit(obj map[string]any) submitInput {
	in := submitInput{
		prompt:          str(obj["prompt"]),
		params:          map[string]any{},
		models:          strList(obj["models"]),
		workers:         strList(obj["workers"]),
		blacklist:       boolOr(obj["worker_blacklist"], false),
		trustedOnly:     boolOr(obj["trusted_workers"], false),
		validatedOnly:   boolOr(obj["validated_backends"], false), // the reqparse default wins
		slowOK:          boolOr(obj["slow_workers"], true),
		softprompt:      str(obj["softprompt"]),
		dryRun:          boolOr(obj["dry_run"], false),
		proxiedAccount:  str(obj["proxied_account"]),
		disableBatching: boolOr(obj["disable_batching"], false),
		allowDowngrade:  boolOr(obj["allow_downgrade"], false),
		webhook:         str(obj["webhook"]),
		style:           str(obj["style"]),
	}
	if list, ok := obj["extra_source_images"].([]any); ok {
		in.extraSourceImages = len(list)
	}
	if len(in.workers) > 5 {
		in.workers = in.workers[:5] // the Horde keeps only the first 5
	}
	if len(in.proxiedAccount) > 255 {
		in.proxiedAccount = in.proxiedAccount[:255]
	}
	if p, ok := obj["params"].(map[string]any); ok {
		in.params = p
	}
	in.n = intOr(in.params["n"], 1)
	in.maxLength = intOr(in.params["max_length"], 80)
	in.maxCtx = intOr(in.params["max_context_length"], 2048)
	in.stops = strList(in.params["stop_sequence"])
	in.samplerOrder, in.hasSamplerOrder = in.params["sampler_order"].([]any)
	in.singleline = boolOr(in.params["singleline"], false)
	return in
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func boolOr(v any, def bool) bool {
	if b, ok := v.(bool); ok {
		return b
	}
	return def
}

func intOr(v any, def int) int {
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return int(i)
		}
	}
	return def
}

func strList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// textChecks are the text endpoint's own checks after the generic ones.
func textChecks(in submitInput) (reply, bool) {
	if in.maxCtx < in.maxLength {
		return rcError(http.StatusBadRequest, "TokenOverflow", "You cannot request more tokens than your context length."), true
	}
	if in.hasSamplerOrder {
		distinct := map[string]bool{}
		for _, v := range in.samplerOrder {
			distinct[fmt.Sprint(v)] = true
		}
		if len(distinct) < 7 {
			return rcError(http.StatusBadRequest, "MissingFullSamplerOrder",
				"When sending a custom sampler order, you need to specify all possible samplers in the order"), true
		}
	}
	unique := map[string]bool{}
	total := 0
	for _, seq := range in.stops {
		if !unique[seq] {
			unique[seq] = true
			total += len([]rune(seq))
		}
	}
	if len(unique) > 128 {
		return rcError(http.StatusBadRequest, "TooManyStopSequences", "Too many stop sequences specified (max allowed is 128)."), true
	}
	if total > 2000 {
		return rcError(http.StatusBadRequest, "ExcessiveStopSequence",
			"Your total stop sequence length exceeds the allowed limit (2000 chars)."), true
	}
	if in.extraSourceImages > 0 {
		return rcError(http.StatusBadRequest, "InvalidExtraSourceImages.", "This request type does not accept extra source images."), true
	}
	return reply{}, false
}

// waitingJobsLocked counts the account's jobs not yet picked up; for the
// anonymous account only requests sharing one of the requested models count.
func (s *Server) waitingJobsLocked(u *user, models []string) int {
	n := 0
	for _, r := range s.order {
		if r.user != u || r.faulted || r.waiting <= 0 {
			continue
		}
		if u.anonymous() && len(models) > 0 && !slices.ContainsFunc(r.models, func(m string) bool { return slices.Contains(models, m) }) {
			continue
		}
		n += r.waiting
	}
	return n
}

func (s *Server) newRequestLocked(in submitInput, u *user, id identity, clientAgent string) *request {
	if clientAgent == "" {
		clientAgent = "unknown:0:unknown"
	}
	return &request{
		user: u, identity: id.addr, remote: id.remote, clientAgent: clientAgent,
		prompt: in.prompt, params: in.params, models: in.models, workerIDs: in.workers,
		blacklist: in.blacklist, trustedOnly: in.trustedOnly, validatedOnly: in.validatedOnly,
		slowOK: in.slowOK, softprompt: in.softprompt, webhook: in.webhook,
		proxiedAccount: in.proxiedAccount, n: in.n, maxLength: in.maxLength, maxCtx: in.maxCtx,
		stops: in.stops, singleline: in.singleline,
	}
}

// upfrontKudosLocked applies §3.3: above T tokens (or always with
// slow_workers=false) the account must already hold the required kudos,
// unless allow_downgrade lowers max_length to T.
func (s *Server) upfrontKudosLocked(r *request, allowDowngrade bool) (reply, bool) {
	threads, _ := s.activeThreadsLocked()
	queued, _ := s.queuedTotalsLocked()
	t := upfrontThreshold(threads, queued)
	if r.maxLength <= t && r.slowOK {
		return reply{}, false
	}
	required, shown := upfrontRequired(r.maxLength, r.n, r.models)
	kudos := r.user.Kudos
	if r.user.anonymous() {
		kudos = 0
	}
	if required <= kudos {
		return reply{}, false
	}
	if allowDowngrade {
		r.maxLength = min(r.maxLength, t)
		return reply{}, false
	}
	return rcError(http.StatusForbidden, "KudosUpfront", fmt.Sprintf(
		"Due to heavy demand, for requests over %d tokens, the client needs to already have the required kudos. "+
			"This request requires %s kudos to fulfil.", t, shown)), true
}

// activateLocked queues a request and answers 202.
func (s *Server) activateLocked(r *request) reply {
	s.seq++
	r.id, r.seq = s.newUUIDLocked(), s.seq
	r.created = s.now
	r.expiry = s.now.Add(requestLifetime)
	r.waiting = r.n
	if !r.user.anonymous() {
		r.priority = int(pyRound(r.user.Kudos))
	}
	r.user.requests++
	s.requests[r.id] = r
	s.order = append(s.order, r)
	out := asyncBody{ID: r.id, Kudos: 0}
	if !s.isPossibleLocked(r, false) {
		out.Message = msgNoWorkers
	}
	s.log.Debug("request queued", "id", r.id, "user", r.user.Alias(), "identity", r.identity, "n", r.n, "max_length", r.maxLength)
	s.dispatchLocked()
	return jsonReply(http.StatusAccepted, out)
}
