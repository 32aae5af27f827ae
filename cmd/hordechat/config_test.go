package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

const examplePath = "../../config.example.toml"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// The example documents the defaults: loading it strictly must give them.
func TestExampleConfigLoadsToDefaults(t *testing.T) {
	cfg, err := loadConfig(examplePath, nil)
	if err != nil {
		t.Fatalf("load %s: %v", examplePath, err)
	}
	if !reflect.DeepEqual(cfg, DefaultConfig()) {
		t.Errorf("example config differs from defaults:\n got %+v\nwant %+v", cfg, DefaultConfig())
	}
}

// Every key, secrets included (commented out), must appear in the example.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	uncomment := regexp.MustCompile(`(?m)^# ([a-z_]+ = .*)$`)
	p := writeFile(t, "all.toml", uncomment.ReplaceAllString(string(raw), "$1"))
	k := koanf.New(".")
	if err := k.Load(file.Provider(p), toml.Parser()); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, key := range k.Keys() {
		have[key] = true
	}
	ks := configKeys(reflect.TypeOf(Config{}))
	for _, key := range ks.ordered {
		if !have[key] {
			t.Errorf("config.example.toml does not document %s", key)
		}
		if ks.leaves[key] && !strings.Contains(string(raw), "# "+strings.SplitN(key, ".", 2)[1]+" = \"\"") {
			t.Errorf("secret %s should appear commented out with an empty value", key)
		}
	}
	for key := range have {
		if _, ok := ks.leaves[key]; !ok {
			t.Errorf("config.example.toml documents unknown key %s", key)
		}
	}
}

