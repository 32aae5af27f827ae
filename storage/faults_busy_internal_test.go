package storage

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// isBusy must see through SQLite's extended codes: in WAL mode a deferred
// transaction whose snapshot went stale fails with SQLITE_BUSY_SNAPSHOT,
// not plain SQLITE_BUSY, and the retry must still apply; SQLITE_LOCKED too.
func TestFaultIsBusyExtendedCodes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	stale, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	other, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	mustExec := func(c *sql.Conn, q string) {
		t.Helper()
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(stale, "BEGIN") // deferred: a read snapshot first
	var n int
	if err := stale.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	mustExec(other, "INSERT INTO t VALUES (1)")
	_, err = stale.ExecContext(ctx, "INSERT INTO t VALUES (2)")
	mustExec(stale, "ROLLBACK")

	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code() != sqlite3.SQLITE_BUSY_SNAPSHOT {
		t.Fatalf("upgrade of a stale snapshot = %v, want SQLITE_BUSY_SNAPSHOT", err)
	}
	if !isBusy(err) {
		t.Errorf("isBusy(%v) = false, want true", err)
	}

	// SQLITE_LOCKED: a table dropped while the same connection reads it.
	mustExec(other, "INSERT INTO t VALUES (3)")
	rows, err := other.QueryContext(ctx, "SELECT x FROM t")
	if err != nil {
		t.Fatal(err)
	}
	rows.Next()
	_, err = other.ExecContext(ctx, "DROP TABLE t")
	rows.Close()
	if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_LOCKED {
		t.Fatalf("DROP of a table being read = %v, want SQLITE_LOCKED", err)
	}
	if !isBusy(err) {
		t.Errorf("isBusy(%v) = false, want true", err)
	}
	for _, notBusy := range []error{nil, context.Canceled, ErrNotFound, sql.ErrNoRows} {
		if isBusy(notBusy) {
			t.Errorf("isBusy(%v) = true", notBusy)
		}
	}
}
