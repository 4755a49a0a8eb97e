package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/klauspost/compress/zstd"
)

// walDir is the folder of the WAL archive inside the store.
const walDir = "wal/"

// metaSHA256 is the user metadata key holding the sha256 of the uncompressed
// file, which is what "the same content" means for an idempotent wal-push.
const metaSHA256 = "sha256"

// ErrConflict is returned by WALPush when the archive already holds a
// different file of the same name: something is badly wrong (two clusters
// writing to one prefix, or a split brain) and must not be papered over.
var ErrConflict = errors.New("archived file differs")

func walKey(name string) string { return walDir + name + ".zst" }

// validWALName accepts what PostgreSQL archives: segments, .partial segments,
// .backup files and timeline .history files. Anything else (a path, "..")
// is refused so the name is safe as an object key and a file name.
var validWALName = regexp.MustCompile(`^([0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$`)

// WALPush archives the file at path under its base name. Pushing a file that
// is already archived with the same content succeeds; with different content
// it fails with ErrConflict. Any failure must make archive_command exit
// non-zero so PostgreSQL keeps the segment and retries.
func WALPush(ctx context.Context, s Store, path string) error {
	name := filepath.Base(path)
	if !validWALName.MatchString(name) {
		return fmt.Errorf("wal-push %s: not a WAL file name", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("wal-push: read %s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	existing, err := s.Stat(ctx, walKey(name))
	switch {
	case err == nil:
		if existing.Metadata[metaSHA256] == want {
			return nil
		}
		return fmt.Errorf("wal-push %s: %w: archived sha256 %s, local %s", name, ErrConflict, existing.Metadata[metaSHA256], want)
	case !errors.Is(err, ErrNotFound):
		return fmt.Errorf("wal-push %s: %w", name, err)
	}
	compressed := walEncoder.EncodeAll(data, make([]byte, 0, len(data)/2))
	if err := s.Put(ctx, walKey(name), bytes.NewReader(compressed), int64(len(compressed)),
		map[string]string{metaSHA256: want, "size": strconv.Itoa(len(data))}); err != nil {
		return fmt.Errorf("wal-push %s: %w", name, err)
	}
	return nil
}

var walEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))

// WALFetch restores the archived file name into dest (restore_command's %p).
// A missing file returns an error wrapping ErrNotFound: PostgreSQL takes the
// non-zero exit as the end of the archive. Content is checked against the
// sha256 recorded at push time, and dest appears only complete (rename).
func WALFetch(ctx context.Context, s Store, name, dest string) error {
	_, err := fetchWAL(ctx, s, name, dest)
	return err
}

// fetchWAL is WALFetch that also returns the sha256 of what it wrote.
func fetchWAL(ctx context.Context, s Store, name, dest string) (string, error) {
	if !validWALName.MatchString(name) {
		return "", fmt.Errorf("wal-fetch %s: not a WAL file name", name)
	}
	obj, err := s.Stat(ctx, walKey(name))
	if err != nil {
		return "", fmt.Errorf("wal-fetch %s: %w", name, err)
	}
	r, err := s.Get(ctx, walKey(name))
	if err != nil {
		return "", fmt.Errorf("wal-fetch %s: %w", name, err)
	}
	defer func() { _ = r.Close() }()
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return "", fmt.Errorf("wal-fetch %s: %w", name, err)
	}
	defer dec.Close()
	tmp := dest + ".homeostat-partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("wal-fetch %s: %w", name, err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), dec)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err == nil && obj.Metadata[metaSHA256] != "" && sum != obj.Metadata[metaSHA256] {
		err = fmt.Errorf("%w: sha256 of the content is %s, recorded at push %s", ErrChecksum, sum, obj.Metadata[metaSHA256])
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("wal-fetch %s to %s: %w", name, dest, err)
	}
	return sum, nil
}

// ErrChecksum is returned (wrapped) when an archived file's content does not
// match the sha256 recorded when it was pushed: it must never be replayed.
var ErrChecksum = errors.New("checksum mismatch")

// segment is a parsed WAL segment name: timeline, then the segment number as
// log and seg (each 8 hex digits).
type segment struct {
	tli uint64
	num string // the 16 hex digits after the timeline, comparable as strings
}

// parseSegment reads the segment a WAL archive name belongs to (segments,
// .partial and .backup files); ok is false for history files.
func parseSegment(name string) (segment, bool) {
	if len(name) < 24 || !validWALName.MatchString(name) || len(name) == len("00000001.history") && name[8:] == ".history" {
		return segment{}, false
	}
	tli, err := strconv.ParseUint(name[:8], 16, 32)
	if err != nil {
		return segment{}, false
	}
	return segment{tli: tli, num: name[8:24]}, true
}
