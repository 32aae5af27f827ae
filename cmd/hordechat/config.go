package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/hordechat/hordechat/bot"
	"github.com/hordechat/hordechat/bot/discord"
	"github.com/hordechat/hordechat/bot/matrix"
	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/openai"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/storage"
)

// envPrefix starts every environment override: HORDECHAT_HORDE__API_KEY
// sets horde.api_key.
const envPrefix = "HORDECHAT_"

// defaultConfigPath is read when --config is not given and the file exists.
const defaultConfigPath = "config.toml"

// maxSecretFile bounds a *_file secret; keys and tokens are short.
const maxSecretFile = 64 << 10

// Config is the whole configuration: one section per package.
type Config struct {
	Log     LogConfig       `koanf:"log"`
	HTTP    HTTPConfig      `koanf:"http"`
	Horde   hordeapi.Config `koanf:"horde"`
	Bridge  bridge.Config   `koanf:"bridge"`
	OpenAI  openai.Config   `koanf:"openai"`
	Storage storage.Config  `koanf:"storage"`
	Chat    bot.Config      `koanf:"chat"`
	Discord discord.Config  `koanf:"discord"`
	Matrix  matrix.Config   `koanf:"matrix"`
}

// LogConfig is the [log] section.
type LogConfig struct {
	Level  string `koanf:"level"`  // debug, info, warn, error
	Format string `koanf:"format"` // text or json
}

// HTTPConfig is the [http] section: the built-in listener.
type HTTPConfig struct {
	// Listen is the address of the built-in HTTP server; empty turns it off.
	Listen string `koanf:"listen"`
	// ReadHeaderTimeout bounds how long a client may take to send headers.
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	// ShutdownTimeout bounds the graceful shutdown of open requests.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
}

// DefaultConfig returns the embedded defaults: an anonymous Horde key, the
// SQLite file under ./data, HTTP on localhost, no chat platform.
func DefaultConfig() Config {
	return Config{
		Log:     LogConfig{Level: "info", Format: "text"},
		HTTP:    HTTPConfig{Listen: "127.0.0.1:8080", ReadHeaderTimeout: 10 * time.Second, ShutdownTimeout: 15 * time.Second},
		Horde:   hordeapi.DefaultConfig(),
		Bridge:  bridge.DefaultConfig(),
		OpenAI:  openai.DefaultConfig(),
		Storage: storage.DefaultConfig(),
		Chat:    bot.DefaultConfig(),
		Discord: discord.DefaultConfig(),
		Matrix:  matrix.DefaultConfig(),
	}
}

// Validate checks every section and names the first bad key.
func (c Config) Validate() error {
	if _, err := parseLevel(c.Log.Level); err != nil {
		return err
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("log.format %q: must be text or json", c.Log.Format)
	}
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			return fmt.Errorf("http.listen %q: must be host:port such as 127.0.0.1:8080 (empty turns the listener off)", c.HTTP.Listen)
		}
	}
	if c.HTTP.ReadHeaderTimeout <= 0 {
		return fmt.Errorf("http.read_header_timeout %s: must be positive, e.g. 10s", c.HTTP.ReadHeaderTimeout)
	}
	if c.HTTP.ShutdownTimeout <= 0 {
		return fmt.Errorf("http.shutdown_timeout %s: must be positive, e.g. 15s", c.HTTP.ShutdownTimeout)
	}
	for _, v := range []interface{ Validate() error }{c.Horde, c.Bridge, c.OpenAI, c.Storage, c.Chat, c.Discord, c.Matrix} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log.level %q: must be debug, info, warn or error", s)
	}
	return l, nil
}

