package bridge

import (
	"net/http"
	"time"

	"github.com/hordechat/hordechat/bridge/prompt"
)

// DefaultModel in Request.Models asks for the configured or best model.
const DefaultModel = "default"

// Request is one OpenAI-style generation request.
type Request struct {
	Principal Principal
	// Models are candidate model names (exact, case-insensitive or short);
	// any one of them may serve the request. Empty or "default" picks one.
	Models []string
	// Messages is the chat; when empty, Prompt is sent raw (completions).
	Messages []prompt.Message
	// Prompt is a raw completion prompt, sent without a template.
	Prompt string
	Params Params
	// Target is an opaque delivery target ("discord:...", "matrix:...")
	// for Submit; the job's answer goes to the Deliverer registered for its
	// platform, also after a restart.
	Target string
	// JobID, when set, is the job's id instead of a random one, so that a
	// caller can record it before the job exists (the chat engine keeps it
	// with the message the job answers). 16 to 64 letters, digits, '-' or
	// '_' (it goes into webhook URLs), and not in the journal yet.
	JobID string
}

// jobID returns the caller's job id once checked, or a new random one.
func (r Request) jobID() (string, error) {
	if r.JobID == "" {
		return newJobID(), nil
	}
	ok := len(r.JobID) >= 16 && len(r.JobID) <= 64
	for _, c := range r.JobID {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	}
	if !ok {
		return "", newError(CodeInvalidRequest, http.StatusBadRequest, nil, "The job id %q is not valid: use 16 to 64 letters, digits, '-' or '_', or leave it empty for a random one.", r.JobID)
	}
	return r.JobID, nil
}

// Params are sampling parameters. Nil fields are unset: the Horde's or the
// worker's default applies.
type Params struct {
	MaxTokens        *int
	Temperature      *float64
	TopP             *float64
	TopK             *int
	MinP             *float64
	TopA             *float64
	Typical          *float64
	TFS              *float64
	Stop             []string
	N                int // generations; 0 means 1
	Seed             *int64
	FrequencyPenalty *float64 // OpenAI -2..2, mapped to rep_pen
	PresencePenalty  *float64 // OpenAI -2..2, mapped to rep_pen
	RepPen           *float64 // Horde repetition penalty 1..3; wins over the OpenAI penalties
	RepPenRange      *int
	RepPenSlope      *float64
	SmoothingFactor  *float64
	DynatempRange    *float64
	DynatempExponent *float64
	// TrustedWorkers sends the request only to trusted owners' workers.
	TrustedWorkers bool
	// Workers limits the request to these worker ids (or excludes them
	// with WorkerBlacklist). The Horde keeps the first 5.
	Workers         []string
	WorkerBlacklist bool
}

// FinishReason says why a generation ended, in OpenAI's words.
type FinishReason string

// The finish reasons.
const (
	FinishStop   FinishReason = "stop"
	FinishLength FinishReason = "length"
	// FinishFiltered marks a generation the worker or Horde censored.
	FinishFiltered FinishReason = "content_filter"
)

// Choice is one generation.
type Choice struct {
	Index        int
	Text         string
	FinishReason FinishReason
	Model        string
	WorkerID     string
	WorkerName   string
}

// Result is a finished generation request.
type Result struct {
	JobID            string // hordechat's job id
	HordeID          string // the Horde's request id
	Model            string // the model that served the first choice
	Choices          []Choice
	Kudos            float64
	PromptTokens     int // estimated the way the Horde does (chars/4)
	CompletionTokens int // estimated
	// Dropped counts history messages left out to fit the context.
	Dropped int
	// Truncated says the newest message itself was cut to fit.
	Truncated bool
	// MaxTokens is the answer length asked of the Horde after fitting.
	MaxTokens int
	// Limited says MaxTokens was lowered below what was asked (worker
	// capacity, operator cap, or the Horde's upfront-kudos rule).
	Limited bool
	// KudosLimited says the upfront-kudos rule did the lowering: linking a
	// key with kudos would allow longer answers.
	KudosLimited bool
	Template     string
	Created      time.Time
}

// Stage is where a job is.
type Stage string

// The stages a job reports through a ProgressFunc.
const (
	StageQueued     Stage = "queued"
	StageProcessing Stage = "processing"
	StageRetrying   Stage = "retrying"
	StageDone       Stage = "done"
	StageFailed     Stage = "failed"
)

// Progress is one update on a job.
type Progress struct {
	JobID         string
	Stage         Stage
	QueuePosition int           // while queued
	ETA           time.Duration // the Horde's estimate, while queued or processing
	Restarted     int           // jobs the Horde had to restart
	Err           *Error        // with StageRetrying (transient) and StageFailed
}

// ProgressFunc receives progress; it must not block.
type ProgressFunc func(Progress)
