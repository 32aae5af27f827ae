package bot

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is what a Store returns for a missing record.
var ErrNotFound = errors.New("not found")

// User is a chat user as stored.
type User struct {
	ID          int64 // storage id
	Platform    string
	PlatformID  string
	DisplayName string
}

// LinkedKey describes a linked Horde key without the key.
type LinkedKey struct {
	Username string
	UserID   int64
	LinkedAt time.Time
}

// Settings are a user's defaults.
type Settings struct {
	Model        string
	SystemPrompt string
	Temperature  *float64
	MaxTokens    *int
}

// Conversation is one chat thread's state.
type Conversation struct {
	ID           int64
	Key          string
	SystemPrompt string
	Model        string
}

// Message is one stored chat message.
type Message struct {
	Role     string // system, user, assistant
	Name     string
	Content  string
	AuthorID int64
	Model    string
	HordeID  string
	Kudos    float64
}

// UserUsage is what a user has asked through the chat bots.
type UserUsage struct {
	Questions int
	Kudos     float64
}

// InboxItem is a chat turn the engine accepted and has not finished, kept
// so that a crash loses no accepted message: a turn waiting behind another
// in its conversation exists nowhere else.
type InboxItem struct {
	ID           int64
	Conversation string // the serial queue the turn waits in
	Platform     string
	Payload      []byte // the engine's JSON; may hold a platform credential
	JobID        string // the id the turn's job has, or will have, in the journal
}

// JobStatus is what the bridge's job journal knows of a job.
type JobStatus int

// What the journal knows of a job.
const (
	JobUnknown  JobStatus = iota // never journaled: the job was not submitted
	JobRunning                   // journaled and unfinished: the bridge resumes and delivers it
	JobFinished                  // done, failed or cancelled
)

// Store is what the chat core needs from storage; the cmd layer adapts
// *storage.Store to it (bot does not import storage).
type Store interface {
	UpsertUser(ctx context.Context, platform, platformID, displayName string) (User, error)
	LinkHordeKey(ctx context.Context, userID int64, key, hordeUsername string, hordeUserID int64) error
	LinkedKey(ctx context.Context, userID int64) (LinkedKey, error) // ErrNotFound when none
	// HordeKey returns the linked key itself (for a live kudos look-up);
	// ErrNotFound when none.
	HordeKey(ctx context.Context, userID int64) (string, error)
	Usage(ctx context.Context, userID int64) (UserUsage, error)
	UnlinkHordeKey(ctx context.Context, userID int64) (bool, error)
	CreateAPIToken(ctx context.Context, userID int64, name string) (string, error)
	RevokeAPITokens(ctx context.Context, userID int64) (int, error)
	UserSettings(ctx context.Context, userID int64) (Settings, error)
	SaveUserSettings(ctx context.Context, userID int64, s Settings) error
	ActiveConversation(ctx context.Context, key string) (Conversation, error)
	// HasActiveConversation reports, without creating one, whether the bot
	// has an active conversation under key.
	HasActiveConversation(ctx context.Context, key string) (bool, error)
	EndConversation(ctx context.Context, key string) (bool, error)
	SetConversationSystemPrompt(ctx context.Context, id int64, prompt string) error
	AppendMessages(ctx context.Context, conversationID int64, msgs ...Message) error
	// ReplaceLastAssistant replaces the conversation's newest message with
	// msg when that message is the assistant's (a regenerated answer),
	// else appends msg; in one transaction.
	ReplaceLastAssistant(ctx context.Context, conversationID int64, msg Message) error
	LastMessages(ctx context.Context, conversationID int64, limit int) ([]Message, error)
	// AddInbox keeps an accepted turn and returns its id.
	AddInbox(ctx context.Context, it InboxItem) (int64, error)
	// DeleteInbox removes a turn that ended; a missing one is no error.
	DeleteInbox(ctx context.Context, id int64) error
	// PendingInbox lists the kept turns, oldest first.
	PendingInbox(ctx context.Context) ([]InboxItem, error)
	// JobStatus looks a job id up in the bridge's journal.
	JobStatus(ctx context.Context, jobID string) (JobStatus, error)
}
