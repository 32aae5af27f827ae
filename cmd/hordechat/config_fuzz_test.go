package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fuzzSecret is set as the operator's Horde key through the environment;
// no configuration error may repeat it.
const fuzzSecret = "fuzz-operator-secret-7f3a9c"

// FuzzLoadConfig loads arbitrary TOML through loadConfig: it must never
// panic, and every error must be one line that names the configuration
// (or the key at fault) without repeating a secret.
func FuzzLoadConfig(f *testing.F) {
	if example, err := os.ReadFile(examplePath); err == nil {
		f.Add(string(example))
	}
	seeds := []string{
		``,
		"[log]\nlevel = \"debug\"\nformat = \"json\"\n",
		"[log]\nlevel = \"loud\"\n",
		"[log]\nlevel = 3\n",
		"[http]\nlisten = \"\"\n",
		"[http]\nlisten = \"localhost\"\nread_header_timeout = \"-1s\"\n",
		"[http]\nread_header_timeout = 10\n",
		"[http]\nread_header_timeout = \"10 parsecs\"\n",
		"[http]\nshutdown_timeout = 1e400\n",
		"[horde]\nbase_url = \"ftp://example.com\"\nmax_retries = -1\n",
		"[horde]\nmax_retries = 2.5\n",
		"[horde]\nmax_retries = \"three\"\n",
		"[horde]\nmax_retries = 9223372036854775807\n",
		"[horde]\nmax_retries = 1e19\n",
		"[horde]\napi_key = [\"a\", \"b\"]\n",
		"[horde]\napi_key = { nested = true }\n",
		"[horde]\napi_key_file = \"/nonexistent/secret\"\n",
		"[horde]\napi_key_file = \"\"\n",
		"[horde]\ncontact_file = \"x\"\n",
		"[horde]\napi_kye = \"typo\"\n",
		"[bridge]\nmax_n = 0\nmax_tokens = 99999\ntrusted_workers = \"maybe\"\n",
		"[bridge]\ntrusted_workers = \"true\"\nstatus_calls_per_second = \"NaN\"\n",
		"[bridge]\nmodel_refresh = \"1h\"\njob_timeout = \"0s\"\n",
		"[unknown]\nkey = 1\n",
		"log = \"flat\"\n",
		"\"log\".\"level\" = \"info\"\n",
		"[log]\n\"le\\nvel\" = \"info\"\n",
		"[\"multi\nline\"]\n",
		"[log\nlevel = \"info\"\n",
		"[\n",
		"= \"no key\"\n",
		"[log]\nlevel = \"info\"\n[log]\nlevel = \"warn\"\n",
		"[[log]]\nlevel = \"info\"\n",
		"[log]\nlevel = \"\"\"\nmulti\nline\n\"\"\"\n",
		"[log]\nformat = \"te\\u0000xt\"\n",
		"\xff\xfe[log]\n",
		"[openai]\nlisten = \"127.0.0.1:0\"\n",
		"[storage]\npath = \"\"\n",
		"[discord]\ntoken = \"" + fuzzSecret + "x\"\n",
		"[matrix]\nhomeserver = \"not a url\"\n",
		"[chat]\nprefix = \"\"\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	keyLike := regexp.MustCompile(`[a-z_]+\.[a-z_]+`)
	f.Fuzz(func(t *testing.T, content string) {
		// A *_file secret is read from the path it names; keep the fuzzer
		// away from devices and pseudo-files that could block a read.
		if strings.Contains(content, "dev") || strings.Contains(content, "proc") || strings.Contains(content, "sys") ||
			strings.Contains(content, `\u`) || strings.Contains(content, `\U`) {
			t.Skip()
		}
		path := filepath.Join(t.TempDir(), "in.toml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		environ := []string{"HORDECHAT_HORDE__API_KEY=" + fuzzSecret}
		_, err := loadConfig(path, environ)
		if err == nil {
			return
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\n\r") {
			t.Fatalf("multi-line error for %q:\n%s", content, msg)
		}
		if !strings.Contains(msg, "config") && !keyLike.MatchString(msg) {
			t.Fatalf("error names neither the config nor a key for %q: %s", content, msg)
		}
		if !strings.Contains(content, fuzzSecret) && strings.Contains(msg, fuzzSecret) {
			t.Fatalf("error repeats the secret for %q: %s", content, msg)
		}
	})
}
