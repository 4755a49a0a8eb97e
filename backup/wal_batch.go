package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// DefaultBatch is how many other ready WAL files one wal-push uploads along
// with the one it was given.
const DefaultBatch = 8

// archivedDir is the folder inside pg_wal where wal-push records the files it
// archived ahead of PostgreSQL's call for them (pg_basebackup copies no
// contents of pg_wal, and PostgreSQL ignores names that are not WAL).
const archivedDir = ".homeostat-archived"

// BatchOptions turns on batching for WALPushBatch.
type BatchOptions struct {
	// Batch is how many other .ready files to upload along; 0 turns it off.
	Batch int
	// Parallel is how many uploads run at once.
	Parallel int
	// StoreID names the store (Config.String()): a record made for another
	// store never answers for this one.
	StoreID string
	Log     *slog.Logger
}

// WALPushBatch is WALPush for archive_command when WAL is written faster than
// one process start and one upload per segment can follow: along with path
// it uploads up to opts.Batch other files PostgreSQL has marked ready
// (pg_wal/archive_status/NAME.ready), in parallel, and records each one that
// is stored with its sha256 in pg_wal/.homeostat-archived. When PostgreSQL
// then calls archive_command for such a file, the call checks that the file
// still has the recorded sha256 and returns at once. A file is recorded only
// after the store has it under its name with the same sha256 (read back from
// the store), so nothing is reported archived that is not. Only the upload of
// path decides the exit status; a failed extra is simply not recorded.
func WALPushBatch(ctx context.Context, s Store, path string, opts BatchOptions) error {
	if opts.Batch <= 0 {
		return WALPush(ctx, s, path)
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	walDir := filepath.Dir(path)
	marks := filepath.Join(walDir, archivedDir)
	name := filepath.Base(path)
	if done, err := alreadyArchived(marks, path, opts.StoreID); done {
		return nil
	} else if err != nil {
		log.Warn("archived-ahead record not used; pushing again", "name", name, "reason", err)
	}
	extras := readyFiles(walDir, name, marks, opts.Batch)
	errs := make([]error, len(extras)+1)
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(opts.Parallel, 1))
	for i, p := range append([]string{path}, extras...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = WALPush(ctx, s, p)
		}()
	}
	wg.Wait()
	if len(extras) > 0 {
		if err := os.MkdirAll(marks, 0o700); err != nil {
			log.Warn("cannot record WAL archived ahead", "dir", marks, "err", err)
			return errs[0]
		}
	}
	for i, p := range extras {
		if errs[i+1] != nil {
			log.Warn("archiving ahead failed; PostgreSQL will push it itself", "name", filepath.Base(p), "err", errs[i+1])
			continue
		}
		if err := recordArchived(ctx, s, marks, p, opts.StoreID); err != nil {
			log.Warn("archived ahead but not recorded", "name", filepath.Base(p), "err", err)
		}
	}
	cleanArchivedRecords(walDir, marks)
	return errs[0]
}

// alreadyArchived consumes the record of path if one exists: done says the
// record matches the file and the store, err why a record was refused.
func alreadyArchived(marks, path, storeID string) (done bool, err error) {
	rec := filepath.Join(marks, filepath.Base(path))
	data, err := os.ReadFile(rec)
	if err != nil {
		return false, nil
	}
	defer func() { _ = os.Remove(rec) }()
	sum, store, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
	if store != storeID {
		return false, fmt.Errorf("record is for %s, not %s", store, storeID)
	}
	local, err := fileSHA256(path)
	if err != nil {
		return false, err
	}
	if local != sum {
		return false, fmt.Errorf("file changed since it was archived: sha256 %s, archived %s", local, sum)
	}
	return true, nil
}

// recordArchived writes the record for p after reading back from the store
// that it holds p's content.
func recordArchived(ctx context.Context, s Store, marks, p, storeID string) error {
	name := filepath.Base(p)
	local, err := fileSHA256(p)
	if err != nil {
		return err
	}
	obj, err := s.Stat(ctx, walKey(name))
	if err != nil {
		return err
	}
	if obj.Metadata[metaSHA256] != local {
		return fmt.Errorf("%w: archived sha256 %q, local %s", ErrConflict, obj.Metadata[metaSHA256], local)
	}
	return writeFileAtomic(filepath.Join(marks, name), []byte(local+" "+storeID+"\n"))
}

// readyFiles lists up to n WAL files PostgreSQL has marked ready, oldest
// first, other than skip and those already recorded.
func readyFiles(walDir, skip, marks string, n int) []string {
	entries, err := os.ReadDir(filepath.Join(walDir, "archive_status"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".ready")
		if !ok || name == skip || !validWALName.MatchString(name) {
			continue
		}
		if _, err := os.Stat(filepath.Join(marks, name)); err == nil {
			continue
		}
		names = append(names, name)
	}
	// History files first, as PostgreSQL archives them, then by name.
	sort.Slice(names, func(i, j int) bool {
		hi, hj := strings.HasSuffix(names[i], ".history"), strings.HasSuffix(names[j], ".history")
		if hi != hj {
			return hi
		}
		return names[i] < names[j]
	})
	var out []string
	for _, name := range names[:min(n, len(names))] {
		out = append(out, filepath.Join(walDir, name))
	}
	return out
}

// cleanArchivedRecords drops records whose WAL file is gone (PostgreSQL
// removed or recycled it), so the folder never grows.
func cleanArchivedRecords(walDir, marks string) {
	entries, err := os.ReadDir(marks)
	if err != nil {
		return
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(walDir, e.Name())); errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(filepath.Join(marks, e.Name()))
		}
	}
}
