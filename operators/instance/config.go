package instance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/backup/pgbin"
)

// ConfFile is the file in PGDATA that homeostat owns and postgresql.conf includes.
const ConfFile = "homeostat.conf"

// Config is what homeostat writes into an instance's configuration.
type Config struct {
	Port            int
	ListenAddresses string
	SocketDir       string
	Superuser       string
	ReplicationUser string
	// ArchiveCommand turns on archive_mode when set (see backup.ArchiveCommand).
	ArchiveCommand string
	// RestoreCommand lets a standby catch up from the archive when streaming
	// cannot (see backup.RestoreCommand).
	RestoreCommand string
	// Primary makes the instance a standby of that primary.
	Primary *Upstream
	// Parameters are the user's settings, merged over homeostat's.
	Parameters map[string]string
	// TLSDir turns TLS on with the certificate installed there (see
	// DefaultTLSDir), and makes pg_hba.conf refuse network logins without
	// it; empty leaves TLS off.
	TLSDir string
	// TLSSource is the mounted server Secret init and join install into
	// TLSDir before postgres first starts.
	TLSSource string
}

// Upstream is how a standby reaches its primary.
type Upstream struct {
	Host string
	Port int
	User string
	// PassFile holds the replication password (libpq passfile format), so the
	// password never appears in postgresql.conf.
	PassFile string
	// Slot is the physical replication slot on the primary.
	Slot string
	// ApplicationName is what pg_stat_replication and
	// synchronous_standby_names call this standby.
	ApplicationName string
	// SSLRootCert is the cluster CA: the standby then connects with
	// sslmode=verify-full. Empty means sslmode=prefer (an instance with no
	// certificate installed).
	SSLRootCert string
}

// sslParams are a standby's libpq TLS settings for its upstream.
func (u *Upstream) sslParams() string {
	if u.SSLRootCert == "" {
		return "sslmode=prefer"
	}
	return "sslmode=verify-full sslrootcert=" + conninfoQuote(u.SSLRootCert)
}

// Settings are homeostat's settings with the user's parameters merged over
// them.
func (c Config) Settings() map[string]string {
	s := map[string]string{
		"listen_addresses":        c.ListenAddresses,
		"port":                    strconv.Itoa(c.Port),
		"unix_socket_directories": c.SocketDir,
		"wal_level":               "replica",
		"max_wal_senders":         "10",
		"max_replication_slots":   "10",
		"hot_standby":             "on",
		"hot_standby_feedback":    "on",
		"wal_log_hints":           "on",
		"password_encryption":     "scram-sha-256",
		"logging_collector":       "off",
		"log_destination":         "stderr",
		"archive_mode":            "off",
		// A standby whose primary went away retries every second, so it
		// streams from a promoted replica (and confirms its commits) at once.
		"wal_retrieve_retry_interval": "1s",
		// Replies every second let an isolated primary see at once that
		// no replica reaches it any more (see watchIsolation).
		"wal_receiver_status_interval": "1s",
	}
	if c.ArchiveCommand != "" {
		// "always": a standby archives what it receives too (wal-push is
		// idempotent by checksum), so WAL a lost primary never archived
		// still reaches the store from a replica.
		s["archive_mode"] = "always"
		s["archive_command"] = c.ArchiveCommand
		s["archive_timeout"] = "5min"
	}
	if c.RestoreCommand != "" {
		s["restore_command"] = c.RestoreCommand
	}
	if p := c.Primary; p != nil {
		s["primary_conninfo"] = fmt.Sprintf("host=%s port=%d user=%s passfile=%s application_name=%s %s",
			conninfoQuote(p.Host), p.Port, conninfoQuote(p.User), conninfoQuote(p.PassFile), conninfoQuote(p.ApplicationName), p.sslParams())
		s["primary_slot_name"] = p.Slot
		s["recovery_target_timeline"] = "latest"
	}
	if c.TLSDir != "" {
		for k, v := range tlsSettings(c.TLSDir) {
			s[k] = v
		}
	}
	for k, v := range c.Parameters {
		s[k] = v
	}
	return s
}

// RenderConf renders settings as postgresql.conf lines, sorted by name.
func RenderConf(settings map[string]string) string {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by homeostat instance init/join; edits are overwritten.\n")
	b.WriteString("# Use --parameter name=value, or ALTER SYSTEM, to change a setting.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, backup.QuoteConf(settings[k]))
	}
	return b.String()
}

