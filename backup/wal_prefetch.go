package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultPrefetch is how many segments after the one asked for wal-fetch
// downloads ahead: 8 × 16 MiB, pgBackRest's archive-get queue size.
const DefaultPrefetch = 8

// DefaultSpoolDir is where prefetched WAL for the data directory dataDir is
// kept: beside it (not inside, where a base backup would copy it), named
// after it. Restore removes it, so a new recovery never sees an old spool.
func DefaultSpoolDir(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = filepath.Clean(dataDir)
	}
	return filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".homeostat-wal-spool")
}

// FetchOptions turns on prefetching for WALFetchPrefetch.
type FetchOptions struct {
	// Prefetch is how many following segments to fetch ahead; 0 turns
	// prefetching off.
	Prefetch int
	// SpoolDir holds prefetched segments (see DefaultSpoolDir).
	SpoolDir string
	// StoreID names the store (Config.String()): a spooled segment from
	// another store is never served.
	StoreID string
	// Start runs Prefetch for names in the background, detached from this
	// call: restore_command must return as soon as its own file is there.
	Start func(names []string) error
	Log   *slog.Logger
}

// spool file names: NAME is the segment, NAME.meta its sha256 and store,
// NAME.inflight says a download is in progress (into NAME.download), .lock
// is held by the one running prefetcher.
const (
	spoolMeta     = ".meta"
	spoolInflight = ".inflight"
	spoolDownload = ".download"
	spoolPartial  = ".homeostat-partial"
	spoolLock     = ".lock"
)

// WALFetchPrefetch is WALFetch for restore_command during a long recovery:
// the segment comes from the spool when a background prefetch already
// downloaded it, and the next opts.Prefetch segments are fetched ahead, so
// that recovery does not wait for one S3 round trip per 16 MiB. A spooled
// segment is served only when its sha256 still matches the one verified
// against the archive at download time and it came from the same store;
// otherwise it is dropped and fetched again from the archive.
func WALFetchPrefetch(ctx context.Context, s Store, name, dest string, opts FetchOptions) error {
	seg, isSegment := parseSegment(name)
	if opts.Prefetch <= 0 || opts.SpoolDir == "" || !isSegment || strings.Contains(name, ".") {
		return WALFetch(ctx, s, name, dest)
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	served, err := takeSpooled(opts.SpoolDir, name, dest, opts.StoreID, true)
	if err != nil {
		log.Warn("prefetched WAL segment not used; fetching it again from the archive", "name", name, "reason", err)
	}
	if !served {
		if err := WALFetch(ctx, s, name, dest); err != nil {
			return err
		}
	}
	startPrefetch(opts, seg, dest, log)
	return nil
}

// startPrefetch drops spooled segments before seg and starts a background
// prefetch of the next ones that are not spooled yet, unless one runs.
func startPrefetch(opts FetchOptions, seg segment, dest string, log *slog.Logger) {
	info, err := os.Stat(dest)
	if err != nil {
		return
	}
	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		log.Warn("WAL prefetch off: cannot make the spool directory", "dir", opts.SpoolDir, "err", err)
		return
	}
	cleanSpool(opts.SpoolDir, seg)
	var want []string
	next := seg
	for range opts.Prefetch {
		var ok bool
		if next, ok = next.next(info.Size()); !ok {
			break
		}
		if _, err := os.Stat(filepath.Join(opts.SpoolDir, next.name())); err != nil {
			want = append(want, next.name())
		}
	}
	if len(want) == 0 || prefetchRunning(opts.SpoolDir) {
		return
	}
	if err := opts.Start(want); err != nil {
		log.Warn("WAL prefetch not started", "err", err)
	}
}

