package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Settings are a user's defaults for new requests. Nil sampler values mean
// "not set": the bridge's defaults apply.
type Settings struct {
	Model        string
	SystemPrompt string
	Temperature  *float64
	TopP         *float64
	MinP         *float64
	RepPen       *float64
	TopK         *int
	MaxTokens    *int
}

// samplerJSON is the stored form of the sampler knobs: one JSON object, so a
// new knob is a new field here and needs no migration.
type samplerJSON struct {
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	MinP        *float64 `json:"min_p,omitempty"`
	RepPen      *float64 `json:"rep_pen,omitempty"`
	TopK        *int     `json:"top_k,omitempty"`
	MaxTokens   *int     `json:"max_tokens,omitempty"`
}

// UserSettings returns a user's settings; a user who saved none gets the
// zero Settings and no error.
func (s *Store) UserSettings(ctx context.Context, userID int64) (Settings, error) {
	var (
		st      Settings
		sampler string
	)
	err := s.db.QueryRowContext(ctx,
		"SELECT model, system_prompt, sampler FROM user_settings WHERE user_id = ?", userID).
		Scan(&st.Model, &st.SystemPrompt, &sampler)
	if errors.Is(err, sql.ErrNoRows) {
		return Settings{}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("get settings for user %d: %w", userID, err)
	}
	var sj samplerJSON
	if err := json.Unmarshal([]byte(sampler), &sj); err != nil {
		return Settings{}, fmt.Errorf("get settings for user %d: decode sampler: %w", userID, err)
	}
	st.Temperature, st.TopP, st.MinP, st.RepPen = sj.Temperature, sj.TopP, sj.MinP, sj.RepPen
	st.TopK, st.MaxTokens = sj.TopK, sj.MaxTokens
	return st, nil
}

// SaveUserSettings replaces a user's settings. It returns ErrNotFound if the
// user does not exist.
func (s *Store) SaveUserSettings(ctx context.Context, userID int64, st Settings) error {
	sampler, err := json.Marshal(samplerJSON{
		Temperature: st.Temperature, TopP: st.TopP, MinP: st.MinP, RepPen: st.RepPen,
		TopK: st.TopK, MaxTokens: st.MaxTokens,
	})
	if err != nil { // NaN or ±Inf
		return fmt.Errorf("save settings for user %d: %v: %w", userID, err, ErrInvalid)
	}
	_, err = s.exec(ctx, `
		INSERT INTO user_settings (user_id, model, system_prompt, sampler, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE
		SET model = excluded.model, system_prompt = excluded.system_prompt,
		    sampler = excluded.sampler, updated_at = excluded.updated_at`,
		userID, st.Model, st.SystemPrompt, string(sampler), s.nowMS())
	if isForeignKeyViolation(err) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("save settings for user %d: %w", userID, err)
	}
	return nil
}
