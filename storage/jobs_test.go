package storage_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hordechat/hordechat/storage"
)

func TestCreateJob(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	tests := []struct {
		name    string
		job     storage.Job
		wantErr error
		check   func(t *testing.T, j storage.Job)
	}{
		{name: "generated id, pending", job: storage.Job{Principal: "discord:1", Target: "t1", Request: []byte(`{"prompt":"x"}`)},
			check: func(t *testing.T, j storage.Job) {
				if len(j.ID) != 32 || j.State != storage.JobPending || j.Attempts != 0 ||
					!j.CreatedAt.Equal(clk.Now()) || !j.UpdatedAt.Equal(clk.Now()) || !j.SubmittedAt.IsZero() || !j.FinishedAt.IsZero() ||
					string(j.Request) != `{"prompt":"x"}` || j.Principal != "discord:1" || j.Target != "t1" || j.Result != nil {
					t.Errorf("job = %+v", j)
				}
			}},
		{name: "given id", job: storage.Job{ID: "job-1", State: storage.JobPending},
			check: func(t *testing.T, j storage.Job) {
				if j.ID != "job-1" {
					t.Errorf("id = %q", j.ID)
				}
			}},
		{name: "already submitted, original time kept", job: storage.Job{ID: "job-2", State: storage.JobSubmitted, HordeRequestID: "h2", CreatedAt: clk.Now().Add(-time.Hour)},
			check: func(t *testing.T, j storage.Job) {
				if j.State != storage.JobSubmitted || j.HordeRequestID != "h2" || !j.SubmittedAt.Equal(clk.Now()) || !j.CreatedAt.Equal(clk.Now().Add(-time.Hour)) {
					t.Errorf("job = %+v", j)
				}
			}},
		{name: "duplicate id", job: storage.Job{ID: "job-1"}, wantErr: storage.ErrConflict},
		{name: "submitted without request id", job: storage.Job{State: storage.JobSubmitted}, wantErr: storage.ErrInvalid},
		{name: "finished state", job: storage.Job{State: storage.JobDone}, wantErr: storage.ErrInvalid},
		{name: "unknown state", job: storage.Job{State: "weird"}, wantErr: storage.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := s.CreateJob(ctx, tt.job)
			wantErr(t, err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			tt.check(t, j)
			got, err := s.JobByID(ctx, j.ID)
			if err != nil || !reflect.DeepEqual(got, j) {
				t.Errorf("JobByID = %+v, %v; want %+v", got, err, j)
			}
		})
	}
	if _, err := s.JobByID(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("JobByID(unknown) = %v, want ErrNotFound", err)
	}
}