// loadConfig layers defaults, the TOML file and HORDECHAT_ environment
// variables, resolves *_file secrets, and validates. Unknown keys are errors
// so typos never pass silently. path "" means ./config.toml when present.
func loadConfig(path string, environ []string) (Config, error) {
	keys := configKeys(reflect.TypeOf(Config{}))
	k := koanf.New(".")
	if path == "" {
		if _, err := os.Stat(defaultConfigPath); err == nil {
			path = defaultConfigPath
		}
	}
	if path != "" {
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), toml.Parser()); err != nil {
			// The TOML parser may quote the offending character raw (a
			// newline, say): keep the error on one line.
			return Config{}, fmt.Errorf("read config %s: %s", escapeControl(path), escapeControl(err.Error()))
		}
		if err := keys.check(fk.Keys(), func(key string) string { return fmt.Sprintf("%s in %s", key, path) }); err != nil {
			return Config{}, err
		}
		if err := k.Merge(fk); err != nil {
			return Config{}, fmt.Errorf("merge config %s: %w", path, err)
		}
	}
	envNames := map[string]string{}
	ek := koanf.New(".")
	err := ek.Load(env.Provider(".", env.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			key := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, envPrefix), "__", "."))
			envNames[key] = name
			return key, value
		},
	}), nil)
	if err != nil {
		return Config{}, fmt.Errorf("read environment: %w", err)
	}
	if err := keys.check(ek.Keys(), func(key string) string { return fmt.Sprintf("%s (from environment variable %s)", key, envNames[key]) }); err != nil {
		return Config{}, err
	}
	if err := k.Merge(ek); err != nil {
		return Config{}, fmt.Errorf("merge environment: %w", err)
	}
	if err := resolveSecretFiles(k, keys); err != nil {
		return Config{}, err
	}
	if err := keys.checkTypes(k); err != nil {
		return Config{}, err
	}
	cfg := DefaultConfig()
	err = k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc()),
		WeaklyTypedInput: true,
		Result:           &cfg,
	}})
	if err != nil {
		return Config{}, fmt.Errorf("config: %s", cleanDecodeError(err))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// resolveSecretFiles replaces every secret_key_file with the file's content
// under secret_key. Giving both is an error: which one wins would surprise.
func resolveSecretFiles(k *koanf.Koanf, keys keySet) error {
	for _, fk := range k.Keys() {
		if !strings.HasSuffix(fk, "_file") {
			continue
		}
		base := strings.TrimSuffix(fk, "_file")
		p := k.String(fk)
		k.Delete(fk)
		if p == "" {
			continue
		}
		if k.String(base) != "" {
			return fmt.Errorf("config: %s and %s are both set; keep one", base, fk)
		}
		raw, err := readSecretFile(p)
		if err != nil {
			return fmt.Errorf("config: %s: %w", fk, err)
		}
		if err := k.Set(base, raw); err != nil {
			return fmt.Errorf("config: %s: %w", fk, err)
		}
	}
	return nil
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open secret file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, maxSecretFile+1)
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return "", fmt.Errorf("read secret file %s: %w", path, err)
	}
	if n > maxSecretFile {
		return "", fmt.Errorf("secret file %s is larger than %d bytes; it should hold only the secret", path, maxSecretFile)
	}
	s := strings.TrimSpace(string(buf[:n]))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

// keySet knows every configuration key, which ones are secrets, and which
// prefixes are open maps.
type keySet struct {
	leaves  map[string]bool // key -> is secret
	types   map[string]reflect.Type
	ordered []string
}

func configKeys(t reflect.Type) keySet {
	ks := keySet{leaves: map[string]bool{}, types: map[string]reflect.Type{}}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("koanf")
			if tag == "" || tag == "-" {
				continue
			}
			key := prefix + tag
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
				walk(f.Type, key+".")
				continue
			}
			ks.leaves[key] = f.Tag.Get("secret") == "true"
			ks.types[key] = f.Type
			ks.ordered = append(ks.ordered, key)
		}
	}
	walk(t, "")
	return ks
}

