// Package postgres is the Postgres operator stage: controllers that turn a
// Postgres object (applied by sync) into a replicated PostgreSQL cluster and a
// Backup object into a base backup in S3.
//
// The controllers only orchestrate. Everything that touches a data directory
// runs inside the cluster's pods as `homeostat instance ...` and
// `homeostat backup ...` (the data plane), started through Jobs and Pods whose
// specs are built by the pure functions in specs.go. The controllers talk to
// PostgreSQL directly (lib/pq) only to observe it, to promote a replica and to
// keep synchronous_standby_names in step with spec.synchronous.
package postgres
