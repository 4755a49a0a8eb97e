// Package backup is homeostat's PostgreSQL backup store on S3: base backups
// streamed from pg_basebackup through zstd into parts with a manifest written
// last, the WAL archive (wal-push / wal-fetch for archive_command and
// restore_command), retention, point-in-time restore and verification by
// restoring into a scratch directory. It knows nothing of Kubernetes.
//
// Layout under the configured prefix:
//
//	basebackups/<ID>/part-00000.tar.zst ...   the compressed tar, split in parts
//	basebackups/<ID>/manifest.json            written last: a backup without it is incomplete
//	wal/<segment or history file>.zst         archived WAL, compressed, sha256 of the original in metadata
package backup
