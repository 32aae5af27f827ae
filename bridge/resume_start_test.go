package bridge

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

// blockingDeliverer stands for a platform that cannot send until it runs,
// and it only runs once Start has returned.
type blockingDeliverer struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingDeliverer) Deliver(ctx context.Context, _ Delivery) error {
	close(b.entered)
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Start does not wait for the delivery of an answer kept in the journal.
func TestResumeDoesNotHoldStartOnADelivery(t *testing.T) {
	store := newMemStore()
	saved, _ := json.Marshal(&Result{JobID: "job-kept", Choices: []Choice{{Text: "kept answer"}}})
	payload, _ := json.Marshal(journalPayload{Prepared: &prepared{Template: "chatml"}, Principal: savePrincipal(discordUser)})
	store.CreateJob(context.Background(), JournalEntry{ID: "job-kept", HordeID: "gone", Target: "matrix:room", Payload: payload})
	store.SaveJobResult(context.Background(), "job-kept", saved)
	fake := hordetest.New(t)
	svc, err := New(DefaultConfig(), Deps{Client: newTestClient(t, fake, "", 0), Store: store, IdentitySecret: testSecret, Clock: fake.Clock()})
	if err != nil {
		t.Fatal(err)
	}
	d := &blockingDeliverer{entered: make(chan struct{}), release: make(chan struct{})}
	svc.RegisterDeliverer("matrix", d)
	t.Cleanup(svc.Close)

	started := make(chan error, 1)
	go func() { started <- svc.Start(context.Background()) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a hang guard: Start waits on the platform
		t.Fatal("Start waits for the delivery of a kept answer")
	}
	<-d.entered
	close(d.release)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := svc.waitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if st := store.job("job-kept").state; st != JobDone {
		t.Errorf("journal state %q, want done once delivered", st)
	}
}
