package backup

import "strings"

// ArchiveCommand is the archive_command that pushes each finished WAL file to
// the store with `homeostat backup wal-push`. It names the store but carries
// no credential: the server's environment or cfg.CredentialsDir provides them.
func ArchiveCommand(homeostat string, cfg Config) string {
	return shellJoin(append([]string{homeostat, "backup", "wal-push"}, cfg.Args()...)) + " %p"
}

// RestoreCommand is the restore_command that fetches archived WAL with
// `homeostat backup wal-fetch`.
func RestoreCommand(homeostat string, cfg Config) string {
	return shellJoin(append([]string{homeostat, "backup", "wal-fetch"}, cfg.Args()...)) + " %f %p"
}

// shellJoin quotes each word for /bin/sh, which runs PostgreSQL's commands.
func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,") == "" {
			q[i] = w
			continue
		}
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// QuoteConf quotes a value for postgresql.conf.
func QuoteConf(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}
