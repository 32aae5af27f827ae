package hordeapi

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// AnonymousKey is the API key of the Horde's shared anonymous account.
const AnonymousKey = "0000000000"

// Limits of the text generation schema (horde-api.md §1.1).
const (
	MinMaxLength        = 16
	MaxMaxLength        = 4096
	MinMaxContextLength = 80
	MaxMaxContextLength = 1048576
	MinN                = 1
	MaxN                = 20
	MaxStopSequences    = 128
	MaxStopSequenceLen  = 2000 // total characters over all stop sequences
	MaxProxiedForLen    = 39   // waiting_prompts.ipaddr is VARCHAR(39)
)

// TextRequest is the body of POST /v2/generate/text/async. Optional fields
// are omitted when unset so the Horde's (or the worker's) default applies.
type TextRequest struct {
	Prompt            string            `json:"prompt"`
	Params            *TextParams       `json:"params,omitempty"`
	Models            []string          `json:"models,omitempty"`
	Workers           []string          `json:"workers,omitempty"`
	WorkerBlacklist   bool              `json:"worker_blacklist,omitempty"`
	TrustedWorkers    bool              `json:"trusted_workers,omitempty"`
	ValidatedBackends *bool             `json:"validated_backends,omitempty"` // send explicitly: the effective default is false
	SlowWorkers       *bool             `json:"slow_workers,omitempty"`       // default true; false always needs upfront kudos
	ExtraSlowWorkers  bool              `json:"extra_slow_workers,omitempty"`
	Softprompt        string            `json:"softprompt,omitempty"`
	DryRun            bool              `json:"dry_run,omitempty"`
	ProxiedAccount    string            `json:"proxied_account,omitempty"` // service accounts only
	DisableBatching   bool              `json:"disable_batching,omitempty"`
	AllowDowngrade    bool              `json:"allow_downgrade,omitempty"`
	Webhook           string            `json:"webhook,omitempty"` // must be https://
	Style             string            `json:"style,omitempty"`
	NSFW              *bool             `json:"nsfw,omitempty"`
	ExtraSourceImages []json.RawMessage `json:"extra_source_images,omitempty"` // rejected by the Horde for text
}

// TextParams are the sampler and length settings of a text request
// (ModelGenerationInputKobold). Every member is optional.
type TextParams struct {
	N                    *int     `json:"n,omitempty"`
	MaxContextLength     *int     `json:"max_context_length,omitempty"`
	MaxLength            *int     `json:"max_length,omitempty"`
	Temperature          *float64 `json:"temperature,omitempty"`
	TopP                 *float64 `json:"top_p,omitempty"`
	TopK                 *int     `json:"top_k,omitempty"`
	TopA                 *float64 `json:"top_a,omitempty"`
	Typical              *float64 `json:"typical,omitempty"`
	TFS                  *float64 `json:"tfs,omitempty"`
	MinP                 *float64 `json:"min_p,omitempty"`
	RepPen               *float64 `json:"rep_pen,omitempty"`
	RepPenRange          *int     `json:"rep_pen_range,omitempty"`
	RepPenSlope          *float64 `json:"rep_pen_slope,omitempty"`
	SamplerOrder         []int    `json:"sampler_order,omitempty"`
	StopSequence         []string `json:"stop_sequence,omitempty"`
	UseDefaultBadwordIDs *bool    `json:"use_default_badwordsids,omitempty"`
	SingleLine           *bool    `json:"singleline,omitempty"`
	FrmtAdsnsp           *bool    `json:"frmtadsnsp,omitempty"`
	FrmtRmblln           *bool    `json:"frmtrmblln,omitempty"`
	FrmtRmspch           *bool    `json:"frmtrmspch,omitempty"`
	FrmtTriminc          *bool    `json:"frmttriminc,omitempty"`
	SmoothingFactor      *float64 `json:"smoothing_factor,omitempty"`
	DynatempRange        *float64 `json:"dynatemp_range,omitempty"`
	DynatempExponent     *float64 `json:"dynatemp_exponent,omitempty"`
	// SamplerSeed is not in the Horde's schema; unknown params pass through
	// to the worker, and KoboldCpp reads this one.
	SamplerSeed *int64 `json:"sampler_seed,omitempty"`
}

// Ptr returns a pointer to v, for filling optional fields.
func Ptr[T any](v T) *T { return &v }