// check returns an error for the first unknown key, with a suggestion.
// A secret may also be given as <key>_file.
func (ks keySet) check(keys []string, where func(string) string) error {
	sort.Strings(keys)
	// A quoted TOML key may hold newlines or control characters: escape
	// them so the error stays on one line.
	plainWhere := where
	where = func(key string) string { return escapeControl(plainWhere(key)) }
	for _, key := range keys {
		if _, ok := ks.leaves[key]; ok {
			continue
		}
		if base, ok := strings.CutSuffix(key, "_file"); ok {
			if secret, known := ks.leaves[base]; known && secret {
				continue
			}
			if _, known := ks.leaves[base]; known {
				return fmt.Errorf("config: unknown key %s: only secrets can be read from a file (%s)", where(key), strings.Join(ks.secrets(), ", "))
			}
		}
		msg := fmt.Sprintf("config: unknown key %s", where(key))
		if s := ks.suggest(key); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		return errors.New(msg + "; config.example.toml lists every key")
	}
	return nil
}

// checkTypes checks each value against its field's type before decoding,
// so an error can show the bad value and an example of a good one.
func (ks keySet) checkTypes(k *koanf.Koanf) error {
	durationType := reflect.TypeOf(time.Duration(0))
	for _, key := range k.Keys() {
		t, ok := ks.types[key]
		if !ok {
			continue
		}
		v := k.Get(key)
		shown := fmt.Sprintf("%q", fmt.Sprint(v))
		if ks.leaves[key] {
			shown = "(value not shown)"
		}
		var bad string
		switch {
		case t == durationType:
			if s, isStr := v.(string); !isStr {
				bad = "must be a quoted duration with a unit, such as \"30s\", \"5m\" or \"2h\""
			} else if _, err := time.ParseDuration(s); err != nil {
				bad = "is not a duration; use a number with a unit, such as 30s, 5m or 2h"
			}
		case t.Kind() == reflect.Int:
			switch x := v.(type) {
			case int64:
			case float64:
				if x != float64(int64(x)) {
					bad = "must be a whole number"
				}
			case string:
				if _, err := strconv.Atoi(strings.TrimSpace(x)); err != nil {
					bad = "must be a whole number"
				}
			default:
				bad = "must be a whole number"
			}
		case t.Kind() == reflect.Bool:
			switch x := v.(type) {
			case bool:
			case string:
				if _, err := strconv.ParseBool(strings.TrimSpace(x)); err != nil {
					bad = "must be true or false"
				}
			default:
				bad = "must be true or false"
			}
		case t.Kind() == reflect.String:
			switch v.(type) {
			case string, int64, float64, bool:
			default:
				bad = "must be a single value, not a list or table"
			}
		}
		if bad != "" {
			return fmt.Errorf("config: %s %s: %s", key, shown, bad)
		}
	}
	return nil
}

func (ks keySet) secrets() []string {
	var out []string
	for _, k := range ks.ordered {
		if ks.leaves[k] {
			out = append(out, k)
		}
	}
	return out
}

// suggest returns the known key closest to key, if it is close enough.
func (ks keySet) suggest(key string) string {
	best, bestD := "", 4
	for _, k := range ks.ordered {
		if d := levenshtein.ComputeDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// escapeControl escapes newlines and other unprintable characters, as Go
// string literals do, so that an error stays on one line.
func escapeControl(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// cleanDecodeError turns mapstructure's multi-line error into one line.
func cleanDecodeError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "decoding failed due to the following error(s):")
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "'", "")
}

// redactedSettings lists every key with its effective value, secrets
// shown only as set or unset, for check-config.
func redactedSettings(cfg Config) []string {
	ks := configKeys(reflect.TypeOf(cfg))
	flat := map[string]any{}
	flatten(reflect.ValueOf(cfg), "", flat)
	out := make([]string, 0, len(ks.ordered))
	for _, key := range ks.ordered {
		v := flat[key]
		if ks.leaves[key] {
			if s, _ := v.(string); s != "" {
				v = "(set)"
			} else {
				v = "(unset)"
			}
			out = append(out, fmt.Sprintf("%s = %s", key, v))
			continue
		}
		out = append(out, fmt.Sprintf("%s = %s", key, formatValue(v)))
	}
	return out
}

func flatten(v reflect.Value, prefix string, out map[string]any) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			flatten(fv, prefix+tag+".", out)
			continue
		}
		out[prefix+tag] = fv.Interface()
	}
}

func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case time.Duration:
		return fmt.Sprintf("%q", x.String())
	default:
		return fmt.Sprint(x)
	}
}
