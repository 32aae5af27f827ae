package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The inbox keeps every chat turn from the moment it is accepted until it
// ends (answered or refused, an error delivered, cancelled), so that a
// crash loses none: a turn waiting behind another in its conversation
// exists nowhere else, and one whose job the bridge journaled is finished
// by the bridge. Each turn's job id is chosen when it is accepted and kept
// with it: after a restart, the journal knowing that id tells a turn that
// was submitted from one that was not.

// inboxPayload is what an inbox item holds: enough to run the turn again.
// It may hold a Discord interaction token, so items are deleted as soon as
// their turn ends.
type inboxPayload struct {
	Boot       string   `json:"boot"` // the engine that accepted the turn
	In         Incoming `json:"in"`
	Text       string   `json:"text,omitempty"`
	OneShot    bool     `json:"one_shot,omitempty"`
	Regenerate bool     `json:"regenerate,omitempty"`
	Continue   bool     `json:"continue,omitempty"`
}

// keptTurn is an accepted turn with its inbox item and job id.
type keptTurn struct {
	id    int64
	jobID string
	in    Incoming
	turn  chatTurn
}

// inboxState is the engine's part of the hand-over at start-up; guarded
// by Engine.mu.
type inboxState struct {
	// boot tells the items this engine accepted from older ones.
	boot string
	// started is set by Resume; resumed once it has looked at every item.
	started, resumed bool
	// wait holds, per item whose job the bridge resumed, a channel closed
	// when that job is delivered: its conversation waits for it.
	wait map[int64]chan struct{}
	// early holds the items whose resumed job was delivered before Resume
	// got to them; nothing is left to wait for.
	early map[int64]bool

	modelsOnce sync.Once
}

func newInboxState() inboxState {
	return inboxState{boot: newToken(), wait: map[int64]chan struct{}{}, early: map[int64]bool{}}
}

// keepTurn writes an accepted turn to the inbox with a new job id.
func (e *Engine) keepTurn(ctx context.Context, conversation string, in Incoming, turn chatTurn) (keptTurn, error) {
	k := keptTurn{jobID: newJobID(), in: in, turn: turn}
	payload, err := json.Marshal(inboxPayload{Boot: e.inbox.boot, In: in, Text: turn.text, OneShot: turn.oneShot, Regenerate: turn.regenerate, Continue: turn.cont})
	if err != nil {
		return keptTurn{}, fmt.Errorf("encode the turn: %w", err)
	}
	k.id, err = e.store.AddInbox(ctx, InboxItem{Conversation: conversation, Platform: in.Platform, Payload: payload, JobID: k.jobID})
	return k, err
}

// dropInbox deletes a turn's inbox item once the turn has ended. A failure
// only leaves the item for the next start, which clears it.
func (e *Engine) dropInbox(id int64) {
	if id == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.store.DeleteInbox(ctx, id); err != nil {
		e.log.Error("delete an ended turn from the inbox", "inbox_id", id, "err", err)
	}
}

// turnTask is the queued task of an accepted turn. A turn whose time
// comes after Close stays in the inbox for the next start.
func (e *Engine) turnTask(ctx context.Context, p Platform, k keptTurn, userKey string) func() {
	return func() {
		defer e.slots.put(userKey)
		if e.stopped() {
			return
		}
		e.runKept(ctx, p, k)
	}
}

// runKept runs a kept turn; unless its job was submitted (the delivery
// then ends it), the turn is over when this returns, panic or not.
func (e *Engine) runKept(ctx context.Context, p Platform, k keptTurn) {
	submitted := false
	defer func() {
		if !submitted {
			e.dropInbox(k.id)
		}
	}()
	defer e.recoverTurn(ctx, p, k.in)
	submitted = e.runTurn(ctx, p, k.in, k.turn, k.id, k.jobID)
}

func (e *Engine) stopped() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// inboxDelivered is told by deliver that the job of item id was delivered
// (or failed to be), so a conversation waiting for it goes on.
func (e *Engine) inboxDelivered(id int64, resumedJob bool) {
	if id == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ch, ok := e.inbox.wait[id]; ok {
		close(ch)
		delete(e.inbox.wait, id)
		return
	}
	if resumedJob && !e.inbox.resumed {
		e.inbox.early[id] = true
	}
}

// resumeStep is one turn of a conversation picked up by Resume: either a
// job to wait for (delivered) or a turn to run (turn).
type resumeStep struct {
	userKey   string
	delivered chan struct{}
	p         Platform
	turn      keptTurn
}