// Warning is one entry of the submit response's warnings list.
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// AsyncResponse is the answer to a text submit: 202 with an id, or 200 with
// only a kudos quote for a dry run.
type AsyncResponse struct {
	ID       string    `json:"id,omitempty"`
	Kudos    float64   `json:"kudos"`
	Message  string    `json:"message,omitempty"`
	Warnings []Warning `json:"warnings,omitempty"`
}

// NoWorkersWarning reports whether the submit answer carries the Horde's
// "No available workers can fulfill this request" warning.
func (r *AsyncResponse) NoWorkersWarning() bool {
	return strings.Contains(r.Message, "No available workers")
}

// TextStatus is the answer of GET or DELETE /v2/generate/text/status/{id}.
type TextStatus struct {
	Finished      int          `json:"finished"`
	Processing    int          `json:"processing"`
	Restarted     int          `json:"restarted"`
	Waiting       int          `json:"waiting"`
	Done          bool         `json:"done"`
	Faulted       bool         `json:"faulted"`
	WaitTime      int          `json:"wait_time"`
	QueuePosition int          `json:"queue_position"`
	Kudos         float64      `json:"kudos"`
	IsPossible    bool         `json:"is_possible"`
	Generations   []Generation `json:"generations"`
}

// Generation is one finished job of a text request.
type Generation struct {
	Text        string        `json:"text"`
	Seed        FlexString    `json:"seed"`
	WorkerID    string        `json:"worker_id"`
	WorkerName  string        `json:"worker_name"`
	Model       string        `json:"model"`
	State       string        `json:"state"` // ok, censored, csam (obsolete: prefer GenMetadata)
	GenMetadata []GenMetadata `json:"gen_metadata,omitempty"`
}

// Censored reports whether the worker or the Horde censored this generation.
func (g *Generation) Censored() bool {
	if g.State == "censored" || g.State == "csam" {
		return true
	}
	for _, m := range g.GenMetadata {
		if m.Type == "censorship" {
			return true
		}
	}
	return false
}

// GenMetadata is one metadata entry of a generation.
type GenMetadata struct {
	Type  string `json:"type"`
	Value string `json:"value"`
	Ref   string `json:"ref,omitempty"`
}

// WebhookPayload is what the Horde POSTs to a request's webhook for each
// finished job (horde-api.md §1.5).
type WebhookPayload struct {
	Text        string        `json:"text"`
	Seed        FlexString    `json:"seed"`
	WorkerID    string        `json:"worker_id"`
	WorkerName  string        `json:"worker_name"`
	Model       string        `json:"model"`
	ID          string        `json:"id"`      // job id
	Request     string        `json:"request"` // request id
	Kudos       float64       `json:"kudos"`
	GenMetadata []GenMetadata `json:"gen_metadata,omitempty"`
}

// Worker is one entry of GET /v2/workers?type=text.
type Worker struct {
	Name              string       `json:"name"`
	ID                string       `json:"id"`
	Type              string       `json:"type"`
	Online            bool         `json:"online"`
	Trusted           bool         `json:"trusted"`
	Flagged           bool         `json:"flagged"`
	MaintenanceMode   bool         `json:"maintenance_mode"`
	NSFW              bool         `json:"nsfw"`
	BridgeAgent       string       `json:"bridge_agent"`
	Models            []string     `json:"models"`
	MaxLength         int          `json:"max_length"`
	MaxContextLength  int          `json:"max_context_length"`
	Threads           int          `json:"threads"`
	Performance       string       `json:"performance"` // e.g. "12.3 tokens per second"
	Uptime            int64        `json:"uptime"`
	RequestsFulfilled int64        `json:"requests_fulfilled"`
	UncompletedJobs   int64        `json:"uncompleted_jobs"`
	KudosRewards      float64      `json:"kudos_rewards"`
	Info              string       `json:"info,omitempty"`
	Team              WorkerTeam   `json:"team"`
	Owner             string       `json:"owner,omitempty"`
	Messages          []FlexObject `json:"messages,omitempty"`
}

// TokensPerSecond parses the worker's performance string ("12.3 tokens per
// second"); it returns 0 when the string holds no number.
func (w *Worker) TokensPerSecond() float64 {
	f := strings.Fields(w.Performance)
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || !(v >= 0) || math.IsInf(v, 1) { // also NaN and Inf
		return 0
	}
	return v
}

// Serves reports whether the worker serves the model (exact, case-sensitive).
func (w *Worker) Serves(model string) bool {
	for _, m := range w.Models {
		if m == model {
			return true
		}
	}
	return false
}

