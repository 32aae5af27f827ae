package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/hordechat/hordechat/bridge"
)

// opencode's configuration, as far as a provider block goes
// (https://opencode.ai/config.json).
type opencodeFile struct {
	Schema   string                      `json:"$schema"`
	Provider map[string]opencodeProvider `json:"provider"`
}

type opencodeProvider struct {
	NPM     string                   `json:"npm"`
	Name    string                   `json:"name"`
	Options opencodeOptions          `json:"options"`
	Models  map[string]opencodeModel `json:"models"`
}

type opencodeOptions struct {
	BaseURL string `json:"baseURL"`
	APIKey  string `json:"apiKey"`
}

type opencodeModel struct {
	Name string `json:"name"`
	// ToolCall is false: the Horde has no tool calling, and /v1 refuses
	// requests that carry tools.
	ToolCall bool          `json:"tool_call"`
	Limit    opencodeLimit `json:"limit"`
}

type opencodeLimit struct {
	Context int `json:"context"`
	Output  int `json:"output"`
}

// OpencodeConfig returns an opencode.json with a "hordechat" provider
// (@ai-sdk/openai-compatible) at baseURL (the /v1 base) listing models
// with their context and output limits. The API key is read from the
// HORDECHAT_TOKEN environment variable, so the file holds no secret.
func OpencodeConfig(baseURL string, models []bridge.ModelInfo) ([]byte, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("opencode config: the base URL must be an http(s) URL such as http://127.0.0.1:8080/v1")
	}
	base := strings.TrimRight(baseURL, "/")
	if !strings.HasSuffix(base, "/v1") {
		base += "/v1"
	}
	p := opencodeProvider{
		NPM:     "@ai-sdk/openai-compatible",
		Name:    "hordechat (AI Horde)",
		Options: opencodeOptions{BaseURL: base, APIKey: "{env:HORDECHAT_TOKEN}"},
		Models:  map[string]opencodeModel{},
	}
	for _, m := range models {
		ctx, out := m.MaxContextLength, m.MaxLength
		if ctx <= 0 {
			ctx = 4096 // the Horde's usual worker default
		}
		if out <= 0 {
			out = 512
		}
		p.Models[m.Name] = opencodeModel{Name: m.Name + " (AI Horde)", Limit: opencodeLimit{Context: ctx, Output: out}}
	}
	f := opencodeFile{Schema: "https://opencode.ai/config.json", Provider: map[string]opencodeProvider{"hordechat": p}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
