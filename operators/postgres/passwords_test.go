package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"slices"
	"testing"
)

// Editing a credential secret is all a rotation takes on the database side:
// the next reconcile finds the role's verifier (made by the server itself)
// no longer matches the secret and sets it; a role that matches is not
// written, and the next reconcile writes nothing.
func TestSecretsAreTheSourceOfTruthForRolePasswords(t *testing.T) {
	const super = "super-pw"
	addr, db := scramServer(t, super)
	for _, stmt := range []string{
		"CREATE ROLE shop WITH LOGIN PASSWORD 'app-pw'",
		"CREATE ROLE " + replUserName + " WITH LOGIN REPLICATION PASSWORD 'repl-old'",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	ns := newNamespace(t)
	pg := createPostgres(t, ns, nil) // database "shop": owner shop
	for kind, pw := range map[string]string{SecretApp: "app-pw", SecretReplication: "repl-new", SecretSuperuser: super} {
		user := map[string]string{SecretApp: owner(pg), SecretReplication: replUserName, SecretSuperuser: superuserName}[kind]
		if err := env.Client.Create(context.Background(), CredentialSecret(pg, kind, Credentials{Username: user, Password: pw, Database: "shop"})); err != nil {
			t.Fatal(err)
		}
	}
	r, c := onRealPrimary(t, pg, addr, super)
	if err := r.syncPasswords(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	login := func(user, password string) error {
		conn, err := sql.Open("postgres", fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres sslmode=disable connect_timeout=5",
			host, port, user, quoteConnValue(password)))
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		return conn.Ping()
	}
	for _, tc := range []struct {
		user, password string
		ok             bool
	}{
		{replUserName, "repl-new", true}, {replUserName, "repl-old", false}, {"shop", "app-pw", true},
	} {
		if err := login(tc.user, tc.password); (err == nil) != tc.ok {
			t.Errorf("login %s with %s: %v, want ok=%v", tc.user, tc.password, err, tc.ok)
		}
	}
	changed, err := setRolePasswords(context.Background(), addr, superLogin{password: super}, map[string]string{"shop": "app-pw", replUserName: "repl-new"})
	if err != nil || len(changed) != 0 {
		t.Fatalf("a second pass changed %v (%v), want nothing", changed, err)
	}
	changed, err = setRolePasswords(context.Background(), addr, superLogin{password: super}, map[string]string{"shop": "app-rotated", replUserName: "repl-new"})
	if err != nil || !slices.Equal(changed, []string{"shop"}) {
		t.Fatalf("rotating the app password changed %v (%v), want [shop]", changed, err)
	}
	if err := login("shop", "app-rotated"); err != nil {
		t.Fatal(err)
	}
}
