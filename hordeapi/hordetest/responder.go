package hordetest

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Job is what a simulated worker was asked to generate. A Responder turns it
// into the raw model output.
type Job struct {
	RequestID        string
	JobID            string
	Index            int // pickups of this request before this one (restarts count)
	Prompt           string
	Params           map[string]any // params as sent, unknown keys included
	Models           []string       // the request's models
	Model            string         // the model serving this job
	WorkerID         string
	WorkerName       string
	MaxLength        int
	MaxContextLength int
	StopSequences    []string
	Username         string // alias#id of the requesting account
}

// Responder produces the text a worker generates for a job. Its output is
// then post-processed like a real worker's: cut right after the first stop
// sequence (the stop string stays in), cut at the first newline with
// singleline, and truncated to max_length tokens (4 characters a token).
//
// A Responder runs with the fake's lock held: it must be quick and must not
// call methods of the Server.
type Responder func(Job) string

const filler = "This is a simulated reply from a fake AI Horde worker."

// DefaultResponder echoes the prompt's last non-empty line ("Echo: …") and
// pads with a fixed sentence to about max_length tokens, so that job
// durations follow the requested length as they do on the real Horde.
func DefaultResponder(j Job) string {
	last := ""
	lines := strings.Split(j.Prompt, "\n")
	for _, l := range slices.Backward(lines) {
		if t := strings.TrimSpace(l); t != "" {
			last = t
			break
		}
	}
	var b strings.Builder
	b.WriteString("Echo: " + last)
	budget := j.MaxLength * 4
	for n := utf8.RuneCountInString(b.String()); n+1+len(filler) <= budget; n += 1 + len(filler) {
		b.WriteString(" " + filler)
	}
	return b.String()
}

// finishText applies what a worker does to raw output before submitting it.
func finishText(text string, stops []string, singleline bool, maxLength int) string {
	if singleline {
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[:i]
		}
	}
	cut := -1
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := strings.Index(text, s); i >= 0 && (cut < 0 || i+len(s) < cut) {
			cut = i + len(s)
		}
	}
	if cut >= 0 {
		text = text[:cut]
	}
	limit := maxLength * 4
	if utf8.RuneCountInString(text) > limit {
		r := []rune(text)
		text = string(r[:limit])
	}
	return text
}

// tokenCount is the Horde's estimate of tokens: characters divided by 4.
func tokenCount(text string) int { return utf8.RuneCountInString(text) / 4 }