func TestJobTransitions(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	job, err := s.CreateJob(ctx, storage.Job{ID: "j"})
	if err != nil {
		t.Fatal(err)
	}
	created := clk.Now()

	// The steps run in order on the same job.
	steps := []struct {
		name    string
		do      func() error
		wantErr error
		check   func(t *testing.T, j storage.Job)
	}{
		{name: "attempt", do: func() error {
			n, err := s.IncrementJobAttempts(ctx, job.ID)
			if err == nil && n != 1 {
				t.Errorf("attempts = %d, want 1", n)
			}
			return err
		}, check: func(t *testing.T, j storage.Job) {
			if j.Attempts != 1 || j.State != storage.JobPending || !j.UpdatedAt.Equal(clk.Now()) {
				t.Errorf("job = %+v", j)
			}
		}},
		{name: "submitted", do: func() error { return s.MarkJobSubmitted(ctx, job.ID, "horde-1") },
			check: func(t *testing.T, j storage.Job) {
				if j.State != storage.JobSubmitted || j.HordeRequestID != "horde-1" || !j.SubmittedAt.Equal(clk.Now()) {
					t.Errorf("job = %+v", j)
				}
			}},
		{name: "resubmitted after a restart", do: func() error { return s.MarkJobSubmitted(ctx, job.ID, "horde-2") },
			check: func(t *testing.T, j storage.Job) {
				if j.HordeRequestID != "horde-2" || j.Attempts != 1 {
					t.Errorf("job = %+v", j)
				}
			}},
		{name: "finish with a pending state", do: func() error { return s.FinishJob(ctx, job.ID, storage.JobPending, nil, "") },
			wantErr: storage.ErrInvalid},
		{name: "done", do: func() error { return s.FinishJob(ctx, job.ID, storage.JobDone, []byte(`{"text":"ok"}`), "") },
			check: func(t *testing.T, j storage.Job) {
				if j.State != storage.JobDone || string(j.Result) != `{"text":"ok"}` || !j.FinishedAt.Equal(clk.Now()) ||
					!j.CreatedAt.Equal(created) || j.Error != "" {
					t.Errorf("job = %+v", j)
				}
			}},
		{name: "cancel after done loses", do: func() error { return s.FinishJob(ctx, job.ID, storage.JobCancelled, nil, "") },
			wantErr: storage.ErrConflict},
		{name: "submit after done", do: func() error { return s.MarkJobSubmitted(ctx, job.ID, "h") }, wantErr: storage.ErrConflict},
		{name: "attempt after done", do: func() error { _, err := s.IncrementJobAttempts(ctx, job.ID); return err },
			wantErr: storage.ErrConflict},
		{name: "submit unknown", do: func() error { return s.MarkJobSubmitted(ctx, "nope", "h") }, wantErr: storage.ErrNotFound},
		{name: "finish unknown", do: func() error { return s.FinishJob(ctx, "nope", storage.JobFailed, nil, "x") }, wantErr: storage.ErrNotFound},
		{name: "attempt unknown", do: func() error { _, err := s.IncrementJobAttempts(ctx, "nope"); return err },
			wantErr: storage.ErrNotFound},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(time.Second)
			wantErr(t, tt.do(), tt.wantErr)
			if tt.check == nil {
				return
			}
			j, err := s.JobByID(ctx, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, j)
		})
	}

	t.Run("failed keeps the error", func(t *testing.T) {
		j, err := s.CreateJob(ctx, storage.Job{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.FinishJob(ctx, j.ID, storage.JobFailed, nil, "no workers"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.JobByID(ctx, j.ID); got.State != storage.JobFailed || got.Error != "no workers" || got.Result != nil {
			t.Errorf("job = %+v", got)
		}
	})
}

func TestUnfinishedJobs(t *testing.T) {
	s, clk := newStore(t)
	ctx := t.Context()
	if jobs, err := s.UnfinishedJobs(ctx); err != nil || len(jobs) != 0 {
		t.Fatalf("UnfinishedJobs on empty = %v, %v", jobs, err)
	}
	create := func(id string) {
		t.Helper()
		clk.Advance(time.Second)
		if _, err := s.CreateJob(ctx, storage.Job{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// Created in this order; ids deliberately not sorted.
	for _, id := range []string{"z-oldest", "a-done", "m-submitted", "b-cancelled", "c-newest"} {
		create(id)
	}
	if err := s.FinishJob(ctx, "a-done", storage.JobDone, nil, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishJob(ctx, "b-cancelled", storage.JobCancelled, nil, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkJobSubmitted(ctx, "m-submitted", "h"); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.UnfinishedJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	if want := []string{"z-oldest", "m-submitted", "c-newest"}; !slices.Equal(ids, want) {
		t.Errorf("UnfinishedJobs ids = %v, want %v", ids, want)
	}
}

func TestSaveJobResult(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	j, err := s.CreateJob(ctx, storage.Job{Principal: "discord:1", Target: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveJobResult(ctx, j.ID, []byte(`{"text":"answer"}`)); err != nil {
		t.Fatal(err)
	}
	unfinished, err := s.UnfinishedJobs(ctx)
	if err != nil || len(unfinished) != 1 || string(unfinished[0].Result) != `{"text":"answer"}` || unfinished[0].State != storage.JobPending {
		t.Fatalf("unfinished = %+v, %v", unfinished, err)
	}
	if err := s.FinishJob(ctx, j.ID, storage.JobDone, unfinished[0].Result, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveJobResult(ctx, j.ID, []byte(`{}`)); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("save on a finished job = %v, want ErrConflict", err)
	}
	if err := s.SaveJobResult(ctx, "nope", []byte(`{}`)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("save on an unknown job = %v, want ErrNotFound", err)
	}
}
