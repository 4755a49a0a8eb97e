package v1alpha1

import "strings"

// reservedParameters are the PostgreSQL settings homeostat owns: where the
// server listens and what replication, archiving, recovery and client
// authentication (TLS included) need. A Postgres may not set them in spec.parameters, since
// an override would break replicas, backups or failover in ways the
// operator cannot see.
var reservedParameters = map[string]bool{
	"listen_addresses": true, "port": true, "unix_socket_directories": true,
	"wal_level": true, "max_wal_senders": true, "max_replication_slots": true,
	"hot_standby": true, "hot_standby_feedback": true, "wal_log_hints": true,
	"archive_mode": true, "archive_command": true, "archive_library": true, "restore_command": true,
	"primary_conninfo": true, "primary_slot_name": true, "synchronous_standby_names": true,
	"password_encryption": true, "hba_file": true, "ident_file": true, "config_file": true, "data_directory": true,
	"logging_collector": true, "log_destination": true,
	"ssl": true, "ssl_cert_file": true, "ssl_key_file": true, "ssl_ca_file": true,
}

// ReservedParameter says whether name (case-insensitive, as PostgreSQL
// treats setting names) is a setting homeostat owns; every recovery_target
// setting is, since homeostat writes those for bootstrap from a backup.
func ReservedParameter(name string) bool {
	n := strings.ToLower(name)
	return reservedParameters[n] || strings.HasPrefix(n, "recovery_target")
}
