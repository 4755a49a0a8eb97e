package postgres

import (
	"context"
	"database/sql"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/instance"
)

// syncPasswords keeps the application and replication roles' passwords equal
// to their secrets on a running primary, so that editing a secret is all a
// rotation takes on the database side (Apps and replicas pick the new value
// up when they restart; open connections stay). Each role is checked
// against its verifier in pg_authid and written only when they differ; the
// whole step is skipped while the secrets and the primary are those of its
// last success (AnnotationPasswordsSynced). The
// superuser's own password is left to `instance run`: the operator logs in
// with it, so a changed one is the AuthenticationFailed case.
func (r *PostgresReconciler) syncPasswords(ctx context.Context, c *cluster) error {
	primary := c.pg.Status.Primary
	if o := c.obs[primary]; primary == "" || !o.Reachable || o.InRecovery {
		return nil
	}
	key := passwordsKey(c)
	if c.pg.Annotations[AnnotationPasswordsSynced] == key {
		return nil
	}
	want := map[string]string{}
	for _, kind := range []string{SecretApp, SecretReplication} {
		var s corev1.Secret
		if err := r.Get(ctx, client.ObjectKey{Namespace: c.pg.Namespace, Name: SecretName(c.pg.Name, kind)}, &s); err != nil {
			return fmt.Errorf("read secret %s: %w", SecretName(c.pg.Name, kind), err)
		}
		if user, pw := string(s.Data["username"]), string(s.Data["password"]); user != "" && pw != "" {
			want[user] = pw
		}
	}
	db, _, err := r.conn(ctx, c, primary)
	if err != nil {
		return err
	}
	changed, err := setRolePasswordsOn(ctx, db, want)
	if err != nil {
		return fmt.Errorf("set role passwords on %s: %w", primary, err)
	}
	for _, role := range changed {
		r.event(c.pg, "PasswordChanged", "role %s now has the password in its secret", role)
	}
	return r.annotate(ctx, c.pg, AnnotationPasswordsSynced, key)
}

// setRolePasswords sets, on the primary at addr, the password of each role
// in want whose stored verifier was not made from it, and returns those
// roles. Missing roles are left to instance init and run.
func setRolePasswords(ctx context.Context, addr string, superPassword superLogin, want map[string]string) ([]string, error) {
	db, err := pgConn(addr, superPassword)
	if err != nil {
		return nil, err
	}
	defer func() { _ = db.Close() }()
	return setRolePasswordsOn(ctx, db, want)
}

// setRolePasswordsOn is setRolePasswords on an open connection.
func setRolePasswordsOn(ctx context.Context, db *sql.DB, want map[string]string) ([]string, error) {
	logins := make([]instance.Login, 0, len(want))
	for _, role := range sortedKeys(want) {
		logins = append(logins, instance.Login{Role: role, Password: want[role]})
	}
	return instance.SetPasswords(ctx, db, logins, false)
}
