package matrix

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// A panicking event handler is logged, and the worker that ran it goes on.
func TestPanicInAnEventHandlerIsContained(t *testing.T) {
	var logs bytes.Buffer
	a := &Adapter{log: slog.New(slog.NewTextHandler(&logs, nil))}
	a.runJob(context.Background(), func(context.Context) { panic("odd event") })
	ran := false
	a.runJob(context.Background(), func(context.Context) { ran = true })
	if !ran || !strings.Contains(logs.String(), "internal error handling a Matrix event") || !strings.Contains(logs.String(), "odd event") {
		t.Fatalf("ran=%v, logs:\n%s", ran, logs.String())
	}
}
