package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/backup/pgbin"
)

func init() { register(newBackupCommand) }

// s3Flags are the backup store settings: flags first, then HOMEOSTAT_S3_* env.
type s3Flags struct {
	cfg backup.Config
}

func (f *s3Flags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.cfg.Endpoint, "s3-endpoint", "", "S3 endpoint host:port, without scheme (env "+backup.EnvEndpoint+")")
	fs.StringVar(&f.cfg.Bucket, "s3-bucket", "", "bucket; created when missing (env "+backup.EnvBucket+")")
	fs.StringVar(&f.cfg.Prefix, "s3-prefix", "", "folder inside the bucket for this cluster (env "+backup.EnvPrefix+")")
	fs.StringVar(&f.cfg.Region, "s3-region", "", "region (env "+backup.EnvRegion+")")
	fs.BoolVar(&f.cfg.Insecure, "s3-insecure", false, "plain HTTP instead of TLS (env "+backup.EnvInsecure+"=true)")
	fs.StringVar(&f.cfg.CredentialsDir, "s3-credentials-dir", "", "directory with files AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (env "+
		backup.EnvCredentialsDir+"); otherwise the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY env or their *_FILE variants")
}

// config applies the environment to every flag that was not given.
func (f *s3Flags) config(fs *pflag.FlagSet) (backup.Config, error) {
	fromEnv := func(flag, env string, dst *string) {
		if !fs.Changed(flag) && *dst == "" {
			*dst = os.Getenv(env)
		}
	}
	fromEnv("s3-endpoint", backup.EnvEndpoint, &f.cfg.Endpoint)
	fromEnv("s3-bucket", backup.EnvBucket, &f.cfg.Bucket)
	fromEnv("s3-prefix", backup.EnvPrefix, &f.cfg.Prefix)
	fromEnv("s3-region", backup.EnvRegion, &f.cfg.Region)
	fromEnv("s3-credentials-dir", backup.EnvCredentialsDir, &f.cfg.CredentialsDir)
	if !fs.Changed("s3-insecure") {
		if v := os.Getenv(backup.EnvInsecure); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return backup.Config{}, usageError{fmt.Errorf("%s=%q: %w", backup.EnvInsecure, v, err)}
			}
			f.cfg.Insecure = b
		}
	}
	return f.cfg, nil
}

// open connects to the configured store.
func (f *s3Flags) open(ctx context.Context, fs *pflag.FlagSet) (*backup.S3, error) {
	cfg, err := f.config(fs)
	if err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, usageError{fmt.Errorf("--s3-endpoint and --s3-bucket (or %s and %s) are required", backup.EnvEndpoint, backup.EnvBucket)}
	}
	return backup.Open(ctx, cfg)
}

// homeostatFlag is the binary archive_command and restore_command run.
func homeostatFlag(fs *pflag.FlagSet, dst *string) {
	fs.StringVar(dst, "homeostat", "", "path of the homeostat binary that archive_command/restore_command run (env HOMEOSTAT_BINARY; default: this binary)")
}

func homeostatPath(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if env := os.Getenv("HOMEOSTAT_BINARY"); env != "" {
		return env, nil
	}
	return os.Executable()
}

func setupLogging() *slog.Logger {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)
	return log
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newBackupCommand() *cobra.Command {
	s3 := &s3Flags{}
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "PostgreSQL base backups, WAL archive and restores on S3",
		PersistentPreRun: func(*cobra.Command, []string) {
			setupLogging()
		},
	}
	s3.bind(cmd.PersistentFlags())
	cmd.AddCommand(newBackupPushCommand(s3), newWALPushCommand(s3), newWALFetchCommand(s3), newWALPrefetchCommand(s3), newBackupListCommand(s3),
		newBackupDeleteCommand(s3), newBackupRestoreCommand(s3), newBackupVerifyCommand(s3))
	return cmd
}

