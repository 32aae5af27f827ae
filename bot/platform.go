// Package bot is hordechat's platform-neutral chat core: the Platform
// interface adapters implement, the command registry (declared once,
// rendered by each adapter its own way), and the conversation engine that
// turns chat messages into bridge jobs and answers back.
package bot

import (
	"context"
	"errors"
)

// Platform is a chat platform adapter. It is small on purpose; optional
// capabilities (Editor, Typer, Redactor, FileSender) are found by type
// assertion.
type Platform interface {
	// Name is the platform's id: "discord", "matrix". Conversation ids and
	// targets start with it.
	Name() string
	// MaxMessageLength is the longest message the platform accepts.
	MaxMessageLength() int
	// Send posts a message at target and returns its id. Out.Key, when
	// set, makes the send idempotent: sending the same key again must not
	// post twice (Discord nonce, Matrix transaction id).
	Send(ctx context.Context, target string, out Outgoing) (messageID string, err error)
}

// Editor edits a message the bot sent.
type Editor interface {
	Edit(ctx context.Context, target, messageID string, out Outgoing) error
}

// Typer shows that the bot is working.
type Typer interface {
	Typing(ctx context.Context, target string) error
}

// Redactor removes a message (the user's, when it held a secret).
type Redactor interface {
	Redact(ctx context.Context, target, messageID, reason string) error
}

// FileSender sends a file; long answers go out as one.
type FileSender interface {
	SendFile(ctx context.Context, target string, f File, out Outgoing) (messageID string, err error)
}

// Outgoing is a message the bot sends.
type Outgoing struct {
	Text string
	// Ephemeral asks for a reply only the asker sees (Discord
	// interactions); platforms without it send normally.
	Ephemeral bool
	// Buttons under the message, when the platform has them.
	Buttons []Button
	// Key makes the send idempotent (see Platform.Send).
	Key string
	// Notice marks bot output (Matrix m.notice). Model output and bot
	// notices never ping anyone: adapters send with no mentions allowed.
	Notice bool
}

// Button is a clickable action under an answer.
type Button struct {
	ID    string // action id, e.g. "regenerate"; the adapter adds what it needs
	Label string
}

// File is an attachment.
type File struct {
	Name        string
	ContentType string
	Data        []byte
}

// Author is who sent an incoming message.
type Author struct {
	ID          string // platform user id
	DisplayName string
	Roles       []string // role ids (Discord) or power-level names
	Admin       bool     // a server/room administrator
}

// Incoming is one event from a platform: a chat message or a command.
type Incoming struct {
	Platform string
	// ConversationID is opaque, made and parsed only by the adapter, and
	// starts with the platform: "discord:<channel>:<thread>".
	ConversationID string
	// Target is where answers go, serialized by the adapter.
	Target string
	// MessageID is the platform id of the user's message, if any.
	MessageID string
	Author    Author
	// Text is the message without the bot mention or command prefix.
	Text string
	// Server and Channel feed the permission checks ("" when not
	// applicable); DM says the conversation is a direct message.
	Server  string
	Channel string
	DM      bool
}

// ErrUnsupported is returned by adapters for a capability they lack.
var ErrUnsupported = errors.New("not supported by this platform")
