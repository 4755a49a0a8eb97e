package instance

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"homeostat.dev/homeostat/backup/pgbin"
)

// JoinOptions create a replica.
type JoinOptions struct {
	PGData string
	// Config.Primary must be set: host, port, user, slot, application name
	// and the passfile path to write.
	Config              Config
	ReplicationPassword string
	Log                 *slog.Logger
}

// DefaultPassFile is where Join keeps the replication password: beside the
// data directory, not in it, so base backups never carry it.
func DefaultPassFile(pgdata string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(pgdata)), "."+filepath.Base(filepath.Clean(pgdata))+".pgpass")
}

// Join makes PGData a streaming replica of Config.Primary: pg_basebackup with
// WAL streaming through a physical replication slot named after the instance
// (created on the primary, or reused when it exists), then homeostat's
// configuration with primary_conninfo and standby.signal. The password goes
// into a 0600 passfile. On a directory that already holds a cluster it only
// rewrites the configuration (a new primary_conninfo is applied on reload).
func Join(ctx context.Context, opts JoinOptions) error {
	log := logger(opts.Log)
	p := opts.Config.Primary
	if p == nil || p.Host == "" || p.Slot == "" {
		return fmt.Errorf("instance join %s: primary host and slot name are required", opts.PGData)
	}
	if p.PassFile == "" {
		p.PassFile = DefaultPassFile(opts.PGData)
	}
	if err := pgbin.WriteFile(p.PassFile, []byte(passfileLine(p.Host, p.Port, p.User, opts.ReplicationPassword))); err != nil {
		return fmt.Errorf("instance join: %w", err)
	}
	if c := opts.Config; c.TLSSource != "" {
		// The CA the base backup verifies the primary against.
		if _, err := installTLS(c.TLSSource, c.TLSDir); err != nil {
			return fmt.Errorf("instance join: %w", err)
		}
	}
	exists, err := hasCluster(opts.PGData)
	if err != nil {
		return err
	}
	if !exists {
		log.Info("instance join: base backup from the primary", "pgdata", opts.PGData, "primary", p.Host, "port", p.Port, "slot", p.Slot)
		if err := baseBackup(ctx, opts.PGData, p, true); err != nil && strings.Contains(err.Error(), "already exists") {
			log.Info("instance join: replication slot exists on the primary; reusing it", "slot", p.Slot)
			err = baseBackup(ctx, opts.PGData, p, false)
			if err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	} else {
		log.Info("instance join: data directory exists; rewriting configuration only", "pgdata", opts.PGData)
	}
	if err := writeConfig(opts.PGData, opts.Config); err != nil {
		return fmt.Errorf("instance join %s: %w", opts.PGData, err)
	}
	if err := pgbin.WriteFile(filepath.Join(opts.PGData, "standby.signal"), nil); err != nil {
		return fmt.Errorf("instance join %s: %w", opts.PGData, err)
	}
	return nil
}

func baseBackup(ctx context.Context, pgdata string, p *Upstream, createSlot bool) error {
	if err := os.RemoveAll(pgdata); err != nil {
		return err
	}
	if err := pgbin.PrepareDir(pgdata, 0o700); err != nil {
		return err
	}
	args := []string{"-D", pgdata, "-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", p.User, "-w",
		"-X", "stream", "--checkpoint=fast", "-S", p.Slot}
	if createSlot {
		args = append(args, "-C")
	}
	cmd, err := pgbin.Command(ctx, "pg_basebackup", args...)
	if err != nil {
		return err
	}
	cmd.Env = append(cmd.Env, "PGPASSFILE="+p.PassFile)
	if p.SSLRootCert != "" {
		cmd.Env = append(cmd.Env, "PGSSLMODE=verify-full", "PGSSLROOTCERT="+p.SSLRootCert)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_basebackup from %s:%d: %w: %s", p.Host, p.Port, err, strings.TrimSpace(string(out)))
	}
	return nil
}
