package storage

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// migrationFiles holds the schema history: NNNN_name.sql, numbered from 1
// without gaps. Never edit an applied migration; add a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order.
func migrations() ([]migration, error) {
	dir, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	return loadMigrations(dir)
}

// loadMigrations reads the .sql files at the root of fsys, checking their
// numbering.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".") // sorted by name
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("read migrations: %s: name must be NNNN_description.sql", e.Name())
		}
		if version != len(ms)+1 {
			return nil, fmt.Errorf("read migrations: %s: want version %d next", e.Name(), len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migrations: %w", err)
		}
		ms = append(ms, migration{version: version, name: e.Name(), sql: string(b)})
	}
	return ms, nil
}

// migrate brings the schema up to date and returns its version. The version
// lives in PRAGMA user_version; each migration and its version bump commit
// together, so a failed migration leaves the previous version intact, and
// reopening an up-to-date database does nothing.
func (s *Store) migrate(ctx context.Context) (int, error) {
	ms, err := migrations()
	if err != nil {
		return 0, err
	}
	var current int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if current > len(ms) {
		return 0, fmt.Errorf("%w: the database has schema version %d, this build knows versions up to %d; run a newer hordechat or restore a backup", ErrSchemaTooNew, current, len(ms))
	}
	for _, m := range ms[current:] {
		applied := false
		err := s.write(ctx, func(tx *sql.Tx) error {
			applied = false // a retried attempt starts over
			// Re-read under the write lock: another process may have
			// migrated meanwhile.
			var v int
			if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
				return err
			}
			if v >= m.version {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			// PRAGMA takes no bound parameters; the version is our own int.
			_, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(m.version))
			applied = err == nil
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("apply migration %s: %w", m.name, err)
		}
		if applied {
			s.log.Info("applied migration", "version", m.version, "name", m.name)
		}
	}
	return len(ms), nil
}
