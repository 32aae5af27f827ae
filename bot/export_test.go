package bot

import (
	"context"

	"github.com/hordechat/hordechat/bridge"
)

// Hooks for the external tests in package bot_test.

// Envelope is the delivery envelope.
type Envelope = envelope

// Encode encodes the envelope as a bridge target.
func (env envelope) Encode(platform string) string { return env.encode(platform) }

// DecodeEnvelope decodes a bridge target.
var DecodeEnvelope = decodeEnvelope

// DeliverForTest delivers like the bridge does.
func (e *Engine) DeliverForTest(ctx context.Context, d bridge.Delivery) error {
	return e.deliver(ctx, d)
}

// Builtins returns the built-in command declarations.
func Builtins() []*Command { return (&Engine{}).builtins() }
