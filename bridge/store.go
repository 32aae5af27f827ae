package bridge

import (
	"context"
	"time"
)

// JobState is how a journaled job ended.
type JobState string

// The final states of a journaled job.
const (
	JobDone      JobState = "done"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// JournalEntry is one in-flight job as the journal keeps it. It never holds
// a Horde key: the key is resolved again when a job resumes.
type JournalEntry struct {
	ID        string
	HordeID   string // empty until the Horde took the request
	Principal string // for people reading the journal, e.g. "discord:123"
	Target    string // the delivery target; empty for /v1 calls
	Payload   []byte // the journaled job (JSON)
	Attempts  int
	Result    []byte // the answer, once kept and before it is delivered
	CreatedAt time.Time
}

// Store is what bridge needs from storage. The cmd layer adapts
// *storage.Store to it, so bridge does not import storage.
type Store interface {
	// LinkedHordeKey returns the Horde key the user linked, or "" for none.
	LinkedHordeKey(ctx context.Context, storeUserID int64) (string, error)
	CreateJob(ctx context.Context, e JournalEntry) error
	MarkJobSubmitted(ctx context.Context, id, hordeID string) error
	// SaveJobResult keeps the answer before delivery, so a crash between
	// the Horde finishing and the delivery loses nothing.
	SaveJobResult(ctx context.Context, id string, result []byte) error
	FinishJob(ctx context.Context, id string, state JobState, result []byte, errMsg string) error
	IncrementJobAttempts(ctx context.Context, id string) (int, error)
	// UnfinishedJobs lists the jobs to resume, oldest first.
	UnfinishedJobs(ctx context.Context) ([]JournalEntry, error)
}

// Delivery is a finished job handed to its Deliverer: exactly one of
// Result and Err is set.
type Delivery struct {
	JobID   string
	Target  string
	Result  *Result
	Err     *Error
	Resumed bool // the job was resumed after a restart
}

// Deliverer hands answers to a platform. A job is marked done only after
// Deliver returns nil, and is delivered again after a restart otherwise,
// so Deliver must be idempotent for a JobID (use it as the platform's
// nonce or transaction id).
type Deliverer interface {
	Deliver(ctx context.Context, d Delivery) error
}

// DelivererFunc adapts a function to Deliverer.
type DelivererFunc func(ctx context.Context, d Delivery) error

// Deliver calls f.
func (f DelivererFunc) Deliver(ctx context.Context, d Delivery) error { return f(ctx, d) }
