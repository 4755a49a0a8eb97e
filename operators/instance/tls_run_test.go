package instance_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"homeostat.dev/homeostat/operators/instance"
)

// caAndServerCert are a CA (PEM) and a server certificate it signed for
// 127.0.0.1.
func caAndServerCert(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// Named subjects: OpenSSL (libpq) finds an issuer by name.
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

func writeTLSSource(t *testing.T, dir string, cert, key, ca []byte) {
	t.Helper()
	for name, b := range map[string][]byte{instance.TLSCertFile: cert, instance.TLSKeyFile: key, instance.TLSCAFile: ca} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// verifiesUpstream says whether the replica's primary_conninfo asks for
// verify-full.
func verifiesUpstream(t *testing.T, n *node) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.pgdata, instance.ConfFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "primary_conninfo = ") {
			return strings.Contains(line, "sslmode=verify-full")
		}
	}
	return false
}

// writeServerSecret writes what a mounted server Secret holds: a
// certificate for 127.0.0.1 signed by ca, its key, and ca.crt.
func writeServerSecret(t *testing.T) string {
	t.Helper()
	caPEM, c := caAndServerCert(t)
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeTLSSource(t, dir, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), caPEM)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A primary and replica made without TLS get it as their pods are
// replaced: the replica first (its own server requires TLS at once, and it
// keeps streaming from the primary that serves none), then the primary;
// the replica then moves its streaming to verify-full by itself, with a
// reload, and the primary's walsender runs over TLS.
func TestClusterFromBeforeTLSMovesToVerifiedStreaming(t *testing.T) {
	p := newNode(t, "primary")
	homeostatOut(t, p.initArgs()...)
	pr := p.run(t)
	r := newNode(t, "replica")
	r.secrets = p.secrets
	primary := "127.0.0.1:" + strconv.Itoa(p.port)
	homeostatOut(t, append(append([]string{"instance", "join"}, r.common()...), "--primary", primary, "--name", "replica-1")...)
	src := writeServerSecret(t)
	tlsFlags := []string{"--tls-dir", src, "--tls-poll", "1s"}

	rr := r.runWith(t, nil, append(tlsFlags, "--primary", primary, "--name", "replica-1")...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica's instance run:\n%s", rr.out.String())
			b, _ := os.ReadFile(filepath.Join(r.pgdata, instance.ConfFile))
			t.Logf("replica's %s:\n%s", instance.ConfFile, b)
		}
	})
	rdb, pdb := r.superuser(t), p.superuser(t)
	if _, err := pdb.Exec("CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a row streamed from the primary without TLS", func() bool {
		var n int
		return rdb.QueryRow("SELECT count(*) FROM t").Scan(&n) == nil && n == 1
	})
	plain := func(n *node) error {
		db, err := sql.Open("postgres", fmt.Sprintf("host=127.0.0.1 port=%d user=streaming_replica password=%s dbname=postgres sslmode=disable connect_timeout=5", n.port, replPassword))
		if err != nil {
			return err
		}
		defer db.Close()
		return db.Ping()
	}
	if err := plain(r); err == nil || !strings.Contains(err.Error(), "no encryption") {
		t.Fatalf("plaintext login to the replica with TLS: %v, want refused", err)
	}
	if verifiesUpstream(t, r) {
		t.Fatal("the replica verifies a primary that serves no TLS")
	}

	pr.stop(t)
	p.runWith(t, nil, tlsFlags...)
	pdb = p.superuser(t)
	waitFor(t, 60*time.Second, "the replica streaming with verify-full over TLS", func() bool {
		var ssl bool
		err := pdb.QueryRow(`SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming'`).Scan(&ssl)
		return err == nil && ssl && verifiesUpstream(t, r)
	})
	if err := plain(p); err == nil || !strings.Contains(err.Error(), "no encryption") {
		t.Fatalf("plaintext login to the primary with TLS: %v, want refused", err)
	}
	if _, err := pdb.Exec("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a row streamed over verified TLS", func() bool {
		var n int
		return rdb.QueryRow("SELECT count(*) FROM t").Scan(&n) == nil && n == 2
	})
}
