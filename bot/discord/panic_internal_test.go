package discord

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A panicking event handler is logged, and the next event on the same
// queue still runs.
func TestPanicInAnEventHandlerIsContained(t *testing.T) {
	var logs bytes.Buffer // written by the queue's goroutine, read after wg.Wait
	a := &Adapter{log: slog.New(slog.NewTextHandler(&logs, nil)), queues: map[string][]func(){}}
	next := make(chan struct{})
	a.enqueue("m:1", func() { panic("odd event") })
	a.enqueue("m:1", func() { close(next) })
	<-next
	a.wg.Wait()
	if !strings.Contains(logs.String(), "internal error handling a Discord event") || !strings.Contains(logs.String(), "odd event") {
		t.Fatalf("the panic was not logged:\n%s", logs.String())
	}
}
