package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/prompt"
)

// This file holds the OpenAI wire format: what callers send and what they
// get back. Unknown request fields are ignored, as OpenAI does; fields that
// ask for something the Horde cannot do are refused by name.

// stopList is OpenAI's stop: a string, a list of strings, or null.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop must be a string or a list of strings")
	}
	*s = many
	return nil
}

// streamOptions is stream_options.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// hordeExtras are the Horde sampler fields a caller may add to the body.
type hordeExtras struct {
	TopK             *int     `json:"top_k"`
	MinP             *float64 `json:"min_p"`
	TopA             *float64 `json:"top_a"`
	Typical          *float64 `json:"typical"`
	TFS              *float64 `json:"tfs"`
	RepPen           *float64 `json:"rep_pen"`
	RepPenRange      *int     `json:"rep_pen_range"`
	RepPenSlope      *float64 `json:"rep_pen_slope"`
	SmoothingFactor  *float64 `json:"smoothing_factor"`
	DynatempRange    *float64 `json:"dynatemp_range"`
	DynatempExponent *float64 `json:"dynatemp_exponent"`
	TrustedWorkers   bool     `json:"trusted_workers"`
	Workers          []string `json:"workers"`
	WorkerBlacklist  bool     `json:"worker_blacklist"`
}

// commonRequest holds what chat and legacy completions share.
type commonRequest struct {
	Model               string         `json:"model"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	Temperature         *float64       `json:"temperature"`
	TopP                *float64       `json:"top_p"`
	N                   *int           `json:"n"`
	Stop                stopList       `json:"stop"`
	Seed                *int64         `json:"seed"`
	FrequencyPenalty    *float64       `json:"frequency_penalty"`
	PresencePenalty     *float64       `json:"presence_penalty"`
	Stream              bool           `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
	hordeExtras
}

// chatRequest is the body of POST /v1/chat/completions.
type chatRequest struct {
	commonRequest
	Messages []chatMessage `json:"messages"`

	// Asked for, but impossible on the Horde: refused when set.
	Tools          json.RawMessage `json:"tools"`
	Functions      json.RawMessage `json:"functions"`
	ToolChoice     json.RawMessage `json:"tool_choice"`
	FunctionCall   json.RawMessage `json:"function_call"`
	Logprobs       *bool           `json:"logprobs"`
	TopLogprobs    *int            `json:"top_logprobs"`
	ResponseFormat json.RawMessage `json:"response_format"`
	Audio          json.RawMessage `json:"audio"`
	Modalities     []string        `json:"modalities"`
	LogitBias      json.RawMessage `json:"logit_bias"`
}

