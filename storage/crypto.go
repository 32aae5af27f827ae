package storage

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

const (
	// keySize is the AES-256 data key size in bytes.
	keySize = 32
	// sealVersion prefixes every sealed value so the format (or the key) can
	// change later without guessing what a blob is.
	sealVersion byte = 1
	// metaKeyCheck is the meta row holding a value sealed at first open; if it
	// does not open, the configured key is not the database's key.
	metaKeyCheck = "key_check"
	keyCheckAAD  = "meta:key_check"
)

// keyCheckPlaintext is sealed as the key check value. It is not secret.
var keyCheckPlaintext = []byte("hordechat key check v1")

// sealer encrypts small secrets with AES-256-GCM. Each value gets a random
// 96-bit nonce, and the caller's additional data binds it to its row, so a
// sealed value copied to another row does not open.
type sealer struct {
	aead cipher.AEAD
	prk  []byte // HKDF pseudo-random key, for DeriveSecret
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("create cipher: key is %d bytes, want %d", len(key), keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("create cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("create cipher: %w", err)
	}
	prk, err := hkdf.Extract(sha256.New, key, []byte("hordechat derive v1"))
	if err != nil {
		return nil, fmt.Errorf("derive: %w", err)
	}
	return &sealer{aead: aead, prk: prk}, nil
}

// DeriveSecret returns a 32-byte secret derived from the data key for
// purpose (HKDF-SHA256): stable for as long as the key is, so other parts
// (the per-user Horde identities) need no key file of their own, and
// unrelated to the data key and to other purposes.
func (s *Store) DeriveSecret(purpose string) []byte {
	out, err := hkdf.Expand(sha256.New, s.sealer.prk, purpose, 32)
	if err != nil {
		panic("storage: hkdf expand of 32 bytes failed: " + err.Error()) // cannot happen for 32 bytes
	}
	return out
}

// seal returns version || nonce || ciphertext || tag.
func (s *sealer) seal(plaintext []byte, aad string) []byte {
	dst := make([]byte, 1, 1+len(plaintext)+s.aead.Overhead())
	dst[0] = sealVersion
	return s.aead.Seal(dst, nil, plaintext, []byte(aad))
}

// open reverses seal. It fails with ErrDecrypt when the value was sealed
// under another key or for another row, or was altered.
func (s *sealer) open(sealed []byte, aad string) ([]byte, error) {
	if len(sealed) < 1+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrDecrypt
	}
	plaintext, err := s.aead.Open(nil, nil, sealed[1:], []byte(aad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// setupEncryption resolves the data key and checks it against the key check
// value stored at first open, storing one if there is none yet.
func (s *Store) setupEncryption(ctx context.Context, cfg Config, dir string) error {
	var check []byte
	err := s.db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", metaKeyCheck).Scan(&check)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read key check: %w", err)
	}
	initialized := err == nil

	key, source, err := s.dataKey(cfg, dir, !initialized)
	if err != nil {
		return err
	}
	sl, err := newSealer(key)
	clear(key)
	if err != nil {
		return err
	}
	s.sealer = sl

	if !initialized {
		// Another process may initialise the same file at the same time:
		// insert only if absent, then verify whatever won.
		err := s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
				metaKeyCheck, sl.seal(keyCheckPlaintext, keyCheckAAD))
			if err != nil {
				return err
			}
			return tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", metaKeyCheck).Scan(&check)
		})
		if err != nil {
			return fmt.Errorf("store key check: %w", err)
		}
	}
	if _, err := sl.open(check, keyCheckAAD); err != nil {
		return fmt.Errorf("%w (key from %s); use the key the database was first opened with, or a new database path", ErrKeyMismatch, source)
	}
	s.log.Info("encryption key loaded", "source", source)
	return nil
}

// dataKey returns the data key and a description of where it came from. It
// creates the key file only for a database that has no sealed data yet, so a
// lost key file is reported instead of silently replaced.
func (s *Store) dataKey(cfg Config, dir string, mayCreate bool) (key []byte, source string, err error) {
	if cfg.EncryptionKey != "" {
		key, err := decodeKey(cfg.EncryptionKey)
		if err != nil {
			return nil, "", fmt.Errorf("decode storage.encryption_key: %w", err)
		}
		return key, "storage.encryption_key", nil
	}
	path := filepath.Join(dir, keyFileName)
	key, err = s.readKeyFile(path)
	switch {
	case err == nil:
		return key, "key file " + path, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, "", err
	case !mayCreate:
		return nil, "", fmt.Errorf("key file %s is missing, but this database was created with a key; restore the file or set storage.encryption_key: %w", path, fs.ErrNotExist)
	}
	key, err = createKeyFile(path)
	if errors.Is(err, fs.ErrExist) {
		// Lost a creation race with another process: use its key.
		key, err = s.readKeyFile(path)
	} else if err == nil {
		s.log.Warn("created a new encryption key file; back it up with the database", "path", path)
	}
	if err != nil {
		return nil, "", err
	}
	return key, "key file " + path, nil
}

func (s *Store) readKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("encryption key file is readable by group or others; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	key, err := decodeKey(string(b))
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	return key, nil
}

// createKeyFile writes a fresh random key, failing with fs.ErrExist if the
// file appeared meanwhile.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("write key file: %w", err)
	}
	return key, nil
}
