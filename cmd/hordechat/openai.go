package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hordechat/hordechat/bridge"
	"github.com/hordechat/hordechat/bridge/openai"
	"github.com/hordechat/hordechat/hordeapi"
	"github.com/hordechat/hordechat/storage"
)

// tokenStore resolves personal /v1 tokens for bridge/openai.
type tokenStore struct{ s *storage.Store }

func (t tokenStore) LookupToken(ctx context.Context, token string) (openai.TokenUser, error) {
	u, _, err := t.s.UserByAPIToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return openai.TokenUser{}, openai.ErrUnknownToken
	}
	if err != nil {
		return openai.TokenUser{}, err
	}
	return openai.TokenUser{Platform: u.Platform, PlatformUserID: u.PlatformUserID, StoreUserID: u.ID}, nil
}

// ready is /readyz: the database answers and the Horde's model list is
// loaded and fresh.
func (a *App) ready(ctx context.Context) error {
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	snap := a.bridge.Models().Snapshot()
	switch {
	case snap.UpdatedAt.IsZero():
		return errors.New("horde: model list not loaded yet")
	case snap.Stale:
		return errors.New("horde: the last model refresh failed")
	}
	return nil
}

// printOpencode writes an opencode.json provider block for the models that
// have workers now, pointing at this server's /v1.
func printOpencode(ctx context.Context, cfg Config, baseURL string, w io.Writer) error {
	if baseURL == "" {
		baseURL = cfg.OpenAI.PublicBaseURL
	}
	if baseURL == "" {
		baseURL = "http://" + cfg.HTTP.Listen
	}
	client, err := hordeapi.New(cfg.Horde, hordeapi.WithVersion(version()))
	if err != nil {
		return err
	}
	models := bridge.NewModels(client, nil)
	if err := models.Refresh(ctx); err != nil {
		return fmt.Errorf("load the Horde's models: %w", err)
	}
	var live []bridge.ModelInfo
	for _, m := range models.Snapshot().Models {
		if m.Workers > 0 {
			live = append(live, m)
		}
	}
	out, err := openai.OpencodeConfig(baseURL, live)
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}
