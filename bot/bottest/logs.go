package bottest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// Timeout guards adapter tests against hangs; no test asserts on time.
const Timeout = 60 * time.Second

// Context is a context that ends with the test or after Timeout.
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	tb.Cleanup(cancel)
	return ctx
}

// LogBuffer collects slog output safely from many goroutines, so tests can
// check that no secret was logged.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
