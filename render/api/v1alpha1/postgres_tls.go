package v1alpha1

// PostgresCADir is where an app mounts the ca.crt of a Postgres's app
// Secret: the Secret's uri names PostgresCADir(name)+"/ca.crt" as
// sslrootcert, and App.spec.postgres mounts the key there, so the
// DATABASE_URL it injects verifies the server (sslmode=verify-full).
func PostgresCADir(postgres string) string { return "/etc/homeostat/postgres/" + postgres }
