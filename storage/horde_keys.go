package storage

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// LinkedKey is a user's linked AI Horde API key, decrypted. Its String,
// GoString and LogValue methods hide Key, so printing or logging a LinkedKey
// does not leak it; use the Key field only to call the Horde.
type LinkedKey struct {
	Key      string // the Horde API key, in clear
	Username string // Horde "alias#id", as find_user reported it when linked
	UserID   int64  // Horde numeric user id
	LinkedAt time.Time
}

// String describes the linked key without the key itself.
func (k LinkedKey) String() string {
	return fmt.Sprintf("{Key:%s Username:%q UserID:%d LinkedAt:%s}",
		redact(k.Key), k.Username, k.UserID, k.LinkedAt.Format(time.RFC3339))
}

// GoString is String for %#v.
func (k LinkedKey) GoString() string { return "storage.LinkedKey" + k.String() }

// LogValue keeps the key out of logs.
func (k LinkedKey) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("key", redact(k.Key)),
		slog.String("username", k.Username),
		slog.Int64("user_id", k.UserID),
		slog.Time("linked_at", k.LinkedAt),
	)
}

// hordeKeyAAD binds a sealed key to its row: a value copied to another
// user's row does not decrypt.
func hordeKeyAAD(userID int64) string {
	return "horde_key:" + strconv.FormatInt(userID, 10)
}

// LinkHordeKey stores (or replaces) a user's Horde API key, encrypted, with
// the Horde account it belongs to. It returns ErrNotFound if the user does
// not exist.
func (s *Store) LinkHordeKey(ctx context.Context, userID int64, apiKey, hordeUsername string, hordeUserID int64) error {
	if apiKey == "" {
		return fmt.Errorf("link horde key for user %d: empty key: %w", userID, ErrInvalid)
	}
	sealed := s.sealer.seal([]byte(apiKey), hordeKeyAAD(userID))
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO horde_keys (user_id, key_sealed, horde_username, horde_user_id, linked_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (user_id) DO UPDATE
			SET key_sealed = excluded.key_sealed, horde_username = excluded.horde_username,
			    horde_user_id = excluded.horde_user_id, linked_at = excluded.linked_at`,
			userID, sealed, hordeUsername, hordeUserID, s.nowMS())
		return err
	})
	if isForeignKeyViolation(err) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("link horde key for user %d: %w", userID, err)
	}
	return nil
}

// HordeKey returns a user's linked key, decrypted, or ErrNotFound when none
// is linked. ErrDecrypt means the stored value was tampered with.
func (s *Store) HordeKey(ctx context.Context, userID int64) (LinkedKey, error) {
	var (
		k      LinkedKey
		sealed []byte
		linked int64
	)
	err := s.db.QueryRowContext(ctx,
		"SELECT key_sealed, horde_username, horde_user_id, linked_at FROM horde_keys WHERE user_id = ?", userID).
		Scan(&sealed, &k.Username, &k.UserID, &linked)
	if err != nil {
		return LinkedKey{}, fmt.Errorf("get horde key for user %d: %w", userID, notFound(err))
	}
	key, err := s.sealer.open(sealed, hordeKeyAAD(userID))
	if err != nil {
		return LinkedKey{}, fmt.Errorf("get horde key for user %d: %w", userID, err)
	}
	k.Key, k.LinkedAt = string(key), fromMS(linked)
	return k, nil
}

// UnlinkHordeKey deletes a user's linked key and reports whether there was
// one.
func (s *Store) UnlinkHordeKey(ctx context.Context, userID int64) (bool, error) {
	n, err := s.execCount(ctx, "DELETE FROM horde_keys WHERE user_id = ?", userID)
	if err != nil {
		return false, fmt.Errorf("unlink horde key for user %d: %w", userID, err)
	}
	return n > 0, nil
}
