package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func get(t *testing.T, url, apikey string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if apikey != "" {
		req.Header.Set("apikey", apikey)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-passkey", "secret-pk", "-v"}, &logs, func(u string) { urls <- u })
	}()
	var base string
	select {
	case base = <-urls:
	case err := <-done:
		t.Fatalf("run ended early: %v", err)
	}

	if code, body := get(t, base+"/v2/status/heartbeat", ""); code != 200 || !strings.Contains(string(body), `"OK"`) {
		t.Fatalf("heartbeat %d %s", code, body)
	}
	code, body := get(t, base+"/v2/find_user", devKey)
	var u struct {
		Username string  `json:"username"`
		Kudos    float64 `json:"kudos"`
	}
	_ = json.Unmarshal(body, &u)
	if code != 200 || !strings.HasPrefix(u.Username, "dev#") || u.Kudos != 5000 {
		t.Fatalf("find_user %d %s", code, body)
	}
	code, body = get(t, base+"/v2/status/models?type=text", "")
	for _, m := range []string{"koboldcpp/Fimbulvetr-11B-v2", "aphrodite/NousResearch/Hermes-3-Llama-3.1-8B", "koboldcpp/Mistral-Nemo-Instruct-12B"} {
		if code != 200 || !strings.Contains(string(body), m) {
			t.Errorf("models %d lacks %s", code, m)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "apikey="+devKey) || !strings.Contains(out, "shutting down") || !strings.Contains(out, "path=/api/v2/find_user") {
		t.Errorf("logs:\n%s", out)
	}
	if strings.Contains(out, "secret-pk") {
		t.Error("the passkey was logged")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	var logs syncBuffer
	if err := run(context.Background(), []string{"-bogus"}, &logs, nil); err == nil {
		t.Fatal("no error for an unknown flag")
	}
	if err := run(context.Background(), []string{"-h"}, &logs, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if err := run(context.Background(), []string{"-listen", "256.0.0.1:1"}, &logs, nil); err == nil {
		t.Fatal("no error for a bad listen address")
	}
}
