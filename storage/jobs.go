package storage

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// JobState is where a journaled Horde job stands.
type JobState string

// Job states. Pending and submitted jobs are unfinished and are resumed after
// a restart; the others are final.
const (
	JobPending   JobState = "pending"   // journaled, not yet accepted by the Horde
	JobSubmitted JobState = "submitted" // the Horde gave it a request id
	JobDone      JobState = "done"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// Finished reports whether the state is final.
func (st JobState) Finished() bool {
	return st == JobDone || st == JobFailed || st == JobCancelled
}

// Job is an entry of the journal of Horde jobs, kept so that a job in flight
// when the process stops is resumed and delivered on the next start.
//
// Never put API keys (the user's or the operator's) in Request, Target or
// Result: the journal is not encrypted. Resolve the key again when resuming.
type Job struct {
	ID             string // random if empty at CreateJob
	HordeRequestID string
	Principal      string // who the job is for, e.g. "discord:1234" or "token:42"
	Target         string // the caller's opaque delivery target
	Request        []byte // the caller's opaque request (JSON)
	State          JobState
	Attempts       int
	Error          string // why a job failed
	CreatedAt      time.Time
	UpdatedAt      time.Time
	SubmittedAt    time.Time // zero until submitted
	FinishedAt     time.Time // zero until finished
	Result         []byte    // the caller's opaque result (JSON)
}

const jobColumns = "id, horde_request_id, principal, target, request, state, attempts, error, created_at, updated_at, submitted_at, finished_at, result"

func scanJob(row scanner) (Job, error) {
	var j Job
	var created, updated int64
	var submitted, finished sql.NullInt64
	if err := row.Scan(&j.ID, &j.HordeRequestID, &j.Principal, &j.Target, &j.Request, &j.State, &j.Attempts,
		&j.Error, &created, &updated, &submitted, &finished, &j.Result); err != nil {
		return Job{}, err
	}
	j.CreatedAt, j.UpdatedAt = fromMS(created), fromMS(updated)
	j.SubmittedAt, j.FinishedAt = fromNullMS(submitted), fromNullMS(finished)
	return j, nil
}

// newJobID returns 128 random bits in hex.
func newJobID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// CreateJob journals a new job and returns it as stored. The state must be
// empty or pending, or submitted with a HordeRequestID. An ID already in the
// journal gives ErrConflict.
func (s *Store) CreateJob(ctx context.Context, j Job) (Job, error) {
	switch {
	case j.State == "":
		j.State = JobPending
	case j.State == JobSubmitted && j.HordeRequestID == "":
		return Job{}, fmt.Errorf("create job: submitted without a horde request id: %w", ErrInvalid)
	case j.State != JobPending && j.State != JobSubmitted:
		return Job{}, fmt.Errorf("create job: state %q, want pending or submitted: %w", j.State, ErrInvalid)
	}
	if j.ID == "" {
		id, err := newJobID()
		if err != nil {
			return Job{}, fmt.Errorf("create job: %w", err)
		}
		j.ID = id
	}
	now := s.now()
	created := now
	if !j.CreatedAt.IsZero() {
		created = j.CreatedAt // a caller re-journaling keeps the original order
	}
	var submitted time.Time
	if j.State == JobSubmitted {
		submitted = now
	}
	var out Job
	err := s.write(ctx, func(tx *sql.Tx) (err error) {
		out, err = scanJob(tx.QueryRowContext(ctx, `
			INSERT INTO jobs (id, horde_request_id, principal, target, request, state, attempts,
			                  created_at, updated_at, submitted_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING `+jobColumns,
			j.ID, j.HordeRequestID, j.Principal, j.Target, j.Request, string(j.State), j.Attempts,
			created.UnixMilli(), now.UnixMilli(), nullMS(submitted)))
		return err
	})
	if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		err = ErrConflict
	}
	if err != nil {
		return Job{}, fmt.Errorf("create job %s: %w", j.ID, err)
	}
	return out, nil
}

// MarkJobSubmitted records the Horde request id of an unfinished job. It
// returns ErrNotFound for an unknown job and ErrConflict for a finished one.
func (s *Store) MarkJobSubmitted(ctx context.Context, id, hordeRequestID string) error {
	now := s.nowMS()
	return s.updateUnfinishedJob(ctx, "mark job submitted", id, `
		UPDATE jobs SET state = 'submitted', horde_request_id = ?, submitted_at = ?, updated_at = ?
		WHERE id = ? AND state IN ('pending', 'submitted')`,
		hordeRequestID, now, now, id)
}

