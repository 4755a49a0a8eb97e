package postgres

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// verifyFull is the libpq setting that makes a test connect as an app
// must: verify-full against the ca.crt of a credential Secret (written to
// a file, as an app mounts it). A Secret without ca.crt fails the test.
func (s *story) verifyFull(sec *corev1.Secret) string {
	s.t.Helper()
	ca := sec.Data[keyCACert]
	if len(ca) == 0 {
		s.t.Fatalf("secret %s has no %s", sec.Name, keyCACert)
	}
	p := filepath.Join(s.dir, fmt.Sprintf("ca-%x.crt", sha256.Sum256(ca)))
	if err := os.WriteFile(p, ca, 0o644); err != nil {
		s.t.Fatal(err)
	}
	return "sslmode=verify-full sslrootcert=" + p
}

// superLogin is the operator's own login to a cluster's instances: the
// superuser's password, verify-full against the server Secret's CA.
func (s *story) superLogin(cluster string) superLogin {
	s.t.Helper()
	var sec corev1.Secret
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: ServerSecretName(cluster)}, &sec); err != nil {
		s.t.Fatal(err)
	}
	pg := s.postgres(cluster)
	return superLogin{password: s.superPassword(cluster), ca: sec.Data[keyCACert], serverName: TLSServerName(pg)}
}

// TestTLSEnforcedAndRotatedWithoutRestart runs a two-instance cluster whose
// server certificate lives 90 s: a plaintext network login is refused
// before any password, verify-full with the app Secret's CA succeeds (by
// IP and by name), another CA is refused, the replica streams over TLS,
// and the certificate renewed with a third of its life left is served by
// both instances to new connections with their postmasters never restarted.
func TestTLSEnforcedAndRotatedWithoutRestart(t *testing.T) {
	const lifetime = 90 * time.Second
	s := startStoryWith(t, func(r *PostgresReconciler) { r.ServerCertLifetime = lifetime })
	pg := &v1alpha1.Postgres{
		ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: s.ns},
		Spec:       v1alpha1.PostgresSpec{Version: "16", Instances: 2, Storage: v1alpha1.Storage{Size: "1Gi"}, Database: "shop"},
	}
	if err := env.Client.Create(s.ctx, pg); err != nil {
		t.Fatal(err)
	}
	s.waitReady("tls", 2)
	s.waitStreaming("tls", 1)
	app := s.secret(SecretName("tls", SecretApp))
	if uri := string(app.Data["uri"]); !strings.Contains(uri, "sslmode=verify-full&sslrootcert="+url.QueryEscape(AppCAPath("tls"))) {
		t.Errorf("app uri %q does not ask for verify-full with the mounted CA", redactURI(uri))
	}
	if !samePEM(app.Data[keyCACert], s.secret(ServerSecretName("tls")).Data[keyCACert]) {
		t.Error("the app Secret's ca.crt is not the CA of the server certificate")
	}
	s.tlsLoginsChecked("tls", &app)

	pst := s.instanceProbes("tls")
	before := map[string]string{}
	for name, p := range pst {
		before[name] = p.serial()
	}
	t.Logf("serving serials %v; waiting for the renewal", before)
	s.eventually("both instances serve a renewed certificate", 2*lifetime, func() (bool, string) {
		for name, p := range pst {
			if got := p.serial(); got == before[name] || got == "" {
				return false, fmt.Sprintf("%s still serves %s", name, got)
			}
		}
		return true, ""
	})
	for name, p := range pst {
		if start := p.startTime(); !start.Equal(p.started) {
			t.Errorf("%s restarted for the new certificate: postmaster started %s, was %s", name, start, p.started)
		}
	}
	s.walSendersOverTLS("tls", 1)
	db := s.db("tls", RWService("tls"))
	if _, err := db.ExecContext(s.ctx, `CREATE TABLE after_rotation (id int)`); err != nil {
		t.Fatalf("a verify-full login after the rotation: %v", err)
	}
}

