package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// errArchiveFailing is why a base backup stops: it needs WAL that the
// server does not manage to archive, and would wait for it forever.
var errArchiveFailing = errors.New("WAL archiving fails on the server")

// guardArchiving makes `backup push` fail fast, with the archiver's last
// error, when the server's archive_command fails: before the backup starts,
// and while it runs (two failing checks in a row, 5 s apart, cancel the
// returned context with the cause). A server it cannot ask (no access to
// the postgres database) is not guarded.
func guardArchiving(ctx context.Context, host string, port int, user string) (context.Context, func(), error) {
	// PGSSLMODE and PGSSLROOTCERT, as pg_basebackup reads them (a backup
	// Job sets verify-full with the cluster CA), else prefer.
	sslmode := os.Getenv("PGSSLMODE")
	if sslmode == "" {
		sslmode = "prefer"
	}
	db, err := sql.Open("postgres", fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=%s connect_timeout=10 application_name=homeostat-backup",
		host, port, user, sslmode))
	if err != nil {
		return ctx, func() {}, nil
	}
	db.SetMaxOpenConns(1)
	failing, err := archiveFailure(ctx, db)
	if err != nil {
		db.Close()
		slog.Warn("cannot read pg_stat_archiver; the backup is not guarded against failing archiving", "err", err)
		return ctx, func() {}, nil
	}
	if failing != "" {
		db.Close()
		return ctx, func() {}, fmt.Errorf("%w: %s", errArchiveFailing, failing)
	}
	gctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer db.Close()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		strikes := 0
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			f, err := archiveFailure(gctx, db)
			if err != nil || f == "" {
				strikes = 0
				continue
			}
			if strikes++; strikes >= 2 {
				cancel(fmt.Errorf("%w: %s", errArchiveFailing, f))
				return
			}
		}
	}()
	return gctx, func() { close(done); cancel(nil) }, nil
}

// archiveFailure describes the archiver's last error when its last attempt
// failed ("" when it did not).
func archiveFailure(ctx context.Context, db *sql.DB) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var failed int64
	var wal string
	var lastFailed, lastArchived sql.NullTime
	err := db.QueryRowContext(ctx, `SELECT failed_count, coalesce(last_failed_wal, ''), last_failed_time, last_archived_time FROM pg_stat_archiver`).
		Scan(&failed, &wal, &lastFailed, &lastArchived)
	if err != nil {
		return "", err
	}
	if !lastFailed.Valid || (lastArchived.Valid && !lastFailed.Time.After(lastArchived.Time)) {
		return "", nil
	}
	return fmt.Sprintf("archive_command failed %d times, last for %s at %s (see the server's log); a base backup needs its WAL archived",
		failed, wal, lastFailed.Time.UTC().Format(time.RFC3339)), nil
}