// Resume picks up the turns accepted before a restart, oldest first. A
// turn whose job is in the journal is the bridge's to finish: its
// conversation waits for that answer. A turn whose job finished is
// cleared. A turn never submitted is queued again on its conversation and
// answered like a new one, after the turns ahead of it.
//
// Call it once, after the platforms are added and the bridge started, and
// before the platforms take new messages: these then come after the
// resumed turns of their conversation.
func (e *Engine) Resume(ctx context.Context) error {
	e.mu.Lock()
	started := e.inbox.started
	e.inbox.started = true
	e.mu.Unlock()
	if started {
		return errors.New("bot: Resume was already called")
	}
	defer func() {
		e.mu.Lock()
		e.inbox.resumed = true
		e.inbox.early = nil
		e.mu.Unlock()
	}()
	items, err := e.store.PendingInbox(ctx)
	if err != nil {
		return fmt.Errorf("load the inbox: %w", err)
	}
	var order []string
	steps := map[string][]resumeStep{}
	blocked := map[string]bool{}
	waiting, again := 0, 0
	for _, it := range items {
		if blocked[it.Conversation] {
			continue
		}
		st, ok, keep := e.resumeStep(ctx, it)
		if keep {
			// Left for the next start: the turns after it in its
			// conversation wait with it, so the order holds.
			blocked[it.Conversation] = true
			continue
		}
		if !ok {
			continue
		}
		if _, seen := steps[it.Conversation]; !seen {
			order = append(order, it.Conversation)
		}
		steps[it.Conversation] = append(steps[it.Conversation], st)
		if st.delivered != nil {
			waiting++
		} else {
			again++
		}
	}
	// The turns outlive Resume's caller, like those HandleMessage queues.
	turnCtx := context.WithoutCancel(ctx)
	for _, conv := range order {
		list := steps[conv]
		if !e.enqueue(conv, func() { e.runResumed(turnCtx, list) }) {
			// A fresh engine has empty queues; should it not, the turns
			// stay in the inbox for the next start.
			e.log.Error("could not queue resumed turns; keeping them for the next start", "turns", len(list))
			e.releaseSteps(list)
		}
	}
	if len(items) > 0 {
		e.log.Info("resumed accepted messages", "in_inbox", len(items), "waiting_for_journaled_jobs", waiting, "asked_again", again, "conversations", len(order))
	}
	return nil
}

// resumeStep decides what becomes of one inbox item. ok: it is a step to
// run; keep: it stays in the inbox, and its conversation's later items
// with it.
func (e *Engine) resumeStep(ctx context.Context, it InboxItem) (st resumeStep, ok, keep bool) {
	var pl inboxPayload
	if err := json.Unmarshal(it.Payload, &pl); err != nil {
		e.log.Error("unreadable inbox item; dropping it", "inbox_id", it.ID, "err", err)
		e.dropInbox(it.ID)
		return st, false, false
	}
	if pl.Boot == e.inbox.boot {
		return st, false, false // accepted by this engine: already queued
	}
	p := e.platform(pl.In.Platform)
	if p == nil {
		e.log.Warn("inbox item for a platform that is off; keeping it", "inbox_id", it.ID, "platform", pl.In.Platform)
		return st, false, true
	}
	status := JobUnknown
	if it.JobID != "" {
		var err error
		if status, err = e.store.JobStatus(ctx, it.JobID); err != nil {
			e.log.Error("look up the job of an inbox item; keeping it", "inbox_id", it.ID, "job", it.JobID, "err", err)
			return st, false, true
		}
	}
	st.p, st.userKey = p, pl.In.Platform+":"+pl.In.Author.ID
	switch status {
	case JobFinished:
		e.dropInbox(it.ID) // delivered, but not deleted before the crash
		return st, false, false
	case JobRunning:
		e.mu.Lock()
		if e.inbox.early[it.ID] {
			e.mu.Unlock()
			return st, false, false
		}
		st.delivered = make(chan struct{})
		e.inbox.wait[it.ID] = st.delivered
		// Its Cancel button still works: the asker (or an admin) may stop
		// the job the bridge resumed.
		e.live[resumedLiveKey(it.JobID)] = &liveJob{jobID: it.JobID, conversation: pl.In.ConversationID, userKey: st.userKey}
		e.mu.Unlock()
	default:
		jobID := it.JobID
		if jobID == "" {
			jobID = newJobID()
		}
		st.turn = keptTurn{id: it.ID, jobID: jobID, in: pl.In,
			turn: chatTurn{text: pl.Text, oneShot: pl.OneShot, regenerate: pl.Regenerate, cont: pl.Continue}}
	}
	e.slots.hold(st.userKey)
	return st, true, false
}

// runResumed runs a conversation's resumed steps in order, on its queue.
func (e *Engine) runResumed(ctx context.Context, steps []resumeStep) {
	for i, st := range steps {
		if e.stopped() {
			e.releaseSteps(steps[i:]) // the inbox keeps them
			return
		}
		if st.delivered != nil {
			select {
			case <-st.delivered:
			case <-e.stop:
			}
		} else {
			e.awaitModels()
			e.runKept(ctx, st.p, st.turn)
		}
		e.slots.put(st.userKey)
	}
}

// releaseSteps gives back what resumeStep reserved for steps not run.
func (e *Engine) releaseSteps(steps []resumeStep) {
	e.mu.Lock()
	for _, st := range steps {
		if st.delivered != nil {
			for id, ch := range e.inbox.wait {
				if ch == st.delivered {
					delete(e.inbox.wait, id)
				}
			}
		}
	}
	e.mu.Unlock()
	for _, st := range steps {
		e.slots.put(st.userKey)
	}
}

// awaitModels loads the Horde's model list once if the bridge has not yet:
// a turn resumed right at start-up would otherwise be refused with "not
// loaded yet".
func (e *Engine) awaitModels() {
	e.inbox.modelsOnce.Do(func() {
		if !e.bridge.Models().Snapshot().UpdatedAt.IsZero() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.bridge.RefreshModels(ctx); err != nil {
			e.log.Warn("could not load the models for resumed turns", "err", err)
		}
	})
}

// newJobID is a job id for the bridge: 128 random bits in hex.
func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// resumedLiveKey is where a job resumed after a restart sits in e.live; its
// request token died with the old process.
func resumedLiveKey(jobID string) string { return "resumed:" + jobID }
