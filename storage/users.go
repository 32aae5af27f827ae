package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// User is one identity on one chat platform.
type User struct {
	ID             int64
	Platform       string // e.g. "discord", "matrix"
	PlatformUserID string // the platform's own id for the user
	DisplayName    string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

const userColumns = "id, platform, platform_user_id, display_name, created_at, updated_at"

func scanUser(row scanner) (User, error) {
	var u User
	var created, updated int64
	if err := row.Scan(&u.ID, &u.Platform, &u.PlatformUserID, &u.DisplayName, &created, &updated); err != nil {
		return User{}, err
	}
	u.CreatedAt, u.UpdatedAt = fromMS(created), fromMS(updated)
	return u, nil
}

// UpsertUser returns the user for a platform identity, creating it on first
// sight and updating its display name when it changed.
func (s *Store) UpsertUser(ctx context.Context, platform, platformUserID, displayName string) (User, error) {
	if platform == "" || platformUserID == "" {
		return User{}, fmt.Errorf("upsert user: platform and platform user id are required: %w", ErrInvalid)
	}
	// This runs for every incoming message: the common case, an unchanged
	// user, is a read and takes no write lock.
	u, err := s.UserByPlatformID(ctx, platform, platformUserID)
	switch {
	case err == nil && u.DisplayName == displayName:
		return u, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return User{}, fmt.Errorf("upsert user: %w", err)
	}
	now := s.nowMS()
	err = s.write(ctx, func(tx *sql.Tx) error {
		u, err = scanUser(tx.QueryRowContext(ctx, `
			INSERT INTO users (platform, platform_user_id, display_name, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (platform, platform_user_id) DO UPDATE
			SET display_name = excluded.display_name, updated_at = excluded.updated_at
			RETURNING `+userColumns,
			platform, platformUserID, displayName, now, now))
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("upsert user: %w", err)
	}
	return u, nil
}

// UserByID returns the user with the given id, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", id))
	if err != nil {
		return User{}, fmt.Errorf("get user %d: %w", id, notFound(err))
	}
	return u, nil
}

// UserByPlatformID returns the user for a platform identity, or ErrNotFound.
func (s *Store) UserByPlatformID(ctx context.Context, platform, platformUserID string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx,
		"SELECT "+userColumns+" FROM users WHERE platform = ? AND platform_user_id = ?", platform, platformUserID))
	if err != nil {
		return User{}, fmt.Errorf("get user %s:%s: %w", platform, platformUserID, notFound(err))
	}
	return u, nil
}