// chatMessage is one message in; content is a string, a list of parts, or
// null.
type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name"`
	ToolCalls  json.RawMessage `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type contentPart struct {
	Type    string `json:"type"`
	Text    string `json:"text"`
	Refusal string `json:"refusal"`
}

// completionRequest is the body of POST /v1/completions (legacy).
type completionRequest struct {
	commonRequest
	Prompt   json.RawMessage `json:"prompt"`
	Echo     bool            `json:"echo"`
	Suffix   *string         `json:"suffix"`
	BestOf   *int            `json:"best_of"`
	Logprobs *int            `json:"logprobs"`
}

// apiError is an error answer before it is written.
type apiError struct {
	Status     int
	Message    string
	Type       string
	Param      string
	Code       string
	RetryAfter int // seconds; 0 sends no Retry-After
}

func (e *apiError) Error() string { return e.Message }

func badRequest(param, code, format string, args ...any) *apiError {
	return &apiError{Status: 400, Type: "invalid_request_error", Param: param, Code: code, Message: fmt.Sprintf(format, args...)}
}

func unsupported(param, why string) *apiError {
	return badRequest(param, "unsupported_parameter", "%s is not supported: %s", param, why)
}

// fromBridge turns a bridge error into OpenAI's shape, using its status,
// code, message, param and retry hint.
func fromBridge(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	be := bridge.Classify(err)
	e := &apiError{Status: be.Status, Message: be.Message, Param: be.Param, Code: string(be.Code)}
	if be.Status == 0 {
		e.Status = 500
	}
	if be.RetryAfter > 0 {
		e.RetryAfter = int((be.RetryAfter + 999e6) / 1e9)
	}
	e.Type = errorType(e.Status)
	return e
}

// errorType is OpenAI's error type for a status.
func errorType(status int) string {
	switch {
	case status == 401:
		return "authentication_error"
	case status == 402:
		return "insufficient_quota"
	case status == 403:
		return "permission_error"
	case status == 429:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	default:
		return "invalid_request_error"
	}
}

// errorBody is what an error answer holds; param and code are null when
// unset, as OpenAI sends them.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) body() errorBody {
	d := errorDetail{Message: e.Message, Type: e.Type}
	if d.Type == "" {
		d.Type = errorType(e.Status)
	}
	if e.Param != "" {
		d.Param = &e.Param
	}
	if e.Code != "" {
		d.Code = &e.Code
	}
	return errorBody{Error: d}
}

// decodeError explains a JSON decoding failure the way OpenAI does, naming
// the field when the type was wrong.
func decodeError(err error) *apiError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		field := fieldPath(te.Field)
		return badRequest(field, "invalid_type", "Invalid type for '%s': expected %s, but got %s.", field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return badRequest("", "invalid_json", "We could not parse the JSON body of your request (at byte %d). The OpenAI API expects a JSON payload.", se.Offset)
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: ") || strings.Contains(msg, "unexpected end of JSON input") {
		return badRequest("", "invalid_json", "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.")
	}
	// Our own UnmarshalJSON errors (stop) say what was wrong.
	return badRequest("", "invalid_json", "Invalid request body: %s.", strings.TrimSuffix(msg, "."))
}

// fieldPath drops the names of embedded Go structs from a decoding error's
// field path, leaving the JSON names.
func fieldPath(f string) string {
	parts := strings.Split(f, ".")
	out := parts[:0]
	for _, p := range parts {
		if p != "commonRequest" && p != "hordeExtras" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32":
		return "an integer"
	case "float64", "float32":
		return "a number"
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return goKind
}

// present reports whether a raw JSON field was given and is not null.
func present(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && !bytes.Equal(t, []byte("null"))
}

// emptyish reports whether a raw JSON value is null, "", [] or {}.
func emptyish(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	switch string(t) {
	case "", "null", `""`, "[]", "{}":
		return true
	}
	return false
}

// checkUnsupported refuses the chat fields the Horde cannot honour, naming
// the field, rather than silently ignoring what the caller relies on.
func (r *chatRequest) checkUnsupported() *apiError {
	const noTools = "the AI Horde's text workers have no tool or function calling"
	switch {
	case !emptyish(r.Tools):
		return unsupported("tools", noTools)
	case !emptyish(r.Functions):
		return unsupported("functions", noTools)
	case present(r.ToolChoice) && !isJSONString(r.ToolChoice, "none", "auto"):
		return unsupported("tool_choice", noTools)
	case present(r.FunctionCall) && !isJSONString(r.FunctionCall, "none", "auto"):
		return unsupported("function_call", noTools)
	case r.Logprobs != nil && *r.Logprobs:
		return unsupported("logprobs", "the AI Horde does not return token probabilities")
	case r.TopLogprobs != nil && *r.TopLogprobs > 0:
		return unsupported("top_logprobs", "the AI Horde does not return token probabilities")
	case present(r.ResponseFormat) && !isResponseFormatText(r.ResponseFormat):
		return unsupported("response_format", "the AI Horde cannot constrain output to JSON; only {\"type\": \"text\"} is accepted")
	case present(r.Audio):
		return unsupported("audio", "the AI Horde's text workers produce text only")
	case !emptyish(r.LogitBias):
		return unsupported("logit_bias", "the AI Horde's text API has no logit bias")
	}
	for _, m := range r.Modalities {
		if m != "text" {
			return unsupported("modalities", "the AI Horde's text workers produce text only")
		}
	}
	return nil
}

func isJSONString(raw json.RawMessage, allowed ...string) bool {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return false
	}
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

func isResponseFormatText(raw json.RawMessage) bool {
	var rf struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(raw, &rf) == nil && (rf.Type == "text" || rf.Type == "")
}

// messages converts the chat messages: developer becomes system, text
// parts are joined, anything else is refused by its place.
func (r *chatRequest) messages() ([]prompt.Message, *apiError) {
	if len(r.Messages) == 0 {
		return nil, badRequest("messages", "invalid_value", "messages must hold at least one message.")
	}
	out := make([]prompt.Message, 0, len(r.Messages))
	for i, m := range r.Messages {
		where := "messages[" + strconv.Itoa(i) + "]"
		var role string
		switch m.Role {
		case "system", "developer":
			role = prompt.RoleSystem
		case "user":
			role = prompt.RoleUser
		case "assistant":
			role = prompt.RoleAssistant
			if !emptyish(m.ToolCalls) {
				return nil, unsupported(where+".tool_calls", "the AI Horde's text workers have no tool or function calling")
			}
		case "tool", "function":
			return nil, unsupported(where+".role", "\""+m.Role+"\" messages answer tool calls, which the AI Horde's text workers cannot make")
		case "":
			return nil, badRequest(where+".role", "missing_required_parameter", "%s.role is required.", where)
		default:
			return nil, badRequest(where+".role", "invalid_value", "Invalid value for %s.role: %q. Use system, developer, user or assistant.", where, m.Role)
		}
		text, err := contentText(m.Content, where)
		if err != nil {
			return nil, err
		}
		out = append(out, prompt.Message{Role: role, Name: m.Name, Content: text})
	}
	return out, nil
}

// contentText reads message content: a string, null, or a list of parts of
// which only text (and an assistant's refusal) can be sent to the Horde.
func contentText(raw json.RawMessage, where string) (string, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badRequest(where+".content", "invalid_type", "%s.content is not a valid string.", where)
		}
		return s, nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", badRequest(where+".content", "invalid_type", "Invalid type for '%s.content': expected a string or an array of content parts.", where)
	}
	texts := make([]string, 0, len(parts))
	for j, p := range parts {
		switch p.Type {
		case "text":
			texts = append(texts, p.Text)
		case "refusal":
			texts = append(texts, p.Refusal)
		case "image_url", "input_image", "image":
			return "", unsupported(fmt.Sprintf("%s.content[%d]", where, j), "the AI Horde's text workers cannot see images; send text parts only")
		case "input_audio", "audio":
			return "", unsupported(fmt.Sprintf("%s.content[%d]", where, j), "the AI Horde's text workers cannot hear audio; send text parts only")
		case "file", "input_file":
			return "", unsupported(fmt.Sprintf("%s.content[%d]", where, j), "files cannot be attached; paste their text instead")
		default:
			return "", badRequest(fmt.Sprintf("%s.content[%d].type", where, j), "invalid_value", "Invalid content part type %q in %s.content[%d]; only \"text\" parts are supported.", p.Type, where, j)
		}
	}
	return strings.Join(texts, "\n"), nil
}

// promptText reads the legacy prompt: a string or a list of one string.
func (r *completionRequest) promptText() (string, *apiError) {
	raw := bytes.TrimSpace(r.Prompt)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", badRequest("prompt", "missing_required_parameter", "prompt is required.")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badRequest("prompt", "invalid_type", "prompt is not a valid string.")
		}
		return s, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", badRequest("prompt", "invalid_type", "Invalid type for 'prompt': expected a string or an array of strings.")
	}
	if len(list) != 1 {
		return "", unsupported("prompt", "send one prompt per request (batches of prompts are not supported)")
	}
	var s string
	if err := json.Unmarshal(list[0], &s); err != nil {
		return "", unsupported("prompt", "token id prompts cannot be sent to the AI Horde; send text")
	}
	return s, nil
}

func (r *completionRequest) checkUnsupported() *apiError {
	switch {
	case r.Suffix != nil && *r.Suffix != "":
		return unsupported("suffix", "the AI Horde's text workers cannot fill in the middle")
	case r.Logprobs != nil && *r.Logprobs > 0:
		return unsupported("logprobs", "the AI Horde does not return token probabilities")
	case r.BestOf != nil && *r.BestOf > 1 && (r.N == nil || *r.BestOf != *r.N):
		return unsupported("best_of", "the AI Horde cannot rank generations; use n instead")
	}
	return nil
}

// Responses.

type usage struct {
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	TotalTokens      int     `json:"total_tokens"`
	Kudos            float64 `json:"kudos"` // extension: kudos the Horde charged
}

func usageOf(res *bridge.Result) *usage {
	return &usage{
		PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens,
		TotalTokens: res.PromptTokens + res.CompletionTokens, Kudos: res.Kudos,
	}
}

// hordeInfo is an extension object on answers: what the Horde did.
type hordeInfo struct {
	RequestID    string   `json:"request_id"`
	Workers      []string `json:"workers,omitempty"`
	Limited      bool     `json:"max_tokens_lowered,omitempty"`
	KudosLimited bool     `json:"kudos_limited,omitempty"`
	Dropped      int      `json:"dropped_messages,omitempty"`
	Truncated    bool     `json:"truncated,omitempty"`
	Template     string   `json:"template,omitempty"`
}

func hordeInfoOf(res *bridge.Result) *hordeInfo {
	h := &hordeInfo{RequestID: res.HordeID, Limited: res.Limited, KudosLimited: res.KudosLimited, Dropped: res.Dropped, Truncated: res.Truncated, Template: res.Template}
	for _, c := range res.Choices {
		if c.WorkerName != "" {
			h.Workers = append(h.Workers, c.WorkerName)
		}
	}
	return h
}

type assistantMessage struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

type chatChoice struct {
	Index        int              `json:"index"`
	Message      assistantMessage `json:"message"`
	Logprobs     *struct{}        `json:"logprobs"`
	FinishReason string           `json:"finish_reason"`
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage"`
	Horde   *hordeInfo   `json:"horde,omitempty"`
}

type delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chunkChoice struct {
	Index        int       `json:"index"`
	Delta        delta     `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type chatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *usage        `json:"usage,omitempty"`
	Horde   *hordeInfo    `json:"horde,omitempty"`
}

type textChoice struct {
	Index        int       `json:"index"`
	Text         string    `json:"text"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type textCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []textChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
	Horde   *hordeInfo   `json:"horde,omitempty"`
}

// modelObject is one entry of /v1/models, with extension fields a tool can
// size requests by.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Extensions (OpenRouter-style names where one exists).
	ContextLength       int     `json:"context_length"`
	MaxCompletionTokens int     `json:"max_completion_tokens"`
	Workers             int     `json:"workers"`
	Threads             int     `json:"threads"`
	QueuedTokens        float64 `json:"queued_tokens"`
	QueuedJobs          float64 `json:"queued_jobs"`
	ETASeconds          int64   `json:"eta_seconds"`
	TokensPerSecond     float64 `json:"tokens_per_second"`
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}