// WorkerTeam is a worker's team. The Horde sends {}, null or a partial
// object when there is no team, so it decodes leniently.
type WorkerTeam struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// UnmarshalJSON accepts an object, null, or anything else as "no team".
func (t *WorkerTeam) UnmarshalJSON(b []byte) error {
	*t = WorkerTeam{}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil
	}
	t.ID = anyString(raw["id"])
	t.Name = anyString(raw["name"])
	return nil
}

// ActiveModel is one entry of GET /v2/status/models?type=text.
type ActiveModel struct {
	Name        string  `json:"name"`
	Count       int     `json:"count"`       // threads serving it
	Performance float64 `json:"performance"` // average tokens/s
	Queued      float64 `json:"queued"`      // tokens waiting
	Jobs        float64 `json:"jobs"`        // jobs waiting
	ETA         int     `json:"eta"`         // seconds; 10000 when there is no capacity
	Type        string  `json:"type"`
}

// UserDetails is the answer of GET /v2/find_user at "self" privilege.
type UserDetails struct {
	Username     string         `json:"username"`
	ID           int64          `json:"id"`
	Kudos        float64        `json:"kudos"`
	Concurrency  int            `json:"concurrency"`
	AccountAge   int64          `json:"account_age"`
	Pseudonymous bool           `json:"pseudonymous"`
	Trusted      bool           `json:"trusted"`
	Flagged      bool           `json:"flagged"`
	Service      bool           `json:"service"`
	Education    bool           `json:"education"`
	Moderator    bool           `json:"moderator"`
	Customizer   bool           `json:"customizer"`
	Deleted      bool           `json:"deleted"`
	VPN          bool           `json:"vpn"`
	Special      bool           `json:"special"`
	WorkerCount  int            `json:"worker_count"`
	KudosDetails map[string]any `json:"kudos_details,omitempty"`
	Records      *UserRecords   `json:"records,omitempty"`
	// ActiveGenerations lists the ids of the account's requests still in
	// flight, per kind ("text", "image", ...); empty for the anonymous user.
	ActiveGenerations map[string][]string `json:"active_generations,omitempty"`
}

// UserRecords are the usage and contribution records of a user.
type UserRecords struct {
	Usage struct {
		Tokens         int64   `json:"tokens"`
		Megapixelsteps float64 `json:"megapixelsteps"`
	} `json:"usage"`
	Fulfillment struct {
		Text  int64 `json:"text"`
		Image int64 `json:"image"`
	} `json:"fulfillment"`
}

// Heartbeat is the answer of GET /v2/status/heartbeat.
type Heartbeat struct {
	Message      string `json:"message"` // OK, DOWN, OVERLOADED
	Version      string `json:"version"`
	Queue        int    `json:"queue"`
	Threads      int    `json:"threads"`
	ActiveCount  int    `json:"active_count"`
	DBConnection bool   `json:"db_connection"`
}

// Performance is the answer of GET /v2/status/performance.
type Performance struct {
	QueuedRequests          int     `json:"queued_requests"`
	QueuedTextRequests      int     `json:"queued_text_requests"`
	WorkerCount             int     `json:"worker_count"`
	TextWorkerCount         int     `json:"text_worker_count"`
	ThreadCount             int     `json:"thread_count"`
	TextThreadCount         int     `json:"text_thread_count"`
	QueuedMegapixelsteps    float64 `json:"queued_megapixelsteps"`
	PastMinuteMegapixelstep float64 `json:"past_minute_megapixelsteps"`
	QueuedForms             float64 `json:"queued_forms"`
	InterrogatorCount       int     `json:"interrogator_count"`
	InterrogatorThreadCount int     `json:"interrogator_thread_count"`
	QueuedTokens            float64 `json:"queued_tokens"`
	PastMinuteTokens        float64 `json:"past_minute_tokens"`
}

// Modes is the answer of GET /v2/status/modes.
type Modes struct {
	MaintenanceMode bool `json:"maintenance_mode"`
	InviteOnlyMode  bool `json:"invite_only_mode"`
	RaidMode        bool `json:"raid_mode,omitempty"`
}

// FlexString decodes a JSON string or number (the Horde sends seeds as either).
type FlexString string

// UnmarshalJSON accepts a string, a number, or null.
func (s *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*s = ""
	case b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = FlexString(v)
	default:
		*s = FlexString(b)
	}
	return nil
}

// FlexObject keeps any JSON value verbatim.
type FlexObject = json.RawMessage

func anyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return ""
	}
}
