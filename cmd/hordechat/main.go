// Command hordechat serves the AI Horde to Discord, Matrix and
// OpenAI-compatible tools.
//
// Usage:
//
//	hordechat [run] [--config FILE]   serve (the default)
//	hordechat check-config [--config FILE]
//	hordechat opencode [--config FILE] [--base-url URL]
//	hordechat version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// buildVersion is set with -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = ""

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr, nil))
}

const usage = `hordechat serves the AI Horde to Discord, Matrix and OpenAI-compatible tools.

Usage:
  hordechat [run] [--config FILE]      serve until interrupted (default)
  hordechat check-config [--config FILE]  validate the configuration and print it, secrets hidden
  hordechat opencode [--base-url URL]  print an opencode.json provider for the live models
  hordechat version                    print the version

Configuration: defaults, then the TOML file (--config, else ./config.toml when
present), then HORDECHAT_ environment variables (HORDECHAT_HORDE__API_KEY sets
horde.api_key). See config.example.toml for every key.
`

// run is main without the process: it returns the exit code. app, when not
// nil, sees the App before it runs (tests use it to learn the listen address).
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer, app func(*App)) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("hordechat "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	configPath := fs.String("config", "", "TOML configuration file (default ./config.toml when present)")
	baseURL := fs.String("base-url", "", "opencode: this server's /v1 URL (default openai.public_base_url, else http://<http.listen>/v1)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hordechat %s: unexpected argument %q\n\n%s", cmd, fs.Arg(0), usage)
		return 2
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "hordechat", version())
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "check-config", "run", "opencode":
	default:
		fmt.Fprintf(stderr, "hordechat: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	cfg, err := loadConfig(*configPath, environ)
	if err != nil {
		fmt.Fprintf(stderr, "hordechat: %v\n", err)
		return 1
	}
	if cmd == "check-config" {
		fmt.Fprintln(stdout, "# configuration is valid; effective values (secrets hidden):")
		for _, line := range redactedSettings(cfg) {
			fmt.Fprintln(stdout, line)
		}
		return 0
	}
	if cmd == "opencode" {
		if err := printOpencode(ctx, cfg, *baseURL, stdout); err != nil {
			fmt.Fprintf(stderr, "hordechat opencode: %v\n", err)
			return 1
		}
		return 0
	}
	log := newLogger(cfg.Log, stderr)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	if app != nil {
		app(a)
	}
	if err := a.Run(ctx); err != nil {
		log.Error("stopped with error", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
