package tail

import (
	"context"
	"database/sql"
	"fmt"
)

// pin starts the read transaction that stops any other connection from
// restarting the WAL past frames the tail has not read.
func (t *Tail) pin(ctx context.Context) error {
	tx, err := beginRead(ctx, t.pinConns[t.pinIdx])
	if err != nil {
		return fmt.Errorf("pin wal: %w", err)
	}
	t.pinTx = tx
	return nil
}

func beginRead(ctx context.Context, conn *sql.Conn) (*sql.Tx, error) {
	// database/sql rolls a transaction back when its context ends; the pin
	// must outlive the call that took it.
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(1) FROM sqlite_master").Scan(&n); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// advancePin moves the pin to the WAL's current end without the write lock,
// so that checkpoints may backfill further. The new read transaction starts
// while the old one still holds the log; the tail reads the log to its end
// before letting the old one go. If the new one reads the database file only
// (everything was backfilled), SQLite may then restart the log once, and every
// frame before that restart has been read.
func (t *Tail) advancePin(ctx context.Context) error {
	if t.pinTx == nil {
		return ErrNotPinned
	}
	next := 1 - t.pinIdx
	conn, err := t.spare(ctx)
	if err != nil {
		return fmt.Errorf("advance wal pin: %w", err)
	}
	tx, err := beginRead(ctx, conn)
	if err != nil {
		return fmt.Errorf("advance wal pin: %w", err)
	}
	if err := t.Scan(); err != nil {
		tx.Rollback()
		return err
	}
	old := t.pinTx
	t.pinTx, t.pinIdx = tx, next
	if err := old.Rollback(); err != nil {
		return fmt.Errorf("advance wal pin: %w", err)
	}
	return nil
}

// spare returns the connection that does not hold the pin, opening it again
// if it was released.
func (t *Tail) spare(ctx context.Context) (*sql.Conn, error) {
	i := 1 - t.pinIdx
	if t.pinConns[i] == nil {
		conn, err := t.newConn(ctx)
		if err != nil {
			return nil, err
		}
		t.pinConns[i] = conn
	}
	return t.pinConns[i], nil
}

// ReleaseSpare closes the connection that does not hold the pin: a quiet
// database needs it once a checkpoint interval, and it holds ~60 KB of
// SQLite's memory, which a thousand databases in one process notice.
func (t *Tail) ReleaseSpare() {
	i := 1 - t.pinIdx
	if c := t.pinConns[i]; c != nil {
		c.Close()
		t.pinConns[i] = nil
	}
}

func (t *Tail) unpin() error {
	if t.pinTx == nil {
		return nil
	}
	err := t.pinTx.Rollback()
	t.pinTx = nil
	return err
}
