package postgres

import (
	"context"
	"database/sql"
)

// instanceConn is one instance's connection for a reconcile, or why there
// is none.
type instanceConn struct {
	db   *sql.DB
	addr string
	err  error
}

// conn is the reconcile's connection to an instance as the superuser,
// opened at its first use and shared by every step after (Observe,
// ApplyParameters, SyncPasswords, replication and archiving checks): one
// connection per instance per reconcile, instead of one per step, each
// with its TCP, TLS and SCRAM handshakes. Reconcile closes them all
// (closeConns). A failed resolve is remembered, so an instance that is gone
// costs one attempt.
func (r *PostgresReconciler) conn(ctx context.Context, c *cluster, name string) (*sql.DB, string, error) {
	if ic, ok := c.conns[name]; ok {
		return ic.db, ic.addr, ic.err
	}
	if c.conns == nil {
		c.conns = map[string]*instanceConn{}
	}
	ic := &instanceConn{}
	c.conns[name] = ic
	ic.addr, ic.err = r.resolver()(ctx, c.pg.Namespace, name)
	if ic.err == nil {
		// pgConn allows one open connection: every step's queries share it.
		ic.db, ic.err = pgConn(ic.addr, c.login(name))
	}
	return ic.db, ic.addr, ic.err
}

// closeConns ends the reconcile's connections.
func (c *cluster) closeConns() {
	for _, ic := range c.conns {
		if ic.db != nil {
			_ = ic.db.Close()
		}
	}
	c.conns = nil
}
