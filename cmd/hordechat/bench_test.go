package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkBinaryStartup builds the real binary and measures, per start,
// the time from exec to the "ready" log line and the resident memory once
// it serves (idle: no platform connected, no request in flight).
func BenchmarkBinaryStartup(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc for RSS")
	}
	bin := filepath.Join(b.TempDir(), "hordechat")
	goTool, err := exec.LookPath("go")
	if err != nil {
		b.Skip("the go tool is not on PATH")
	}
	build := exec.Command(goTool, "build", "-tags", "goolm", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	dataDir := b.TempDir()
	var totalReady time.Duration
	var totalRSS, maxRSS int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ready, rss := startOnce(b, bin, dataDir)
		totalReady += ready
		totalRSS += rss
		maxRSS = max(maxRSS, rss)
	}
	b.ReportMetric(float64(totalReady.Microseconds())/1000/float64(b.N), "ms-to-ready")
	b.ReportMetric(float64(totalRSS)/float64(b.N)/1024, "idle-RSS-MB")
	b.ReportMetric(float64(maxRSS)/1024, "max-idle-RSS-MB")
}

func startOnce(b *testing.B, bin, dataDir string) (time.Duration, int64) {
	cmd := exec.Command(bin, "run")
	cmd.Env = []string{
		"HORDECHAT_LOG__FORMAT=json",
		"HORDECHAT_HTTP__LISTEN=127.0.0.1:0",
		"HORDECHAT_STORAGE__PATH=" + filepath.Join(dataDir, "hordechat.db"),
		"HORDECHAT_HORDE__BASE_URL=http://127.0.0.1:9/api",
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Errorf("exit: %v", err)
		}
	}()
	sc := bufio.NewScanner(stderr)
	var base string
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			HTTP string `json:"http"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "ready" {
			base = line.HTTP
			break
		}
	}
	ready := time.Since(start)
	if base == "" {
		b.Fatal("binary exited before ready")
	}
	go func() { // keep the pipe drained until exit
		for sc.Scan() {
		}
	}()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	return ready, rssKB(b, cmd.Process.Pid)
}

func rssKB(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			n, _ := strconv.ParseInt(f[0], 10, 64)
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