// tlsLoginsChecked wants plaintext refused by pg_hba.conf, verify-full
// with the cluster CA accepted (by IP and by the name localhost), and
// verify-full with another CA refused.
func (s *story) tlsLoginsChecked(cluster string, app *corev1.Secret) {
	t := s.t
	addr, err := s.kube.Resolve(s.ctx, s.ns, RWService(cluster))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	login := func(host, tlsParams string) error {
		db, err := sql.Open("postgres", fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s %s connect_timeout=5",
			host, port, app.Data["username"], app.Data["password"], app.Data["dbname"], tlsParams))
		if err != nil {
			return err
		}
		defer db.Close()
		return db.PingContext(s.ctx)
	}
	if err := login(host, "sslmode=disable"); err == nil || !strings.Contains(err.Error(), "no encryption") {
		t.Errorf("plaintext login: %v, want pg_hba.conf's rejection of no encryption", err)
	}
	for _, h := range []string{host, "localhost"} {
		if err := login(h, s.verifyFull(app)); err != nil {
			t.Errorf("verify-full login to %s with the cluster CA: %v", h, err)
		}
	}
	other, err := newCA(nil, "someone else", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := login(host, s.verifyFull(&corev1.Secret{Data: map[string][]byte{keyCACert: other.Cert}})); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Errorf("verify-full login with another CA: %v, want a certificate error", err)
	}
	t.Logf("FACT plaintext refused, verify-full accepted by IP and name, another CA refused")
}

// walSendersOverTLS wants n streaming walsenders on the primary, each on
// a TLS connection (pg_stat_ssl).
func (s *story) walSendersOverTLS(cluster string, n int) {
	db := s.superDB(cluster)
	defer db.Close()
	s.eventually(fmt.Sprintf("%d walsenders streaming over TLS", n), 2*time.Minute, func() (bool, string) {
		var all, ssl int
		err := db.QueryRowContext(s.ctx, `SELECT count(*), count(*) FILTER (WHERE s.ssl)
			FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming'`).Scan(&all, &ssl)
		return err == nil && all == n && ssl == n, fmt.Sprintf("streaming %d, over TLS %d, err %v", all, ssl, err)
	})
}

func (s *story) secret(name string) corev1.Secret {
	s.t.Helper()
	var sec corev1.Secret
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, &sec); err != nil {
		s.t.Fatal(err)
	}
	return sec
}

// tlsProbe watches one instance's server: the certificate a new
// connection is served, and when its postmaster started.
type tlsProbe struct {
	s       *story
	addr    string
	ca      []byte
	db      *sql.DB
	started time.Time
}

// instanceProbes are tlsProbes of every instance, straight to its server.
func (s *story) instanceProbes(cluster string) map[string]*tlsProbe {
	out := map[string]*tlsProbe{}
	login := s.superLogin(cluster)
	for _, in := range s.postgres(cluster).Status.Instances {
		addr, err := s.kube.DirectAddr(s.ns, in.Name)
		if err != nil {
			s.t.Fatal(err)
		}
		db, err := pgConn(addr, login)
		if err != nil {
			s.t.Fatal(err)
		}
		s.t.Cleanup(func() { db.Close() })
		p := &tlsProbe{s: s, addr: addr, ca: login.ca, db: db}
		p.started = p.startTime()
		out[in.Name] = p
	}
	return out
}

func (p *tlsProbe) startTime() time.Time {
	var t time.Time
	if err := p.db.QueryRowContext(p.s.ctx, `SELECT pg_postmaster_start_time()`).Scan(&t); err != nil {
		p.s.t.Fatalf("postmaster start time of %s: %v", p.addr, err)
	}
	return t
}

// serial is the serial number of the certificate a new connection is
// served, verified against the CA for the loopback address; "" when the
// handshake fails.
func (p *tlsProbe) serial() string {
	cert, err := servedCertificate(p.addr, p.ca)
	if err != nil {
		p.s.t.Logf("TLS handshake with %s: %v", p.addr, err)
		return ""
	}
	return cert.SerialNumber.Text(16)
}

// servedCertificate speaks PostgreSQL's SSLRequest, then TLS, to addr and
// returns the verified server certificate.
func servedCertificate(addr string, caPEM []byte) (*x509.Certificate, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := make([]byte, 8)
	binary.BigEndian.PutUint32(req[0:4], 8)
	binary.BigEndian.PutUint32(req[4:8], 80877103) // SSLRequest
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	answer := make([]byte, 1)
	if _, err := io.ReadFull(conn, answer); err != nil {
		return nil, fmt.Errorf("read the answer to SSLRequest: %w", err)
	}
	if answer[0] != 'S' {
		return nil, fmt.Errorf("server refused TLS (answered %q)", answer)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	host, _, _ := net.SplitHostPort(addr)
	tc := tls.Client(conn, &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tc.ConnectionState().PeerCertificates[0], nil
}

// redactURI drops the password from a URI for a test message.
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
