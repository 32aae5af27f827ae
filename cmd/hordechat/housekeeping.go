package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/hordechat/hordechat/storage"
)

// Housekeeping cadence: pruning is cheap and bounded by the retention
// windows; PRAGMA optimize is meant to run a few times a day.
const (
	pruneEvery    = time.Hour
	optimizeEvery = 6 * time.Hour
	jobTimeout    = 5 * time.Minute
)

// housekeepingJob is one periodic task.
type housekeepingJob struct {
	name  string
	every time.Duration
	fn    func(ctx context.Context) error
}

// newHousekeeping schedules retention, database upkeep and the extra jobs
// (the model list refresh). The scheduler is returned unstarted; it never
// runs per-request work.
func newHousekeeping(store *storage.Store, cfg storage.Config, log *slog.Logger, extra ...housekeepingJob) (gocron.Scheduler, error) {
	s, err := gocron.NewScheduler(gocron.WithLogger(gocronLogger{log}))
	if err != nil {
		return nil, err
	}
	task := func(name string, fn func(ctx context.Context) error) gocron.Task {
		return gocron.NewTask(func() {
			ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
			defer cancel()
			if err := fn(ctx); err != nil {
				log.Warn("housekeeping job failed", "job", name, "err", err)
			}
		})
	}
	jobs := append([]housekeepingJob{
		{"prune", pruneEvery, func(ctx context.Context) error { return prune(ctx, store, cfg, time.Now(), log) }},
		{"optimize", optimizeEvery, store.Optimize},
	}, extra...)
	for _, j := range jobs {
		if _, err := s.NewJob(gocron.DurationJob(j.every), task(j.name, j.fn), gocron.WithName(j.name), gocron.WithSingletonMode(gocron.LimitModeReschedule)); err != nil {
			_ = s.Shutdown()
			return nil, err
		}
	}
	return s, nil
}

// prune applies the retention windows; a zero window keeps data forever.
func prune(ctx context.Context, store *storage.Store, cfg storage.Config, now time.Time, log *slog.Logger) error {
	if cfg.MessageRetention > 0 {
		n, err := store.PruneMessages(ctx, now.Add(-cfg.MessageRetention))
		if err != nil {
			return err
		}
		if n > 0 {
			log.Info("pruned old messages", "count", n)
		}
		// Conversations emptied by the prune above go too.
		n, err = store.PruneEndedConversations(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			log.Info("pruned ended conversations", "count", n)
		}
	}
	if cfg.JobRetention > 0 {
		n, err := store.PruneFinishedJobs(ctx, now.Add(-cfg.JobRetention))
		if err != nil {
			return err
		}
		if n > 0 {
			log.Info("pruned finished jobs", "count", n)
		}
	}
	return nil
}

// gocronLogger routes gocron's logs to slog.
type gocronLogger struct{ l *slog.Logger }

func (g gocronLogger) Debug(msg string, args ...any) { g.l.Debug(msg, args...) }
func (g gocronLogger) Info(msg string, args ...any)  { g.l.Info(msg, args...) }
func (g gocronLogger) Warn(msg string, args ...any)  { g.l.Warn(msg, args...) }
func (g gocronLogger) Error(msg string, args ...any) { g.l.Error(msg, args...) }
