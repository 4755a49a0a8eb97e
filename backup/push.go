package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"homeostat.dev/homeostat/backup/pgbin"
)

// DefaultPartSize is the compressed size of one part object: small enough
// that uploads overlap the stream and the last one after it is short.
const DefaultPartSize = 16 << 20

// uploaders is how many parts are uploaded at once.
const uploaders = 2

// PushOptions says which server to back up.
type PushOptions struct {
	// Host is a host name or a unix socket directory; Port and User complete
	// the connection pg_basebackup makes (replication, so User needs the
	// REPLICATION attribute or superuser). A password, if needed, comes from
	// PGPASSWORD / PGPASSFILE in the environment.
	Host string
	Port int
	User string
	// PartSize bounds each part object (DefaultPartSize when 0).
	PartSize int64
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
	if opts.PartSize <= 0 {
		opts.PartSize = DefaultPartSize
	}
	m := &Manifest{ID: time.Now().UTC().Format("20060102T150405.000Z"), Label: opts.Label, Compression: "zstd", StartTime: time.Now().UTC()}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	bin, err := pgbin.Path("pg_basebackup")
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
		return nil, err
	}
	defer func() { _ = stdout.Close() }()
	growPipe(stdout)
	cmd.Stdout = stdoutW
	log.Info("base backup starting", "backup", m.ID, "host", opts.Host, "port", opts.Port)
	err = cmd.Start()
	_ = stdoutW.Close()
	if err != nil {
		return nil, fmt.Errorf("start pg_basebackup: %w", err)
	}

	parts := newPartUploader(ctx, s, backupPrefix(m.ID), opts.PartSize)
	enc, err := zstd.NewWriter(parts, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	watch := newTarWatcher()
	buf := make([]byte, 1<<20)
	size, copyErr := io.CopyBuffer(io.MultiWriter(enc, watch), stdout, buf)
	if copyErr != nil {
		cancel() // pg_basebackup may be blocked writing to us
	}
	info := watch.info()
	waitErr := cmd.Wait()
	if copyErr == nil && waitErr == nil {
		copyErr = enc.Close()
	} else {
		cancel()
		_ = enc.Close()
	}
	partsErr := parts.close(copyErr == nil && waitErr == nil)
	err = nil
	switch {
	case waitErr != nil:
		err = fmt.Errorf("pg_basebackup: %w: %s", waitErr, strings.TrimSpace(stderr.String()))
	case copyErr != nil:
		err = fmt.Errorf("backup %s: compress and upload: %w", m.ID, errors.Join(copyErr, partsErr))
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

// partUploader cuts the compressed stream into parts and uploads them while
// the next ones fill: at most uploaders+2 parts are in memory.
type partUploader struct {
	ctx      context.Context
	store    Store
	prefix   string
	size     int64
	buf      []byte
	queue    chan pendingPart
	wg       sync.WaitGroup
	mu       sync.Mutex
	err      error
	parts    []Part
	total    int64
	sequence int
}

type pendingPart struct {
	seq  int
	key  string
	data []byte
}

func newPartUploader(ctx context.Context, s Store, prefix string, size int64) *partUploader {
	p := &partUploader{ctx: ctx, store: s, prefix: prefix, size: size, queue: make(chan pendingPart, 1)}
	p.wg.Add(uploaders)
	for range uploaders {
		go p.run()
	}
	return p
}

// enqueue names the part by its position in the stream and hands it over.
func (p *partUploader) enqueue(data []byte) {
	p.queue <- pendingPart{seq: p.sequence, key: fmt.Sprintf("%spart-%05d.tar.zst", p.prefix, p.sequence), data: data}
	p.sequence++
}

func (p *partUploader) Write(b []byte) (int, error) {
	if err := p.failed(); err != nil {
		return 0, err
	}
	n := len(b)
	for len(b) > 0 {
		if p.buf == nil {
			p.buf = make([]byte, 0, p.size)
		}
		room := int(p.size) - len(p.buf)
		if room > len(b) {
			room = len(b)
		}
		p.buf = append(p.buf, b[:room]...)
		b = b[room:]
		if int64(len(p.buf)) == p.size {
			p.enqueue(p.buf)
			p.buf = nil
		}
	}
	return n, nil
}

func (p *partUploader) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *partUploader) run() {
	defer p.wg.Done()
	for part := range p.queue {
		if p.failed() != nil {
			continue
		}
		sum := sha256.Sum256(part.data)
		err := p.store.Put(p.ctx, part.key, bytes.NewReader(part.data), int64(len(part.data)), nil)
		p.mu.Lock()
		if err != nil && p.err == nil {
			p.err = err
		} else if err == nil {
			p.parts = append(p.parts, Part{seq: part.seq, Key: part.key, Size: int64(len(part.data)), SHA256: hex.EncodeToString(sum[:])})
			p.total += int64(len(part.data))
		}
		p.mu.Unlock()
	}
}

// close uploads the last, short part (unless flush is false: the stream
// failed) and waits for all uploads.
func (p *partUploader) close(flush bool) error {
	if flush && len(p.buf) > 0 && p.failed() == nil {
		p.enqueue(p.buf)
		p.buf = nil
	}
	close(p.queue)
	p.wg.Wait()
	// Uploads finish in any order; the manifest lists parts in stream order.
	sort.Slice(p.parts, func(i, j int) bool { return p.parts[i].seq < p.parts[j].seq })
	return p.err
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