// takeSpooled moves the spooled segment name to dest if it is there and
// intact. served is false when it is not spooled; err says why a spooled
// copy was refused (and removed). With wait, a download of name in progress
// is waited for rather than repeated.
func takeSpooled(spool, name, dest, storeID string, wait bool) (served bool, err error) {
	p := filepath.Join(spool, name)
	if wait {
		waitForDownload(spool, name, 2*time.Minute)
	}
	meta, merr := os.ReadFile(p + spoolMeta)
	if _, err := os.Stat(p); err != nil {
		return false, nil
	}
	defer func() {
		if !served {
			_ = os.Remove(p)
			_ = os.Remove(p + spoolMeta)
		}
	}()
	if merr != nil {
		return false, fmt.Errorf("spooled %s has no checksum record: %w", name, merr)
	}
	wantSum, wantStore, _ := strings.Cut(strings.TrimSpace(string(meta)), " ")
	if wantStore != storeID {
		return false, fmt.Errorf("spooled %s came from %s, not %s", name, wantStore, storeID)
	}
	sum, err := fileSHA256(p)
	if err != nil {
		return false, err
	}
	if sum != wantSum {
		return false, fmt.Errorf("spooled %s is corrupt: sha256 %s, archive says %s", name, sum, wantSum)
	}
	if err := moveFile(p, dest); err != nil {
		return false, fmt.Errorf("move spooled %s to %s: %w", name, dest, err)
	}
	_ = os.Remove(p + spoolMeta)
	return true, nil
}

// waitForDownload waits while the prefetcher is downloading name.
func waitForDownload(spool, name string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(spool, name+spoolInflight)); err != nil || !prefetchRunning(spool) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// moveFile renames, or copies when src and dest are on different file systems.
func moveFile(src, dest string) error {
	err := os.Rename(src, dest)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	tmp := dest + spoolPartial
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Remove(src)
}

// cleanSpool removes spooled segments recovery has passed.
func cleanSpool(spool string, current segment) {
	entries, err := os.ReadDir(spool)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if len(name) < 24 || len(name) > 24 && name[24] != '.' {
			continue
		}
		if seg, ok := parseSegment(name[:24]); ok && seg.num < current.num {
			_ = os.Remove(filepath.Join(spool, name))
		}
	}
}

// prefetchRunning reports whether a prefetcher holds the spool's lock.
func prefetchRunning(spool string) bool {
	f, err := os.OpenFile(filepath.Join(spool, spoolLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// Prefetch downloads the named WAL segments into spool on parallel workers,
// each verified against the sha256 the archive recorded at push time, and
// writes beside each its checksum and storeID for WALFetchPrefetch to check
// again before serving it. Only one prefetcher runs per spool: when another
// holds the lock, Prefetch returns at once. A segment not in the archive ends
// the prefetch there (recovery will ask for it, and then it is the end of the
// archive or fetched directly); a failure only means WALFetchPrefetch fetches
// that segment itself.
func Prefetch(ctx context.Context, s Store, spool, storeID string, names []string, parallel int) error {
	lock, err := os.OpenFile(filepath.Join(spool, spoolLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	defer func() { _ = lock.Close() }()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil // another prefetcher is at work
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range jobs {
				if err := spoolOne(ctx, s, spool, storeID, name); err != nil {
					cancel() // the archive ends here (or is failing): stop
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		jobs <- name
	}
	close(jobs)
	wg.Wait()
	return errors.Join(errs...)
}

// spoolOne downloads one segment into the spool: the data under a partial
// name, then its checksum record, then the rename that makes it visible.
func spoolOne(ctx context.Context, s Store, spool, storeID, name string) error {
	if !validWALName.MatchString(name) {
		return fmt.Errorf("prefetch %s: not a WAL file name", name)
	}
	p := filepath.Join(spool, name)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.WriteFile(p+spoolInflight, nil, 0o600); err != nil {
		return err
	}
	defer func() { _ = os.Remove(p + spoolInflight) }()
	sum, err := fetchWAL(ctx, s, name, p+spoolDownload)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(p+spoolMeta, []byte(sum+" "+storeID+"\n")); err != nil {
		_ = os.Remove(p + spoolDownload)
		return err
	}
	return os.Rename(p+spoolDownload, p)
}

func writeFileAtomic(p string, data []byte) error {
	tmp := p + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// name is the segment's file name.
func (s segment) name() string { return fmt.Sprintf("%08X%s", s.tli, s.num) }

// next is the segment after s for segments of segSize bytes.
func (s segment) next(segSize int64) (segment, bool) {
	if segSize <= 0 || (1<<32)%segSize != 0 {
		return segment{}, false
	}
	perLog := uint64((1 << 32) / segSize)
	logID, err1 := strconv.ParseUint(s.num[:8], 16, 32)
	segNo, err2 := strconv.ParseUint(s.num[8:], 16, 32)
	if err1 != nil || err2 != nil {
		return segment{}, false
	}
	segNo++
	if segNo >= perLog {
		logID, segNo = logID+1, 0
	}
	return segment{tli: s.tli, num: fmt.Sprintf("%08X%08X", logID, segNo)}, true
}
