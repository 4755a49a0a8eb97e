package instance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA is a CA that signs server certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return testCA{cert: c, key: k, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca testCA) serverCert(t *testing.T) tls.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// fakePrimary answers PostgreSQL's SSLRequest as a server without TLS ('N')
// or with the given certificate, and returns its port.
func fakePrimary(t *testing.T, cert *tls.Certificate) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req := make([]byte, 8)
				if _, err := io.ReadFull(c, req); err != nil {
					return
				}
				if cert == nil {
					_, _ = c.Write([]byte("N"))
					return
				}
				_, _ = c.Write([]byte("S"))
				_ = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*cert}}).Handshake()
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// A standby verifies its primary as soon as the primary serves a
// certificate of the cluster CA, streams with sslmode=prefer from one that
// serves no TLS yet (a pod from before TLS), and never goes back from
// verify-full.
func TestStandbyVerifiesItsPrimaryOnceItServesTheClusterCertificate(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	good, wrong := ca.serverCert(t), other.serverCert(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		cert         *tls.Certificate
		confVerifies bool
		wantVerify   bool
	}{
		{"primary serves the cluster's certificate", &good, false, true},
		{"primary serves no TLS yet", nil, false, false},
		{"primary serves another CA's certificate", &wrong, false, false},
		{"already verify-full: never downgraded", nil, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pgdata := t.TempDir()
			up := Upstream{Host: "127.0.0.1", Port: fakePrimary(t, tt.cert), User: "streaming_replica", PassFile: "/pass",
				Slot: "db_2", ApplicationName: "db_2", SSLRootCert: caFile}
			current := up
			if !tt.confVerifies {
				current.SSLRootCert = ""
			}
			if err := os.WriteFile(filepath.Join(pgdata, ConfFile), []byte(RenderConf(Config{Primary: &current}.Settings())), 0o600); err != nil {
				t.Fatal(err)
			}
			got := upstreamSSL(pgdata, up)
			if (got.SSLRootCert != "") != tt.wantVerify {
				t.Fatalf("verify-full = %v, want %v (%s)", got.SSLRootCert != "", tt.wantVerify, got.sslParams())
			}
		})
	}
	if err := upstreamVerified(Upstream{Host: "127.0.0.1", Port: fakePrimary(t, &good), SSLRootCert: caFile}, time.Second); err != nil {
		t.Fatalf("the cluster's certificate does not verify: %v", err)
	}
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	port := free.Addr().(*net.TCPAddr).Port
	free.Close()
	if err := upstreamVerified(Upstream{Host: "127.0.0.1", Port: port, SSLRootCert: caFile}, time.Second); err == nil {
		t.Fatal("an unreachable primary counts as verified")
	}
}
