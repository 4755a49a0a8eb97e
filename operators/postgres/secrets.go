package postgres

import (
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Secret kinds of a cluster: each becomes the Secret "<cluster>-<kind>".
const (
	SecretSuperuser   = "superuser"
	SecretReplication = "replication"
	SecretApp         = "app"
)

// secretKinds is the order in which a cluster's secrets are created.
var secretKinds = []string{SecretSuperuser, SecretReplication, SecretApp}

// Credentials is one role's login: what a credential Secret is built from.
type Credentials struct {
	Username string
	Password string
	Database string
}

// RWHost is the DNS name clients use to reach the primary.
func RWHost(pg *v1alpha1.Postgres) string {
	return fmt.Sprintf("%s.%s.svc", RWService(pg.Name), pg.Namespace)
}

// CredentialSecret builds a credential Secret with the keys CloudNativePG's
// users know (username, password, host, port, dbname, uri, jdbc-uri), so
// App.spec.postgres can inject "uri" as DATABASE_URL. The URIs ask for
// verify-full TLS against the CA at sslrootcert (AppCAPath), which the
// Secret carries as ca.crt once the cluster has one (see ensureAppSecretTLS).
func CredentialSecret(pg *v1alpha1.Postgres, kind string, c Credentials) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      SecretName(pg.Name, kind),
			Namespace: pg.Namespace,
			Labels:    withLabels(commonLabels(pg), "homeostat.dev/secret", kind),
		},
		Type:       corev1.SecretTypeBasicAuth,
		StringData: credentialData(pg, c),
	}
}

// credentialData are a credential Secret's keys but ca.crt.
func credentialData(pg *v1alpha1.Postgres, c Credentials) map[string]string {
	host := RWHost(pg)
	port := strconv.Itoa(postgresPort)
	tls := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {AppCAPath(pg.Name)}}
	u := url.URL{
		Scheme:   "postgresql",
		User:     url.UserPassword(c.Username, c.Password),
		Host:     host + ":" + port,
		Path:     "/" + c.Database,
		RawQuery: tls.Encode(),
	}
	q := url.Values{"user": {c.Username}, "password": {c.Password}, "sslmode": {"verify-full"}, "sslrootcert": {AppCAPath(pg.Name)}}
	jdbc := fmt.Sprintf("jdbc:postgresql://%s:%s/%s?%s", host, port, c.Database, q.Encode())
	return map[string]string{
		"username":    c.Username,
		"password":    c.Password,
		"host":        host,
		"port":        port,
		"dbname":      c.Database,
		"sslmode":     "verify-full",
		"sslrootcert": AppCAPath(pg.Name),
		"uri":         u.String(),
		"jdbc-uri":    jdbc,
	}
}

// AppCAPath is where an app mounts the ca.crt key of a cluster's credential
// Secret; the Secret's URIs name it as sslrootcert, and App.spec.postgres
// mounts it there.
func AppCAPath(cluster string) string { return v1alpha1.PostgresCADir(cluster) + "/" + keyCACert }

// NewCredentials makes the credentials of one secret kind with a fresh
// random password read from rnd (crypto/rand.Reader in production).
func NewCredentials(pg *v1alpha1.Postgres, kind string, rnd io.Reader) (Credentials, error) {
	pw, err := randomPassword(rnd, 32)
	if err != nil {
		return Credentials{}, fmt.Errorf("generate password for %s: %w", SecretName(pg.Name, kind), err)
	}
	switch kind {
	case SecretSuperuser:
		return Credentials{Username: superuserName, Password: pw, Database: "postgres"}, nil
	case SecretReplication:
		return Credentials{Username: replUserName, Password: pw, Database: "postgres"}, nil
	default:
		return Credentials{Username: owner(pg), Password: pw, Database: database(pg)}, nil
	}
}

const passwordAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomPassword draws n characters uniformly from an alphabet that needs no
// escaping in a URI, a connection string or a shell.
func randomPassword(rnd io.Reader, n int) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	b := make([]byte, n)
	max := big.NewInt(int64(len(passwordAlphabet)))
	for i := range b {
		k, err := rand.Int(rnd, max)
		if err != nil {
			return "", err
		}
		b[i] = passwordAlphabet[k.Int64()]
	}
	return string(b), nil
}
