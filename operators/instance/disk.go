package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DiskUsage is what an instance's data volume holds, as `instance run`
// measures it: the operator reads it through the server (DiskUsageFile)
// and shows it per instance in the Postgres status.
type DiskUsage struct {
	// DataBytes is the space the data directory takes on disk (allocated
	// blocks, as `du` counts them, WAL included).
	DataBytes int64 `json:"dataBytes"`
	// VolumeFreeBytes is the space left on the volume for postgres (what
	// `df` calls available), VolumeBytes the volume's size.
	VolumeFreeBytes int64 `json:"volumeFreeBytes"`
	VolumeBytes     int64 `json:"volumeBytes"`
	// MeasuredAt is when it was measured.
	MeasuredAt time.Time `json:"measuredAt"`
}

// DiskUsageEvery is how often `instance run` measures its volume.
const DiskUsageEvery = 30 * time.Second

// DiskUsageFile is where `instance run` keeps the last DiskUsage of pgdata:
// beside the data directory, on the same volume, so pg_basebackup and
// pg_rewind never copy one instance's figures to another.
func DiskUsageFile(pgdata string) string {
	clean := filepath.Clean(pgdata)
	return filepath.Join(filepath.Dir(clean), "."+filepath.Base(clean)+".disk.json")
}

// MeasureDisk walks pgdata and asks the file system about its volume.
// Files that vanish during the walk (recycled WAL, temporary files) are
// skipped.
func MeasureDisk(pgdata string) (DiskUsage, error) {
	var fsStat syscall.Statfs_t
	if err := syscall.Statfs(pgdata, &fsStat); err != nil {
		return DiskUsage{}, fmt.Errorf("statfs %s: %w", pgdata, err)
	}
	var used int64
	err := filepath.WalkDir(pgdata, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			used += st.Blocks * 512
		} else {
			used += info.Size()
		}
		return nil
	})
	if err != nil {
		return DiskUsage{}, fmt.Errorf("measure %s: %w", pgdata, err)
	}
	bsize := int64(fsStat.Bsize) //nolint:unconvert // Bsize is an int32 or uint32 on some platforms
	return DiskUsage{DataBytes: used, VolumeFreeBytes: int64(fsStat.Bavail) * bsize,
		VolumeBytes: int64(fsStat.Blocks) * bsize, MeasuredAt: time.Now().UTC()}, nil
}

// writeDiskUsage measures pgdata and replaces DiskUsageFile atomically.
func writeDiskUsage(pgdata string) error {
	u, err := MeasureDisk(pgdata)
	if err != nil {
		return err
	}
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	path := DiskUsageFile(pgdata)
	tmp := path + ".tmp"
	// 0644: the postgres server (the same account here) reads it.
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// reportDiskUsage keeps DiskUsageFile current until ctx ends: at once,
// then every DiskUsageEvery.
func reportDiskUsage(ctx context.Context, pgdata string, log *slog.Logger) {
	for {
		if err := writeDiskUsage(pgdata); err != nil {
			log.Warn("could not measure the data volume", "err", err)
		}
		if !sleep(ctx, DiskUsageEvery) {
			return
		}
	}
}