// FinishJob moves an unfinished job to a final state with its result or
// error message. It returns ErrNotFound for an unknown job and ErrConflict
// for a job already finished, so of two racing outcomes (say, done and
// cancelled) exactly one wins.
func (s *Store) FinishJob(ctx context.Context, id string, state JobState, result []byte, errMsg string) error {
	if !state.Finished() {
		return fmt.Errorf("finish job %s: state %q, want done, failed or cancelled: %w", id, state, ErrInvalid)
	}
	now := s.nowMS()
	// The target is only needed to deliver; it may hold a Discord
	// interaction token, which must not outlive the job in the database.
	return s.updateUnfinishedJob(ctx, "finish job", id, `
		UPDATE jobs SET state = ?, result = ?, error = ?, finished_at = ?, updated_at = ?, target = ''
		WHERE id = ? AND state IN ('pending', 'submitted')`,
		string(state), result, errMsg, now, now, id)
}

// SaveJobResult keeps an unfinished job's result before it is delivered,
// so that a crash between the Horde finishing and the delivery loses
// nothing: after a restart the job is delivered from the stored result.
func (s *Store) SaveJobResult(ctx context.Context, id string, result []byte) error {
	now := s.nowMS()
	return s.updateUnfinishedJob(ctx, "save job result", id, `
		UPDATE jobs SET result = ?, updated_at = ?
		WHERE id = ? AND state IN ('pending', 'submitted')`,
		result, now, id)
}

// IncrementJobAttempts counts one more submission attempt of an unfinished
// job and returns the new count.
func (s *Store) IncrementJobAttempts(ctx context.Context, id string) (int, error) {
	var attempts int
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `
			UPDATE jobs SET attempts = attempts + 1, updated_at = ?
			WHERE id = ? AND state IN ('pending', 'submitted')
			RETURNING attempts`, s.nowMS(), id).Scan(&attempts)
		if errors.Is(err, sql.ErrNoRows) {
			return s.whyNotUnfinished(ctx, tx, id)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("increment attempts of job %s: %w", id, err)
	}
	return attempts, nil
}

// updateUnfinishedJob runs an UPDATE guarded by "state is unfinished" and
// explains a miss.
func (s *Store) updateUnfinishedJob(ctx context.Context, action, id, query string, args ...any) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return s.whyNotUnfinished(ctx, tx, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", action, id, err)
	}
	return nil
}

// whyNotUnfinished explains why an update of an unfinished job matched no
// row: the job does not exist, or it has finished.
func (s *Store) whyNotUnfinished(ctx context.Context, tx *sql.Tx, id string) error {
	var state JobState
	if err := tx.QueryRowContext(ctx, "SELECT state FROM jobs WHERE id = ?", id).Scan(&state); err != nil {
		return notFound(err)
	}
	return fmt.Errorf("job is already %s: %w", state, ErrConflict)
}

// JobByID returns a job, or ErrNotFound.
func (s *Store) JobByID(ctx context.Context, id string) (Job, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE id = ?", id))
	if err != nil {
		return Job{}, fmt.Errorf("get job %s: %w", id, notFound(err))
	}
	return j, nil
}

// UnfinishedJobs returns the pending and submitted jobs, oldest first: the
// work to resume at start-up.
func (s *Store) UnfinishedJobs(ctx context.Context) ([]Job, error) {
	jobs, err := queryList(ctx, s.db, scanJob, "SELECT "+jobColumns+
		" FROM jobs WHERE state IN ('pending', 'submitted') ORDER BY created_at, rowid")
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: %w", err)
	}
	return jobs, nil
}

// JobStateByID returns the state of a journaled job, or ErrNotFound when
// the journal has never had it; it reads nothing else of the job.
func (s *Store) JobStateByID(ctx context.Context, id string) (JobState, error) {
	var st JobState
	if err := s.db.QueryRowContext(ctx, "SELECT state FROM jobs WHERE id = ?", id).Scan(&st); err != nil {
		return "", fmt.Errorf("get state of job %s: %w", id, notFound(err))
	}
	return st, nil
}