// HBA is pg_hba.conf: the superuser is trusted only on the unix socket (the
// pod itself); everything over the network, replication included, needs a
// scram-sha-256 password from any address, because pods get new IPs. With
// TLS, a network login without it is rejected before any password is
// asked for.
func (c Config) HBA() string {
	if c.TLSDir != "" {
		return fmt.Sprintf(`# Written by homeostat instance init/join/run; edits are overwritten.
# TYPE    DATABASE     USER  ADDRESS  METHOD
local     all          %[1]s          trust
local     replication  %[1]s          trust
local     all          all            scram-sha-256
hostnossl all          all   all      reject
hostnossl replication  all   all      reject
hostssl   replication  %[2]s  all     scram-sha-256
hostssl   all          all   all      scram-sha-256
`, hbaQuote(c.Superuser), hbaQuote(c.ReplicationUser))
	}
	return fmt.Sprintf(`# Written by homeostat instance init/join; edits are overwritten.
# TYPE  DATABASE     USER  ADDRESS  METHOD
local   all          %[1]s          trust
local   replication  %[1]s          trust
local   all          all            scram-sha-256
host    replication  %[2]s  all     scram-sha-256
host    all          all   all      scram-sha-256
`, hbaQuote(c.Superuser), hbaQuote(c.ReplicationUser))
}

func hbaQuote(s string) string {
	if strings.ContainsAny(s, " \t\",#") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

func conninfoQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, ` '\`) {
		return s
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// ParseParameters reads repeated --parameter name=value flags.
func ParseParameters(flags []string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\n'=") {
			return nil, fmt.Errorf("parameter %q: want name=value", f)
		}
		out[k] = v
	}
	return out, nil
}

// writeConfig writes homeostat.conf and pg_hba.conf and makes sure
// postgresql.conf includes homeostat.conf (once, at the end, so ours win over
// initdb's defaults).
func writeConfig(pgdata string, c Config) error {
	if err := dropFinishedRestore(pgdata); err != nil {
		return err
	}
	if c.TLSSource != "" {
		if _, err := installTLS(c.TLSSource, c.TLSDir); err != nil {
			return err
		}
	}
	if err := pgbin.WriteFile(filepath.Join(pgdata, ConfFile), []byte(RenderConf(c.Settings()))); err != nil {
		return err
	}
	if err := pgbin.WriteFile(filepath.Join(pgdata, "pg_hba.conf"), []byte(c.HBA())); err != nil {
		return err
	}
	main := filepath.Join(pgdata, "postgresql.conf")
	data, err := os.ReadFile(main)
	if err != nil {
		return fmt.Errorf("read %s: %w", main, err)
	}
	include := "include '" + ConfFile + "'"
	if strings.Contains(string(data), "\n"+include+"\n") {
		return nil
	}
	data = append(data, []byte("\n# homeostat's settings; keep this line last\n"+include+"\n")...)
	return pgbin.WriteFile(main, data)
}

// SlotName turns an instance name (a pod name such as "db-1") into a valid
// replication slot and application name ("db_1").
func SlotName(name string) string {
	b := []byte(strings.ToLower(name))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			b[i] = '_'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return string(b)
}

// dropFinishedRestore removes the recovery settings `homeostat backup
// restore` appended to postgresql.auto.conf once recovery is over (there is
// no recovery.signal): left in place, a standby made from this directory
// would stop replaying at the old recovery target and promote itself, and
// fetch WAL from the source cluster's store.
func dropFinishedRestore(pgdata string) error {
	if _, err := os.Stat(filepath.Join(pgdata, "recovery.signal")); err == nil {
		return nil
	}
	p := filepath.Join(pgdata, "postgresql.auto.conf")
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	kept, changed := withoutRestoreSettings(string(data))
	if !changed {
		return nil
	}
	return pgbin.WriteFile(p, []byte(kept))
}

// restoreSettings are what a restore sets; homeostat never sets them with
// ALTER SYSTEM otherwise. They are matched by name, not by the block
// RecoveryMarker starts, because ALTER SYSTEM rewrites the file without
// comments.
var restoreSettings = map[string]bool{
	"restore_command": true, "recovery_target": true, "recovery_target_time": true, "recovery_target_lsn": true,
	"recovery_target_xid": true, "recovery_target_name": true, "recovery_target_action": true,
	"recovery_target_inclusive": true, "recovery_target_timeline": true,
}

// withoutRestoreSettings drops the restore's marker and settings lines.
func withoutRestoreSettings(conf string) (string, bool) {
	var out []string
	changed := false
	for _, line := range strings.SplitAfter(conf, "\n") {
		key, _, _ := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if strings.TrimSpace(line) == backup.RecoveryMarker || restoreSettings[key] {
			changed = true
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, ""), changed
}
