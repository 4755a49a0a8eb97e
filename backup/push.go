package backup

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"homeostat.dev/homeostat/backup/pgbin"
)

// DefaultPartSize is how much of the uncompressed tar stream one part object
// holds. Each part is compressed alone (one zstd frame), so parts compress and
// upload on separate workers and restore can decompress them in parallel; 16
// MiB keeps every worker's buffers small and costs next to nothing in ratio.
const DefaultPartSize = 16 << 20

// DefaultCompressLevel is the zstd level of a push: 3, zstd's own default, a
// good ratio at several hundred MB/s per core.
const DefaultCompressLevel = 3

// DefaultParallel is how many parts compress and upload at once: one per
// core, and never fewer than two so that one uploads while the other
// compresses.
func DefaultParallel() int { return max(2, runtime.NumCPU()) }

// PushOptions says which server to back up.
type PushOptions struct {
	// Host is a host name or a unix socket directory; Port and User complete
	// the connection pg_basebackup makes (replication, so User needs the
	// REPLICATION attribute or superuser). A password, if needed, comes from
	// PGPASSWORD / PGPASSFILE in the environment.
	Host string
	Port int
	User string
	// PartSize is the uncompressed bytes per part object (DefaultPartSize
	// when 0).
	PartSize int64
	// CompressLevel is the zstd level, 1 (fastest) to 22 (DefaultCompressLevel
	// when 0); levels above 4 cost much more CPU for little gain on table data.
	CompressLevel int
	// Parallel is how many parts compress and upload at once
	// (DefaultParallel when 0).
	Parallel int
	// MaxRate limits how fast the server sends (pg_basebackup --max-rate,
	// e.g. "50M"), sparing the primary's disks; empty means no limit.
	MaxRate string
	// Label is recorded in the manifest (Manifest.Label).
	Label string
	Log   *slog.Logger
}

// Push takes a base backup of a running server with pg_basebackup and streams
// it through zstd into part objects, each with its sha256; nothing is written
// to local disk. WAL is not included (-X none): pg_basebackup waits until the
// WAL the backup needs is archived, so the server must archive to the same
// store (archive_mode with `homeostat backup wal-push`). The manifest is
// written last; when anything fails, no manifest means no backup.
func Push(ctx context.Context, s Store, opts PushOptions) (*Manifest, error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Manifest{ID: time.Now().UTC().Format("20060102T150405.000Z"), Label: opts.Label, Compression: "zstd",
		CompressLevel: opts.CompressLevel, FramedParts: true, StartTime: time.Now().UTC()}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	bin, err := pgbin.Path("pg_basebackup")
	if err != nil {
		return nil, err
	}
	parts, err := newPartWriter(ctx, s, backupPrefix(m.ID), opts)
	if err != nil {
		return nil, err
	}
	args := []string{"-D", "-", "-Ft", "-X", "none", "--checkpoint=fast", "-w"}
	if opts.Host != "" {
		args = append(args, "-h", opts.Host)
	}
	if opts.Port != 0 {
		args = append(args, "-p", strconv.Itoa(opts.Port))
	}
	if opts.User != "" {
		args = append(args, "-U", opts.User)
	}
	if opts.MaxRate != "" {
		args = append(args, "--max-rate", opts.MaxRate)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 64 << 10}
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		_ = parts.close(false)
		return nil, err
	}
	defer func() { _ = stdout.Close() }()
	growPipe(stdout)
	cmd.Stdout = stdoutW
	log.Info("base backup starting", "backup", m.ID, "host", opts.Host, "port", opts.Port)
	err = cmd.Start()
	_ = stdoutW.Close()
	if err != nil {
		_ = parts.close(false)
		return nil, fmt.Errorf("start pg_basebackup: %w", err)
	}
	watch := newTarWatcher()
	size, copyErr := parts.readFrom(stdout, watch)
	if copyErr != nil {
		cancel() // pg_basebackup may be blocked writing to us
	}
	info := watch.info()
	waitErr := cmd.Wait()
	if copyErr != nil || waitErr != nil {
		cancel()
	}
	partsErr := parts.close(copyErr == nil && waitErr == nil)
	err = nil
	switch {
	case copyErr != nil:
		// Our side failed first (then pg_basebackup was stopped).
		err = fmt.Errorf("backup %s: compress and upload: %w", m.ID, copyErr)
	case waitErr != nil:
		err = fmt.Errorf("pg_basebackup: %w: %s", waitErr, strings.TrimSpace(stderr.String()))
	case partsErr != nil:
		err = fmt.Errorf("backup %s: upload: %w", m.ID, partsErr)
	case strings.Contains(stderr.String(), "WAL archiving is not enabled"):
		err = fmt.Errorf("backup %s: the server does not archive WAL (archive_mode is off), so this backup could never be restored; turn on archiving to this store", m.ID)
	case info.err != nil:
		err = fmt.Errorf("backup %s: read the tar stream: %w", m.ID, info.err)
	}
	if err != nil {
		// Best effort: what was uploaded is useless without a manifest, and
		// retention removes it anyway if this cleanup fails.
		if len(parts.parts) > 0 {
			_ = Delete(context.WithoutCancel(ctx), s, m.ID)
		}
		return nil, err
	}
	m.StopTime = time.Now().UTC()
	m.Size = size
	m.Parts, m.CompressedSize = parts.parts, parts.total
	m.StartLSN, m.StopLSN, m.Timeline = info.startLSN, info.stopLSN, info.timeline
	m.StartWAL, m.PGVersion = info.startWAL, info.pgVersion
	if err := writeManifest(ctx, s, m); err != nil {
		return nil, fmt.Errorf("backup %s: write manifest: %w", m.ID, err)
	}
	log.Info("base backup complete", "backup", m.ID, "size", m.Size, "compressed", m.CompressedSize,
		"parts", len(m.Parts), "startLSN", m.StartLSN, "stopLSN", m.StopLSN, "seconds", m.StopTime.Sub(m.StartTime).Seconds())
	return m, nil
}

// withDefaults fills in the zero options and checks the level.
func (o PushOptions) withDefaults() (PushOptions, error) {
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.CompressLevel == 0 {
		o.CompressLevel = DefaultCompressLevel
	}
	if o.CompressLevel < 1 || o.CompressLevel > 22 {
		return o, fmt.Errorf("compress level %d: want 1 to 22", o.CompressLevel)
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel()
	}
	return o, nil
}

// limitedBuffer keeps the first max bytes of a child's stderr.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}

// tarInfo is what the manifest needs from inside the tar stream.
type tarInfo struct {
	startLSN, stopLSN, startWAL, pgVersion string
	timeline                               int
	err                                    error
}

var labelStart = regexp.MustCompile(`START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)`)
var labelTimeline = regexp.MustCompile(`START TIMELINE: (\d+)`)

// growPipe asks for a 1 MiB pipe buffer (Linux F_SETPIPE_SZ), so that
// pg_basebackup and the compressor hand over large chunks instead of 64 KiB.
func growPipe(f *os.File) {
	const fSetPipeSz = 1031
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), fSetPipeSz, 1<<20)
}
