package bridge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

const fimbulvetr = "koboldcpp/Fimbulvetr-11B-v2"

// completeThen runs req to its end on the fake clock; afterSubmit runs once
// the Horde has the request, before the clock moves.
func (r *svcRig) completeThen(req Request, afterSubmit func()) error {
	r.t.Helper()
	errc := make(chan error, 1)
	r.goComplete(context.Background(), req, nil, func(_ *Result, err error) { errc <- err })
	acted := false
	var err error
	if !r.until(30*time.Minute, func() bool {
		if !acted && len(r.submits()) > 0 {
			acted = true
			if afterSubmit != nil {
				afterSubmit()
			}
		}
		select {
		case err = <-errc:
			return true
		default:
			return false
		}
	}) {
		r.t.Fatal("Complete did not return within 30 simulated minutes")
	}
	return err
}

// TestNotPossibleSaysWhyAndWhatToDo gives up on requests no worker can
// serve for different reasons: each message names the likely cause and an
// action that fits it, and the request is deleted at the Horde.
func TestNotPossibleSaysWhyAndWhatToDo(t *testing.T) {
	workers := hordetest.WithWorkers(
		hordetest.Worker{Name: "big", Models: []string{fimbulvetr}, MaxLength: 512, MaxContextLength: 8192},
		hordetest.Worker{Name: "small", Models: []string{fimbulvetr}, MaxLength: 256, MaxContextLength: 8192},
		hordetest.Worker{Name: "hermes", Models: []string{"aphrodite/NousResearch/Hermes-3-Llama-3.1-8B"}, Trusted: true},
	)
	long := func(req Request) Request { req.Params.MaxTokens = hordeapi.Ptr(512); return req }
	tests := []struct {
		name string
		// before runs before the request; afterSubmit once the Horde has it.
		before      func(r *svcRig)
		afterSubmit func(r *svcRig)
		req         func(r *svcRig) Request
		want        []string
		wantNot     []string
	}{
		{
			name: "the model lost its workers",
			before: func(r *svcRig) {
				r.fake.RemoveWorker("big")
				r.fake.RemoveWorker("small")
			},
			afterSubmit: func(r *svcRig) { r.refresh() },
			req:         func(*svcRig) Request { return chat("anyone?") },
			want:        []string{fimbulvetr + " has no workers any more", "Switch to one of the models that have workers: aphrodite/NousResearch/Hermes-3-Llama-3.1-8B."},
		},
		{
			name:        "the workers left allow a shorter answer",
			before:      func(r *svcRig) { r.fake.RemoveWorker("big") },
			afterSubmit: func(r *svcRig) { r.refresh() },
			req:         func(*svcRig) Request { return long(chat("a long one")) },
			want:        []string{"allow at most 256 tokens of answer and 8192 of context, and it asks for 512", "Send it again", "shorter answer"},
		},
		{
			name: "trusted workers only",
			req: func(*svcRig) Request {
				req := chat("trusted please")
				req.Params.TrustedWorkers = true
				return req
			},
			want: []string{"trusted workers only", "Send it without trusted_workers", "switch to one of the models that have workers: aphrodite/NousResearch/Hermes-3-Llama-3.1-8B."},
		},
		{
			name: "named workers only",
			req: func(r *svcRig) Request {
				req := chat("only hermes")
				req.Params.Workers = []string{r.workerID("hermes")}
				return req
			},
			want: []string{"only run on the workers it names", "Name other workers, or leave the workers list out."},
		},
		{
			name:   "the registry has not seen the workers go",
			before: func(r *svcRig) { r.fake.RemoveWorker("big"); r.fake.RemoveWorker("small") },
			req:    func(*svcRig) Request { return chat("anyone?") },
			want:   []string{"the workers of " + fimbulvetr + " left", "Try again in a few minutes", "switch to one of the models that have workers: aphrodite/NousResearch/Hermes-3-Llama-3.1-8B."},
			// The model the request used is not offered as the way out.
			wantNot: []string{"workers: " + fimbulvetr},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.NotPossibleTimeout = 30 * time.Second
			r := newSvcRig(t, rigOptions{cfg: cfg, horde: []hordetest.Option{workers}})
			if tt.before != nil {
				tt.before(r)
			}
			var after func()
			if tt.afterSubmit != nil {
				after = func() { tt.afterSubmit(r) }
			}
			err := r.completeThen(tt.req(r), after)
			e := Classify(err)
			if e.Code != CodeNotPossible {
				t.Fatalf("err = %v (%s), want %s", err, e.Code, CodeNotPossible)
			}
			if !strings.HasPrefix(e.Message, "No worker can serve this request now: ") {
				t.Errorf("message %q does not start by saying what happened", e.Message)
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q lacks %q", e.Message, w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(e.Message, w) {
					t.Errorf("message %q has %q", e.Message, w)
				}
			}
			if len(r.deletes()) != 1 {
				t.Errorf("%d DELETEs at the Horde, want 1", len(r.deletes()))
			}
		})
	}
}

// refresh reloads the model registry from the fake.
func (r *svcRig) refresh() {
	r.t.Helper()
	if err := r.svc.RefreshModels(context.Background()); err != nil {
		r.t.Fatal(err)
	}
}

// workerID is the Horde id of the fake's worker called name.
func (r *svcRig) workerID(name string) string {
	r.t.Helper()
	ws, err := r.svc.client.Workers(context.Background(), hordeapi.Caller{})
	if err != nil {
		r.t.Fatal(err)
	}
	for _, w := range ws {
		if w.Name == name {
			return w.ID
		}
	}
	r.t.Fatalf("no worker %s", name)
	return ""
}