func newBackupPushCommand(s3 *s3Flags) *cobra.Command {
	var pgdata, host, user, maxRate, label string
	var port, keep, level, parallel int
	var partSize int64
	cmd := &cobra.Command{
		Use:   "push",
		Short: "Stream a base backup of a running server to S3 (prints the manifest as JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pgdata != "" && (host == "" || port == 0) {
				pm, err := pgbin.ReadPostmaster(pgdata)
				if err != nil {
					return err
				}
				if host == "" {
					host = pm.SocketDir
				}
				if port == 0 {
					port = pm.Port
				}
			}
			if host == "" {
				return usageError{errors.New("--pgdata or --host is required")}
			}
			ctx, stopGuard, err := guardArchiving(cmd.Context(), host, port, user)
			if err != nil {
				return err
			}
			defer stopGuard()
			store, err := s3.open(cmd.Context(), cmd.Flags())
			if err != nil {
				return err
			}
			m, err := backup.Push(ctx, store, backup.PushOptions{Host: host, Port: port, User: user, PartSize: partSize,
				CompressLevel: level, Parallel: parallel, MaxRate: maxRate, Label: label})
			if cause := context.Cause(ctx); err != nil && errors.Is(cause, errArchiveFailing) {
				return cause
			}
			if err != nil {
				return err
			}
			if keep > 0 {
				plan, err := backup.Retain(cmd.Context(), store, keep)
				if err != nil {
					return err
				}
				slog.Info("retention applied", "keep", keep, "deletedBackups", plan.Backups, "deletedWAL", len(plan.WAL))
			}
			return printJSON(m)
		},
	}
	cmd.Flags().StringVar(&pgdata, "pgdata", "", "data directory of the running server (its postmaster.pid gives socket and port)")
	cmd.Flags().StringVar(&host, "host", "", "host or unix socket directory (default: from --pgdata)")
	cmd.Flags().IntVar(&port, "port", 0, "port (default: from --pgdata)")
	cmd.Flags().StringVar(&user, "user", "postgres", "role with REPLICATION to connect as; a password comes from PGPASSWORD or PGPASSFILE")
	cmd.Flags().Int64Var(&partSize, "part-size", backup.DefaultPartSize, "uncompressed bytes of the tar stream per part object (each part is compressed alone)")
	cmd.Flags().IntVar(&level, "compress-level", backup.DefaultCompressLevel, "zstd level, 1 (fastest) to 22 (smallest)")
	cmd.Flags().IntVar(&parallel, "parallel", backup.DefaultParallel(), "parts compressed and uploaded at once (default: one per core, at least 2)")
	cmd.Flags().StringVar(&maxRate, "max-rate", "", "limit the transfer rate from the server (pg_basebackup --max-rate, e.g. 50M)")
	cmd.Flags().IntVar(&keep, "keep", 0, "after a successful push, keep only the newest N backups (0: keep all)")
	cmd.Flags().StringVar(&label, "label", "", "a name recorded in the manifest, to find this backup by (the operator passes its Backup's namespace/name)")
	return cmd
}

func newWALPushCommand(s3 *s3Flags) *cobra.Command {
	var batch, parallel int
	cmd := &cobra.Command{
		Use:   "wal-push FILE",
		Short: "Archive one WAL file (archive_command); non-zero exit makes PostgreSQL keep it and retry",
		Long: "Archive one WAL file (archive_command); non-zero exit makes PostgreSQL keep it and retry.\n\n" +
			"Up to --batch other files PostgreSQL has marked ready are uploaded along, in parallel, and recorded in " +
			"pg_wal/.homeostat-archived once the store holds them with the right sha256, so PostgreSQL's calls for " +
			"them return at once.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := s3.open(cmd.Context(), cmd.Flags())
			if err == nil {
				err = backup.WALPushBatch(cmd.Context(), store, args[0],
					backup.BatchOptions{Batch: batch, Parallel: parallel, StoreID: store.Config().String()})
			}
			if err != nil {
				slog.Error("wal-push failed; PostgreSQL keeps the file and retries", "file", args[0], "err", err)
				return withCode(1, nil)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&batch, "batch", backup.DefaultBatch, "other ready WAL files to upload along (0: only FILE)")
	cmd.Flags().IntVar(&parallel, "parallel", backup.DefaultParallel(), "uploads at once")
	return cmd
}

// exitCorruptWAL is wal-fetch's exit status for an archived file that fails
// its checksum: above 125, which PostgreSQL treats as fatal for recovery.
const exitCorruptWAL = 126

func newWALFetchCommand(s3 *s3Flags) *cobra.Command {
	var prefetch, parallel int
	var spool string
	cmd := &cobra.Command{
		Use:   "wal-fetch NAME DEST",
		Short: "Restore one archived WAL file (restore_command); exit 1 when it is not archived",
		Long: "Restore one archived WAL file (restore_command); exit 1 when it is not archived.\n\n" +
			"The next --prefetch segments are downloaded in the background into a spool directory beside the data " +
			"directory (the working directory PostgreSQL runs restore_command in), so the following calls are served " +
			"from local disk after their sha256 is checked again.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := s3.open(cmd.Context(), cmd.Flags())
			if err == nil {
				err = backup.WALFetchPrefetch(cmd.Context(), store, args[0], args[1], fetchOptions(store.Config(), prefetch, parallel, spool))
			}
			switch {
			case err == nil:
				return nil
			case errors.Is(err, backup.ErrNotFound):
				// The normal end of the archive during recovery.
				slog.Info("wal-fetch: not in the archive", "name", args[0])
			case errors.Is(err, backup.ErrChecksum):
				// Exit status above 125 makes PostgreSQL stop recovery with FATAL
				// instead of taking the failure as the end of the archive and
				// promoting short of the WAL it was asked to replay.
				slog.Error("wal-fetch: the archived file is corrupt; recovery must stop here", "name", args[0], "err", err)
				return withCode(exitCorruptWAL, nil)
			default:
				slog.Error("wal-fetch: the archive could not be read (store unreachable or broken)", "name", args[0], "err", err)
			}
			return withCode(1, nil)
		},
	}
	cmd.Flags().IntVar(&prefetch, "prefetch", backup.DefaultPrefetch, "segments to download ahead in the background (0: off)")
	cmd.Flags().IntVar(&parallel, "parallel", backup.DefaultParallel(), "prefetch downloads at once")
	cmd.Flags().StringVar(&spool, "spool", "", "directory for prefetched segments (default: beside the working directory, the data directory)")
	return cmd
}

