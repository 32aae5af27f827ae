package bridge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/hordeapi/hordetest"
)

func refreshedModels(t *testing.T, opts ...hordetest.Option) (*hordetest.Server, *Models) {
	t.Helper()
	fake := hordetest.New(t, opts...)
	m := NewModels(newTestClient(t, fake, "", 0), fake.Clock())
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return fake, m
}

func TestModelsRefreshCapacity(t *testing.T) {
	_, m := refreshedModels(t, hordetest.WithWorkers(
		hordetest.Worker{Name: "a", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}, MaxLength: 512, MaxContextLength: 8192, Threads: 2},
		hordetest.Worker{Name: "b", Models: []string{"koboldcpp/Fimbulvetr-11B-v2", "koboldcpp/Other-7B"}, MaxLength: 1024, MaxContextLength: 4096},
		hordetest.Worker{Name: "c", Models: []string{"koboldcpp/Gone-7B"}, Offline: true},
	))
	snap := m.Snapshot()
	if snap.Stale || snap.UpdatedAt.IsZero() {
		t.Fatalf("snapshot flags: %+v", snap)
	}
	got := map[string]ModelInfo{}
	for _, mi := range snap.Models {
		got[mi.Name] = mi
	}
	fim := got["koboldcpp/Fimbulvetr-11B-v2"]
	if fim.Workers != 2 || fim.MaxLength != 1024 || fim.MaxContextLength != 8192 || fim.Threads != 3 {
		t.Errorf("fimbulvetr = %+v", fim)
	}
	if _, ok := got["koboldcpp/Gone-7B"]; ok && got["koboldcpp/Gone-7B"].Workers != 0 {
		t.Errorf("offline worker counted: %+v", got["koboldcpp/Gone-7B"])
	}
	if snap.ActiveTextThreads == 0 {
		t.Error("performance not loaded")
	}
}

func TestModelsStaleOnFailure(t *testing.T) {
	fake, m := refreshedModels(t)
	before := m.Snapshot()
	fake.Inject(hordetest.Fault{Kind: hordetest.FaultStatus, Status: 503, Path: "/api/v2/status/models"})
	if err := m.Refresh(context.Background()); !errors.Is(err, hordeapi.ErrUnavailable) {
		t.Fatalf("refresh err = %v", err)
	}
	after := m.Snapshot()
	if !after.Stale || len(after.Models) != len(before.Models) || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("stale data not kept: %+v", after)
	}
	fake.ClearFaults()
	fake.Advance(time.Minute)
	if err := m.Refresh(context.Background()); err != nil || m.Snapshot().Stale {
		t.Fatalf("recovery: %v stale=%v", err, m.Snapshot().Stale)
	}
}

func TestResolve(t *testing.T) {
	_, m := refreshedModels(t, hordetest.WithWorkers(
		hordetest.Worker{Name: "a", Models: []string{"koboldcpp/Fimbulvetr-11B-v2"}},
		hordetest.Worker{Name: "b", Models: []string{"aphrodite/NousResearch/Hermes-3-Llama-3.1-8B"}},
		hordetest.Worker{Name: "c", Models: []string{"koboldcpp/Mistral-Nemo-12B", "aphrodite/mistralai/Mistral-Nemo-12B"}},
	))
	tests := []struct {
		name     string
		in       string
		want     string
		wantCode Code
		wantMsg  []string
	}{
		{name: "exact", in: "koboldcpp/Fimbulvetr-11B-v2", want: "koboldcpp/Fimbulvetr-11B-v2"},
		{name: "case-insensitive", in: "KOBOLDCPP/fimbulvetr-11b-v2", want: "koboldcpp/Fimbulvetr-11B-v2"},
		{name: "short name", in: "Fimbulvetr-11B-v2", want: "koboldcpp/Fimbulvetr-11B-v2"},
		{name: "short name folded", in: "hermes-3-llama-3.1-8b", want: "aphrodite/NousResearch/Hermes-3-Llama-3.1-8B"},
		{name: "without backend", in: "NousResearch/Hermes-3-Llama-3.1-8B", want: "aphrodite/NousResearch/Hermes-3-Llama-3.1-8B"},
		{name: "ambiguous", in: "Mistral-Nemo-12B", wantCode: CodeAmbiguousModel, wantMsg: []string{"koboldcpp/Mistral-Nemo-12B", "aphrodite/mistralai/Mistral-Nemo-12B", "full name"}},
		{name: "unknown with suggestion", in: "Fimbulvetr", wantCode: CodeUnknownModel, wantMsg: []string{`"Fimbulvetr"`, "Did you mean: koboldcpp/Fimbulvetr-11B-v2"}},
		{name: "typo suggestion", in: "Fimbulvetr-11B-v3", wantCode: CodeUnknownModel, wantMsg: []string{"koboldcpp/Fimbulvetr-11B-v2"}},
		{name: "unknown no suggestion", in: "gpt-4o", wantCode: CodeUnknownModel, wantMsg: []string{"List the models"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mi, err := m.Resolve(tt.in)
			if tt.wantCode == "" {
				if err != nil || mi.Name != tt.want {
					t.Fatalf("Resolve(%q) = %q, %v; want %q", tt.in, mi.Name, err, tt.want)
				}
				return
			}
			e := Classify(err)
			if e == nil || e.Code != tt.wantCode || e.Param != "model" {
				t.Fatalf("Resolve(%q) err = %#v, want code %s", tt.in, e, tt.wantCode)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q lacks %q", e.Message, w)
				}
			}
		})
	}
}

func TestResolveBeforeLoad(t *testing.T) {
	m := NewModels(nil, nil)
	if _, err := m.Resolve("x"); Classify(err).Code != CodeUnavailable {
		t.Fatalf("err = %v", err)
	}
	if _, err := m.Default(""); Classify(err).Code != CodeUnavailable {
		t.Fatalf("default err = %v", err)
	}
}

func TestDefaultModel(t *testing.T) {
	fake, m := refreshedModels(t, hordetest.WithWorkers(
		hordetest.Worker{Name: "fast", Models: []string{"koboldcpp/Fast-7B"}, TokensPerSecond: 50, Threads: 4},
		hordetest.Worker{Name: "slow", Models: []string{"koboldcpp/Slow-70B"}, TokensPerSecond: 2},
	))
	_ = fake
	if mi, err := m.Default(""); err != nil || mi.Workers == 0 {
		t.Fatalf("default = %+v, %v", mi, err)
	}
	if mi, err := m.Default("Slow-70B"); err != nil || mi.Name != "koboldcpp/Slow-70B" {
		t.Fatalf("preferred = %+v, %v", mi, err)
	}
	if mi, err := m.Default("no-such-model"); err != nil || mi.Workers == 0 {
		t.Fatalf("unknown preferred must fall back: %+v, %v", mi, err)
	}
}
