package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// APITokenPrefix starts every personal API token, so a leaked token is
// recognisable (and secret scanners can match it).
const APITokenPrefix = "hc_"

const (
	apiTokenBytes = 32
	// apiTokenLen is the length of a token in clear: the prefix and the
	// unpadded base64url of 32 bytes.
	apiTokenLen = len(APITokenPrefix) + (apiTokenBytes*8+5)/6
	// lastUsedResolution bounds how often UserByAPIToken writes last_used_at,
	// so authenticating a burst of requests stays a read.
	lastUsedResolution = time.Minute
)

// APIToken describes a personal /v1 token. The token itself is shown once,
// by CreateAPIToken; only its SHA-256 is stored.
type APIToken struct {
	ID         int64
	UserID     int64
	Name       string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero if never used; updated at most once a minute
}

const apiTokenColumns = "id, user_id, name, created_at, last_used_at"

func scanAPIToken(row scanner, extra ...any) (APIToken, error) {
	var t APIToken
	var created int64
	var lastUsed sql.NullInt64
	dest := append([]any{&t.ID, &t.UserID, &t.Name, &created, &lastUsed}, extra...)
	if err := row.Scan(dest...); err != nil {
		return APIToken{}, err
	}
	t.CreatedAt, t.LastUsedAt = fromMS(created), fromNullMS(lastUsed)
	return t, nil
}

// hashAPIToken is the stored form of a token. Tokens carry 256 random bits,
// so an unsalted, fast hash is enough: there is nothing to brute-force.
func hashAPIToken(plaintext string) []byte {
	h := sha256.Sum256([]byte(plaintext))
	return h[:]
}

// CreateAPIToken makes a new personal token for a user. The plaintext is
// returned once and cannot be recovered later. It returns ErrNotFound if the
// user does not exist.
func (s *Store) CreateAPIToken(ctx context.Context, userID int64, name string) (string, APIToken, error) {
	raw := make([]byte, apiTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", APIToken{}, fmt.Errorf("create api token: %w", err)
	}
	plaintext := APITokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	var t APIToken
	err := s.write(ctx, func(tx *sql.Tx) (err error) {
		t, err = scanAPIToken(tx.QueryRowContext(ctx, `
			INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)
			RETURNING `+apiTokenColumns,
			userID, name, hashAPIToken(plaintext), s.nowMS()))
		return err
	})
	if isForeignKeyViolation(err) {
		err = ErrNotFound
	}
	if err != nil {
		return "", APIToken{}, fmt.Errorf("create api token for user %d: %w", userID, err)
	}
	return plaintext, t, nil
}

// UserByAPIToken authenticates a token and returns its user and metadata, or
// ErrNotFound for an unknown or revoked token. The lookup is by hash, so its
// timing reveals nothing usable about stored tokens.
func (s *Store) UserByAPIToken(ctx context.Context, plaintext string) (User, APIToken, error) {
	if len(plaintext) != apiTokenLen || !strings.HasPrefix(plaintext, APITokenPrefix) {
		return User{}, APIToken{}, fmt.Errorf("authenticate api token: %w", ErrNotFound)
	}
	var (
		u                        User
		userCreated, userUpdated int64
	)
	t, err := scanAPIToken(s.db.QueryRowContext(ctx, `
		SELECT t.id, t.user_id, t.name, t.created_at, t.last_used_at, u.id, u.platform, u.platform_user_id, u.display_name, u.created_at, u.updated_at
		FROM api_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = ?`, hashAPIToken(plaintext)),
		&u.ID, &u.Platform, &u.PlatformUserID, &u.DisplayName, &userCreated, &userUpdated)
	if err != nil {
		return User{}, APIToken{}, fmt.Errorf("authenticate api token: %w", notFound(err))
	}
	u.CreatedAt, u.UpdatedAt = fromMS(userCreated), fromMS(userUpdated)

	now := s.now()
	if t.LastUsedAt.IsZero() || now.Sub(t.LastUsedAt) >= lastUsedResolution {
		// Bookkeeping only: a failure to record it must not deny access,
		// nor a locked database hold it up beyond busy_timeout.
		if _, err := s.execOnce(ctx, "UPDATE api_tokens SET last_used_at = ? WHERE id = ?", now.UnixMilli(), t.ID); err != nil {
			s.log.Warn("cannot record api token use", "token_id", t.ID, "error", err)
		} else {
			t.LastUsedAt = fromMS(now.UnixMilli())
		}
	}
	return u, t, nil
}

// ListAPITokens returns a user's tokens, oldest first.
func (s *Store) ListAPITokens(ctx context.Context, userID int64) ([]APIToken, error) {
	ts, err := queryList(ctx, s.db, func(r scanner) (APIToken, error) { return scanAPIToken(r) },
		"SELECT "+apiTokenColumns+" FROM api_tokens WHERE user_id = ? ORDER BY id", userID)
	if err != nil {
		return nil, fmt.Errorf("list api tokens for user %d: %w", userID, err)
	}
	return ts, nil
}

// RevokeAPITokens deletes all of a user's tokens and returns how many there
// were.
func (s *Store) RevokeAPITokens(ctx context.Context, userID int64) (int, error) {
	n, err := s.execCount(ctx, "DELETE FROM api_tokens WHERE user_id = ?", userID)
	if err != nil {
		return 0, fmt.Errorf("revoke api tokens for user %d: %w", userID, err)
	}
	return int(n), nil
}