// fetchOptions sets up prefetching: the background prefetcher is this binary
// again (`backup wal-prefetch`), in its own session so that it outlives the
// restore_command that started it.
func fetchOptions(cfg backup.Config, prefetch, parallel int, spool string) backup.FetchOptions {
	if spool == "" {
		wd, err := os.Getwd()
		if err != nil {
			return backup.FetchOptions{}
		}
		spool = backup.DefaultSpoolDir(wd)
	}
	start := func(names []string) error {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		args := append(append([]string{"backup", "wal-prefetch"}, cfg.Args()...), "--spool", spool, "--parallel", strconv.Itoa(parallel))
		c := exec.Command(self, append(args, names...)...)
		logFile, err := os.OpenFile(filepath.Join(spool, "prefetch.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer func() { _ = logFile.Close() }()
		c.Stderr = logFile
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			return err
		}
		return c.Process.Release()
	}
	return backup.FetchOptions{Prefetch: prefetch, SpoolDir: spool, StoreID: cfg.String(), Start: start}
}

func newWALPrefetchCommand(s3 *s3Flags) *cobra.Command {
	var spool string
	var parallel int
	cmd := &cobra.Command{
		Use:    "wal-prefetch --spool DIR NAME...",
		Short:  "Download WAL segments into a spool directory for wal-fetch (started by wal-fetch itself)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if spool == "" {
				return usageError{errors.New("--spool is required")}
			}
			store, err := s3.open(cmd.Context(), cmd.Flags())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Minute)
			defer cancel()
			if err := backup.Prefetch(ctx, store, spool, store.Config().String(), args, parallel); err != nil {
				// Expected at the end of the archive; wal-fetch fetches by itself.
				slog.Info("prefetch stopped", "err", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&spool, "spool", "", "spool directory")
	cmd.Flags().IntVar(&parallel, "parallel", backup.DefaultParallel(), "downloads at once")
	return cmd
}

func newBackupListCommand(s3 *s3Flags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List complete backups, oldest first (interrupted uploads are not listed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := s3.open(cmd.Context(), cmd.Flags())
			if err != nil {
				return err
			}
			backups, incomplete, err := backup.List(cmd.Context(), store)
			if err != nil {
				return err
			}
			if len(incomplete) > 0 {
				slog.Info("incomplete backups (no manifest) ignored", "ids", incomplete)
			}
			if asJSON {
				if backups == nil {
					backups = []backup.Manifest{}
				}
				return printJSON(backups)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(w, "ID\tSTOP TIME\tTIMELINE\tSTART LSN\tSTOP LSN\tSIZE\tCOMPRESSED")
			for _, b := range backups {
				_, _ = fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%d\t%d\n", b.ID, b.StopTime.Format(time.RFC3339), b.Timeline, b.StartLSN, b.StopLSN, b.Size, b.CompressedSize)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the manifests as a JSON array")
	return cmd
}

func newBackupDeleteCommand(s3 *s3Flags) *cobra.Command {
	var keep int
	cmd := &cobra.Command{
		Use:   "delete [ID...] | --keep N",
		Short: "Delete backups by ID, or keep the newest N and delete older backups and the WAL only they need",
		RunE: func(cmd *cobra.Command, args []string) error {
			if (keep > 0) == (len(args) > 0) {
				return usageError{errors.New("give backup IDs or --keep N, not both")}
			}
			store, err := s3.open(cmd.Context(), cmd.Flags())
			if err != nil {
				return err
			}
			if keep > 0 {
				plan, err := backup.Retain(cmd.Context(), store, keep)
				if err != nil {
					return err
				}
				return printJSON(plan)
			}
			for _, id := range args {
				if err := backup.Delete(cmd.Context(), store, id); err != nil {
					return err
				}
			}
			return printJSON(backup.RetentionPlan{Backups: args})
		},
	}
	cmd.Flags().IntVar(&keep, "keep", 0, "keep the newest N complete backups")
	return cmd
}

func newBackupRestoreCommand(s3 *s3Flags) *cobra.Command {
	var opts backup.RestoreOptions
	var latest, immediate bool
	var targetTime, homeostat string
	cmd := &cobra.Command{
		Use:   "restore --to DIR [--backup ID | --latest] [--target-time T | --target-lsn L | --immediate]",
		Short: "Restore a base backup into a new data directory, set to recover from the WAL archive and promote",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.To == "" {
				return usageError{errors.New("--to is required")}
			}
			if latest && opts.BackupID != "" {
				return usageError{errors.New("--backup and --latest exclude each other")}
			}
			n := 0
			for _, set := range []bool{targetTime != "", opts.Target.LSN != "", immediate} {
				if set {
					n++
				}
			}
			if n > 1 {
				return usageError{errors.New("give at most one of --target-time, --target-lsn, --immediate")}
			}
			if targetTime != "" {
				t, err := time.Parse(time.RFC3339Nano, targetTime)
				if err != nil {
					return usageError{fmt.Errorf("--target-time %q: want RFC 3339, e.g. 2026-01-02T15:04:05.123Z: %w", targetTime, err)}
				}
				opts.Target.Time = t
			}
			if opts.Target.LSN != "" {
				if _, err := backup.ParseLSN(opts.Target.LSN); err != nil {
					return usageError{fmt.Errorf("--target-lsn: %w", err)}
				}
			}
			opts.Target.Immediate = immediate
			store, err := s3.open(cmd.Context(), cmd.Flags())
			if err != nil {
				return err
			}
			bin, err := homeostatPath(homeostat)
			if err != nil {
				return err
			}
			opts.RestoreCommand = backup.RestoreCommand(bin, store.Config())
			m, err := backup.Restore(cmd.Context(), store, opts)
			if err != nil {
				return err
			}
			return printJSON(m)
		},
	}
	cmd.Flags().StringVar(&opts.To, "to", "", "new data directory (absent or empty)")
	cmd.Flags().IntVar(&opts.Parallel, "parallel", backup.DefaultParallel(), "parts downloaded and decompressed at once")
	cmd.Flags().StringVar(&opts.BackupID, "backup", "", "backup ID (default: the newest that finished before the target)")
	cmd.Flags().BoolVar(&latest, "latest", false, "the newest backup that fits the target (the default)")
	cmd.Flags().StringVar(&targetTime, "target-time", "", "recover up to this time (RFC 3339)")
	cmd.Flags().StringVar(&opts.Target.LSN, "target-lsn", "", "recover up to this LSN (X/Y)")
	cmd.Flags().BoolVar(&immediate, "immediate", false, "recover only until the backup is consistent")
	homeostatFlag(cmd.Flags(), &homeostat)
	return cmd
}

func newBackupVerifyCommand(s3 *s3Flags) *cobra.Command {
	var opts backup.VerifyOptions
	var homeostat string
	var latest bool
	cmd := &cobra.Command{
		Use:   "verify ID | --latest",
		Short: "Restore a backup into a scratch directory, start it, check it is consistent, print a JSON report",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == latest {
				return usageError{errors.New("give a backup ID or --latest")}
			}
			store, err := s3.open(cmd.Context(), cmd.Flags())
			if err != nil {
				return err
			}
			if latest {
				backups, _, err := backup.List(cmd.Context(), store)
				if err != nil {
					return err
				}
				if len(backups) == 0 {
					return fmt.Errorf("verify: %w in %s", backup.ErrNoBackup, store.Config())
				}
				opts.BackupID = backups[len(backups)-1].ID
			} else {
				opts.BackupID = args[0]
			}
			bin, err := homeostatPath(homeostat)
			if err != nil {
				return err
			}
			opts.RestoreCommand = backup.RestoreCommand(bin, store.Config())
			rep, verr := backup.Verify(cmd.Context(), store, opts)
			if err := printJSON(rep); err != nil {
				return err
			}
			if verr != nil {
				return withCode(1, verr)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&latest, "latest", false, "verify the newest complete backup")
	cmd.Flags().StringVar(&opts.User, "user", "postgres", "a role of the backed-up cluster to connect as")
	cmd.Flags().StringVar(&opts.ScratchDir, "scratch-dir", "", "where to make the scratch data directory (default: the system temp dir)")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 10*time.Minute, "how long recovery may take")
	homeostatFlag(cmd.Flags(), &homeostat)
	return cmd
}
