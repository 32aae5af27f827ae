package openai

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/hordechat/hordechat/bridge"
)

// streamGrace is how long a stream waits for the Horde to take the job
// before committing to 200: errors found at submit (bad key, kudos, busy)
// then still get their proper status and Retry-After instead of an
// in-stream error. The first status poll, which follows the submit at
// once, ends the wait earlier.
const streamGrace = time.Second

// contentChunks is how many pieces the finished text is streamed in.
const contentChunks = 4

// sse writes Server-Sent Events with a deadline per write.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	err     error
	buf     []byte
}

func (e *sse) start() {
	h := e.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	e.w.WriteHeader(http.StatusOK)
}

func (e *sse) write(b []byte) {
	if e.err != nil {
		return
	}
	_ = e.rc.SetWriteDeadline(time.Now().Add(e.timeout))
	_, e.err = e.w.Write(b)
}

// data sends one event.
func (e *sse) data(v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		e.err = err
		return
	}
	e.buf = append(append(append(e.buf[:0], "data: "...), raw...), "\n\n"...)
	e.write(e.buf)
}

// comment sends an SSE comment line. It is deliberately not followed by a
// blank line: a comment-only block would dispatch an empty event, which
// some SDKs (openai-go before 2026) fail to parse.
func (e *sse) comment(text string) {
	e.buf = append(append(append(e.buf[:0], ": "...), oneLine(text)...), '\n')
	e.write(e.buf)
}

func (e *sse) flush() {
	if e.err != nil {
		return
	}
	_ = e.rc.SetWriteDeadline(time.Now().Add(e.timeout))
	e.err = e.rc.Flush()
}

type outcome struct {
	res *bridge.Result
	err error
}

// stream runs the job and streams its answer: the role chunk as soon as
// the Horde has the job, heartbeat comments while it waits, then the text
// in a few chunks, the finish chunk, usage when asked, and [DONE]. If the
// client goes away, ctx ends and the bridge cancels the Horde request.
func (s *Server) stream(ctx context.Context, abandon func(), w http.ResponseWriter, g *gen, tr *tracker) (*bridge.Result, error) {
	done := make(chan outcome, 1)
	go func() {
		res, err := s.bridge.Complete(ctx, g.req, tr.progress)
		done <- outcome{res, err}
	}()
	hb := s.clock.NewTicker(s.cfg.Heartbeat)
	defer hb.Stop()
	grace := s.clock.NewTimer(min(streamGrace, s.cfg.Heartbeat))
	defer grace.Stop()

	var out *sse
	id := ""
	created := s.clock.Now().Unix()
	lastStage := bridge.Stage("")
	begin := func(jobID string) {
		out = &sse{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
		s.metrics.streams.Inc()
		out.start()
		if p, ok := tr.latest(); ok && jobID == "" {
			jobID = p.JobID
		}
		if id = jobID; id == "" {
			id = streamID() // the Horde has not answered yet
		}
		if g.chat {
			for i := range g.n {
				out.data(chunk(id, created, g.model, i, delta{Role: "assistant", Content: ptr("")}, nil))
			}
		} else {
			out.comment("submitted")
		}
	}
	defer func() {
		if out != nil {
			s.metrics.streams.Dec()
		}
	}()
	for {
		select {
		case o := <-done:
			if o.err != nil {
				e := fromBridge(o.err)
				if out == nil {
					s.writeError(w, e)
					return nil, o.err
				}
				// Headers are gone: report in the stream, as OpenAI does.
				// No [DONE], so a client cannot take it for an empty answer.
				out.data(e.body())
				out.flush()
				return nil, o.err
			}
			if out == nil {
				begin(o.res.JobID)
			}
			s.streamResult(out, g, id, created, o.res)
			out.flush()
			return o.res, nil
		case <-tr.changed:
			p, _ := tr.latest()
			if out == nil {
				if p.Stage == bridge.StageDone {
					continue // the result is about to arrive on done
				}
				begin("")
			}
			if p.Stage != lastStage && p.Stage != bridge.StageDone {
				lastStage = p.Stage
				out.comment(describe(p, true))
			}
			out.flush()
		case <-grace.Chan():
			if out == nil {
				begin("")
				out.flush()
			}
		case <-hb.Chan():
			if out == nil {
				begin("")
			}
			p, seen := tr.latest()
			out.comment(describe(p, seen))
			out.flush()
		}
		if out != nil && out.err != nil {
			// The client is gone or stuck: cancel the job, then wait for
			// the bridge to have deleted it at the Horde.
			abandon()
			o := <-done
			if o.err == nil {
				return o.res, nil
			}
			return nil, o.err
		}
	}
}

func ptr[T any](v T) *T { return &v }

func chunk(id string, created int64, model string, index int, d delta, finish *string) chatChunk {
	return chatChunk{
		ID: "chatcmpl-" + id, Object: "chat.completion.chunk", Created: created, Model: model,
		Choices: []chunkChoice{{Index: index, Delta: d, FinishReason: finish}},
	}
}

// streamResult writes the finished answer as chunks.
func (s *Server) streamResult(out *sse, g *gen, id string, created int64, res *bridge.Result) {
	if g.chat {
		for ci, ch := range res.Choices {
			for _, piece := range splitText(ch.Text, contentChunks) {
				out.data(chunk(id, created, res.Model, ch.Index, delta{Content: ptr(piece)}, nil))
			}
			c := chunk(id, created, res.Model, ch.Index, delta{}, ptr(string(ch.FinishReason)))
			if ci == len(res.Choices)-1 {
				c.Horde = hordeInfoOf(res)
			}
			out.data(c)
		}
		if g.includeUsage {
			out.data(chatChunk{ID: "chatcmpl-" + id, Object: "chat.completion.chunk", Created: created, Model: res.Model, Choices: []chunkChoice{}, Usage: usageOf(res)})
		}
	} else {
		for ci, ch := range res.Choices {
			pieces := splitText(g.echo+ch.Text, contentChunks)
			for _, piece := range pieces {
				out.data(textCompletion{ID: "cmpl-" + id, Object: "text_completion", Created: created, Model: res.Model, Choices: []textChoice{{Index: ch.Index, Text: piece}}})
			}
			c := textCompletion{ID: "cmpl-" + id, Object: "text_completion", Created: created, Model: res.Model,
				Choices: []textChoice{{Index: ch.Index, Text: "", FinishReason: ptr(string(ch.FinishReason))}}}
			if ci == len(res.Choices)-1 {
				c.Horde = hordeInfoOf(res)
			}
			out.data(c)
		}
		if g.includeUsage {
			out.data(textCompletion{ID: "cmpl-" + id, Object: "text_completion", Created: created, Model: res.Model, Choices: []textChoice{}, Usage: usageOf(res)})
		}
	}
	out.write([]byte("data: [DONE]\n\n"))
}
