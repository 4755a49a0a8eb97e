package backup

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"homeostat.dev/homeostat/backup/pgbin"
)

// RestoreOptions says what to restore where.
type RestoreOptions struct {
	// To is the new data directory; it must be absent or empty.
	To string
	// BackupID names the backup; empty picks the newest that fits Target.
	BackupID string
	Target   Target
	// RestoreCommand fetches archived WAL (see RestoreCommand).
	RestoreCommand string
	// Parallel is how many parts download (and decompress) at once
	// (DefaultParallel when 0).
	Parallel int
	Log      *slog.Logger
}

// Restore writes a new data directory from a base backup and configures it to
// recover from the WAL archive up to the target and then promote: the
// recovery settings are appended to postgresql.auto.conf and recovery.signal
// is created, so starting postgres on the directory performs the recovery.
// On failure the directory is removed again, so nothing half-restored remains.
func Restore(ctx context.Context, s Store, opts RestoreOptions) (*Manifest, error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	backups, _, err := List(ctx, s)
	if err != nil {
		return nil, err
	}
	m, err := SelectBackup(backups, opts.BackupID, opts.Target)
	if err != nil {
		return nil, err
	}
	if err := emptyDir(opts.To); err != nil {
		return nil, err
	}
	start := time.Now()
	log.Info("restoring base backup", "backup", m.ID, "to", opts.To)
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel()
	}
	// A spool of prefetched WAL left beside an earlier directory of this
	// name belongs to another recovery.
	_ = os.RemoveAll(DefaultSpoolDir(opts.To))
	if err := restoreFiles(ctx, s, m, opts.To, opts.Parallel); err != nil {
		_ = os.RemoveAll(opts.To)
		return nil, err
	}
	if err := writeRecoveryConf(opts.To, opts.RestoreCommand, opts.Target); err != nil {
		_ = os.RemoveAll(opts.To)
		return nil, err
	}
	if err := pgbin.Chown(opts.To); err != nil {
		_ = os.RemoveAll(opts.To)
		return nil, err
	}
	log.Info("base backup restored", "backup", m.ID, "to", opts.To, "seconds", time.Since(start).Seconds())
	return m, nil
}

func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return fmt.Errorf("restore to %s: %w", dir, err)
	case len(entries) > 0:
		return fmt.Errorf("restore to %s: directory is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("restore to %s: %w", dir, err)
	}
	return os.Chmod(dir, 0o700)
}

// restoreFiles downloads the parts on parallel workers, checking each one's
// sha256, and feeds them in order through zstd into the tar extractor. Framed
// parts (see Manifest.FramedParts) are also decompressed on the workers, so
// download, decompression and extraction all overlap.
func restoreFiles(ctx context.Context, s Store, m *Manifest, dir string, parallel int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(fetchParts(ctx, s, m, parallel, pw)) }()
	defer func() { _ = pr.Close() }()
	var src io.Reader = pr
	if !m.FramedParts {
		dec, err := zstd.NewReader(pr)
		if err != nil {
			return err
		}
		defer dec.Close()
		src = dec
	}
	if err := extractTar(src, dir); err != nil {
		return fmt.Errorf("restore backup %s: %w", m.ID, err)
	}
	// Consume the rest so a corrupt last part still surfaces as an error.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return fmt.Errorf("restore backup %s: %w", m.ID, err)
	}
	for _, d := range []string{"pg_wal/archive_status", "pg_tblspc", "pg_replslot"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// extractTar writes a pg_basebackup tar into dir, refusing paths that leave it.
func extractTar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("tar entry %q leaves the data directory", h.Name)
		}
		target := filepath.Join(dir, name)
		mode := os.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", target, err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		default:
			return fmt.Errorf("tar entry %q: unsupported type %c", h.Name, h.Typeflag)
		}
	}
}

// RecoveryMarker starts the block of recovery settings Restore appends to
// postgresql.auto.conf; the block ends at the next blank line. Once recovery
// is over the block must go (see instance.Init and instance.Join): a standby
// made from this directory would otherwise stop at the old target and
// promote itself.
const RecoveryMarker = "# homeostat backup restore"

// RecoverySettings are the postgresql.conf lines that make a restored
// directory replay archived WAL up to the target and then promote.
func RecoverySettings(restoreCommand string, t Target) []string {
	lines := []string{
		"restore_command = " + QuoteConf(restoreCommand),
		"recovery_target_timeline = 'latest'",
		"recovery_target_action = 'promote'",
	}
	switch {
	case t.Immediate:
		lines = append(lines, "recovery_target = 'immediate'")
	case !t.Time.IsZero():
		lines = append(lines, "recovery_target_time = "+QuoteConf(t.Time.UTC().Format("2006-01-02 15:04:05.999999")+"+00"))
	case t.LSN != "":
		lines = append(lines, "recovery_target_lsn = "+QuoteConf(t.LSN))
	}
	return lines
}

func writeRecoveryConf(dir, restoreCommand string, t Target) error {
	p := filepath.Join(dir, "postgresql.auto.conf")
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write recovery settings to %s: %w", p, err)
	}
	text := "\n" + RecoveryMarker + "\n" + strings.Join(RecoverySettings(restoreCommand, t), "\n") + "\n"
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return fmt.Errorf("write recovery settings to %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	sig := filepath.Join(dir, "recovery.signal")
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", sig, err)
	}
	return nil
}
