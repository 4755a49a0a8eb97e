// Package instance is the PostgreSQL instance manager that runs inside each
// PostgreSQL pod (`homeostat instance ...`): it creates a primary (init) or a
// replica (join), owns postgresql.conf's homeostat.conf include and
// pg_hba.conf, supervises postgres as the pod's main process (run), promotes
// a replica and reports status as JSON. Orchestration across pods belongs to
// operators/postgres; this package only does process and file work on one
// data directory.
//
// Configuration homeostat owns lives in PGDATA/homeostat.conf, included at
// the end of postgresql.conf, and in pg_hba.conf; both are rewritten by every
// init and join, so re-running them on an existing directory applies new
// settings. ALTER SYSTEM (postgresql.auto.conf) still wins over both: that is
// how synchronous_standby_names is set at run time (see SetSynchronousStandbys).
package instance