func TestLayering(t *testing.T) {
	p := writeFile(t, "c.toml", "[horde]\ntimeout = \"45s\"\ncontact = \"file@example.org\"\n[log]\nlevel = \"debug\"\n")
	env := []string{
		"HORDECHAT_HORDE__TIMEOUT=50s",
		"HORDECHAT_STORAGE__MAX_OPEN_CONNS=8",
		"HORDECHAT_MATRIX__HOMESERVER=https://matrix.example.org",
		"HORDECHAT_MATRIX__USER_ID=@bot:example.org",
		"HORDECHAT_MATRIX__ACCESS_TOKEN=syt_token",
		"UNRELATED=1",
	}
	cfg, err := loadConfig(p, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Horde.Timeout != 50*time.Second {
		t.Errorf("env must override file: timeout = %v", cfg.Horde.Timeout)
	}
	if cfg.Horde.Contact != "file@example.org" || cfg.Log.Level != "debug" {
		t.Errorf("file values lost: %+v %+v", cfg.Horde.Contact, cfg.Log)
	}
	if cfg.Storage.MaxOpenConns != 8 || !cfg.Matrix.Enabled() {
		t.Errorf("env values lost: conns=%d matrix=%+v", cfg.Storage.MaxOpenConns, cfg.Matrix.Enabled())
	}
	if cfg.HTTP.Listen != DefaultConfig().HTTP.Listen {
		t.Errorf("default lost: %q", cfg.HTTP.Listen)
	}
}

func TestDefaultConfigFileIsReadWhenPresent(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile(defaultConfigPath, []byte("[log]\nformat = \"json\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Format != "json" {
		t.Errorf("./config.toml not read: %+v", cfg.Log)
	}
}

func TestConfigErrors(t *testing.T) {
	secret := writeFile(t, "key", "file-secret-value\n")
	empty := writeFile(t, "empty", "\n")
	tests := []struct {
		name  string
		file  string // TOML; "" means no file
		path  string // overrides the written file
		env   []string
		want  []string // substrings of the error
		leaks []string // must not appear
	}{
		{name: "missing file", path: "/nonexistent/hordechat.toml", want: []string{"read config", "/nonexistent/hordechat.toml"}},
		{name: "bad toml", file: "[horde\n", want: []string{"read config"}},
		{name: "unknown key with suggestion", file: "[horde]\napi_kye = \"x\"\n", want: []string{"unknown key horde.api_kye", "did you mean horde.api_key?", "config.example.toml"}},
		{name: "unknown section", file: "[hordee]\ntimeout = \"1s\"\n", want: []string{"unknown key hordee.timeout", "did you mean horde.timeout?"}},
		{name: "unknown env key", env: []string{"HORDECHAT_HORDE__TIMEOT=1s"}, want: []string{"horde.timeot", "HORDECHAT_HORDE__TIMEOT", "did you mean horde.timeout?"}},
		{name: "bad level", file: "[log]\nlevel = \"loud\"\n", want: []string{"log.level", `"loud"`, "debug, info, warn or error"}},
		{name: "bad format", env: []string{"HORDECHAT_LOG__FORMAT=xml"}, want: []string{"log.format", "xml", "text or json"}},
		{name: "bad listen", file: "[http]\nlisten = \"8080\"\n", want: []string{"http.listen", "8080", "host:port"}},
		{name: "bad duration", file: "[horde]\ntimeout = \"soon\"\n", want: []string{"horde.timeout", `"soon"`, "30s, 5m or 2h"}},
		{name: "duration out of range", file: "[horde]\ntimeout = \"1h\"\n", want: []string{"horde.timeout", "1h0m0s", "between 1s and 10m"}},
		{name: "int type", file: "[horde]\nmax_retries = \"many\"\n", want: []string{"horde.max_retries", `"many"`, "whole number"}},
		{name: "fractional int", file: "[horde]\nmax_retries = 2.5\n", want: []string{"horde.max_retries", "2.5", "whole number"}},
		{name: "duration without unit", file: "[horde]\ntimeout = 30\n", want: []string{"horde.timeout", "30", "quoted duration"}},
		{name: "list for a string", file: "[horde]\ncontact = [\"a\"]\n", want: []string{"horde.contact", "single value"}},
		{name: "storage range", env: []string{"HORDECHAT_STORAGE__MAX_OPEN_CONNS=0"}, want: []string{"storage.max_open_conns", "0"}},
		{name: "bad base url", env: []string{"HORDECHAT_HORDE__BASE_URL=ftp://x"}, want: []string{"horde.base_url", "ftp://x"}},
		{name: "matrix partial", env: []string{"HORDECHAT_MATRIX__HOMESERVER=https://m.org"}, want: []string{"matrix.access_token or matrix.password"}},
		{name: "discord guild", file: "[discord]\nguild_id = \"my server\"\n", want: []string{"discord.guild_id", "numeric"}},
		{name: "secret and file both", file: "[horde]\napi_key = \"k1\"\napi_key_file = \"" + secret + "\"\n", want: []string{"horde.api_key and horde.api_key_file are both set"}, leaks: []string{"k1", "file-secret-value"}},
		{name: "secret file missing", env: []string{"HORDECHAT_HORDE__API_KEY_FILE=/nonexistent/key"}, want: []string{"horde.api_key_file", "/nonexistent/key"}},
		{name: "secret file empty", env: []string{"HORDECHAT_DISCORD__TOKEN_FILE=" + empty}, want: []string{"discord.token_file", "empty"}},
		{name: "file for non-secret", file: "[horde]\ncontact_file = \"/x\"\n", want: []string{"horde.contact_file", "only secrets"}},
		{name: "key with space never echoed", env: []string{"HORDECHAT_HORDE__API_KEY=abc def-secret"}, want: []string{"horde.api_key", "white space"}, leaks: []string{"def-secret"}},
		{name: "bad storage key never echoed", env: []string{"HORDECHAT_STORAGE__ENCRYPTION_KEY=not-base64-secret!"}, want: []string{"storage.encryption_key"}, leaks: []string{"not-base64-secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.path
			if p == "" && tt.file != "" {
				p = writeFile(t, "c.toml", tt.file)
			}
			_, err := loadConfig(p, tt.env)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, l := range tt.leaks {
				if strings.Contains(err.Error(), l) {
					t.Errorf("error %q leaks %q", err, l)
				}
			}
		})
	}
}

func TestSecretFromFile(t *testing.T) {
	p := writeFile(t, "key", "  horde-key-from-file \n")
	cfg, err := loadConfig("", []string{"HORDECHAT_HORDE__API_KEY_FILE=" + p})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Horde.APIKey != "horde-key-from-file" {
		t.Errorf("api key = %q", cfg.Horde.APIKey)
	}
}

func TestRedactedSettingsHideSecrets(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Horde.APIKey = "super-secret-key"
	cfg.Discord.Token = "discord-token-value"
	lines := strings.Join(redactedSettings(cfg), "\n")
	for _, s := range []string{"super-secret-key", "discord-token-value"} {
		if strings.Contains(lines, s) {
			t.Errorf("settings leak %q:\n%s", s, lines)
		}
	}
	for _, want := range []string{"horde.api_key = (set)", "discord.token = (set)", "matrix.password = (unset)", `horde.timeout = "30s"`, `http.listen = "127.0.0.1:8080"`, "storage.max_open_conns = 4"} {
		if !strings.Contains(lines, want) {
			t.Errorf("settings lack %q:\n%s", want, lines)
		}
	}
}
