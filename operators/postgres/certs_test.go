package postgres

import (
	"crypto/elliptic"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

var certNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testCA(t *testing.T) keyPair {
	t.Helper()
	ca, err := newCA(nil, "shop/db", certNow, DefaultCALifetime)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestServerHostsNameEveryServiceFormInstanceAndLoopback(t *testing.T) {
	pg := &v1alpha1.Postgres{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}}
	got := ServerHosts(pg, []string{"db-3", "db-1"})
	want := []string{
		"db-rw", "db-rw.shop", "db-rw.shop.svc", "db-rw.shop.svc.cluster.local",
		"db-ro", "db-ro.shop", "db-ro.shop.svc", "db-ro.shop.svc.cluster.local",
		"db-r", "db-r.shop", "db-r.shop.svc", "db-r.shop.svc.cluster.local",
		"db-1", "db-3", "localhost", "127.0.0.1", "::1",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ServerHosts =\n%v\nwant\n%v", got, want)
	}
	if TLSServerName(pg) != "db-rw.shop.svc" || !slices.Contains(got, TLSServerName(pg)) {
		t.Fatalf("the operator's server name %q is not one the certificate names", TLSServerName(pg))
	}
}

func TestServerCertificateIsP256SignedByTheCAForItsHostsOnly(t *testing.T) {
	ca := testCA(t)
	hosts := []string{"db-rw", "db-rw.shop.svc", "db-1", "localhost", "127.0.0.1", "::1"}
	pair, err := newServerCert(nil, ca, hosts, certNow, 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := parsePair(pair)
	if err != nil {
		t.Fatal(err)
	}
	if key.Curve != elliptic.P256() || cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key is %v/%v, want ECDSA P-256", cert.PublicKeyAlgorithm, key.Curve.Params().Name)
	}
	if !cert.NotAfter.Equal(certNow.Add(90*time.Minute)) || cert.IsCA {
		t.Errorf("NotAfter %s, IsCA %v", cert.NotAfter, cert.IsCA)
	}
	caCert, caKey, err := parsePair(ca)
	if err != nil {
		t.Fatal(err)
	}
	if !caCert.IsCA || caKey.Curve != elliptic.P256() || !caCert.NotAfter.Equal(certNow.Add(DefaultCALifetime)) {
		t.Errorf("CA: IsCA %v, curve %s, NotAfter %s", caCert.IsCA, caKey.Curve.Params().Name, caCert.NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	tests := []struct {
		host string
		ok   bool
	}{
		{"db-rw", true}, {"db-rw.shop.svc", true}, {"db-1", true}, {"localhost", true}, {"127.0.0.1", true}, {"::1", true},
		{"db-2", false}, {"other-rw.shop.svc", false}, {"10.0.0.1", false},
	}
	for _, tt := range tests {
		_, err := cert.Verify(x509.VerifyOptions{DNSName: tt.host, Roots: roots, CurrentTime: certNow.Add(time.Minute)})
		if (err == nil) != tt.ok {
			t.Errorf("verify for %s: %v, want ok=%v", tt.host, err, tt.ok)
		}
	}
	other := testCA(t)
	otherCert, _, _ := parsePair(other)
	pool := x509.NewCertPool()
	pool.AddCert(otherCert)
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "db-rw", Roots: pool, CurrentTime: certNow}); err == nil {
		t.Error("a certificate verifies against another cluster's CA")
	}
}

func TestRenewalDecision(t *testing.T) {
	ca := testCA(t)
	other := testCA(t)
	hosts := []string{"db-rw", "db-1", "127.0.0.1"}
	life := 90 * time.Minute
	issue := func(ca keyPair, hosts []string) []byte {
		p, err := newServerCert(nil, ca, hosts, certNow, life)
		if err != nil {
			t.Fatal(err)
		}
		return p.Cert
	}
	good := issue(ca, hosts)
	// NotBefore is backdated (a tenth of a short lifetime): the lifetime
	// counted for the third includes it.
	renewPoint := certNow.Add(life).Add(-(life + backdate(life)) / 3)
	if !renewPoint.After(certNow.Add(life / 2)) {
		t.Fatalf("renewal point %s comes too soon after the issue at %s", renewPoint, certNow)
	}
	tests := []struct {
		name  string
		cert  []byte
		hosts []string
		now   time.Time
		want  string // a part of the reason; "" for none
	}{
		{"fresh", good, hosts, certNow, ""},
		{"just before a third is left", good, hosts, renewPoint.Add(-time.Second), ""},
		{"a third left", good, hosts, renewPoint.Add(time.Second), "expires at"},
		{"expired", good, hosts, certNow.Add(life + time.Hour), "does not verify"},
		{"a new instance it does not name", good, append(slices.Clone(hosts), "db-2"), certNow, "does not name [db-2]"},
		{"a new loopback address", good, append(slices.Clone(hosts), "::1"), certNow, "does not name [::1]"},
		{"signed by another CA", issue(other, hosts), hosts, certNow, "does not verify against the CA"},
		{"not a certificate", []byte("garbage"), hosts, certNow, "does not parse"},
		{"an instance gone is no reason", good, hosts[:2], certNow, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := renewal(tt.cert, ca.Cert, tt.hosts, tt.now)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("renewal = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParsePairRefusesAKeyOfAnotherCertificate(t *testing.T) {
	a, b := testCA(t), testCA(t)
	_, _, err := parsePair(keyPair{Cert: a.Cert, Key: b.Key})
	if err == nil || strings.Contains(err.Error(), "PRIVATE") {
		t.Fatalf("mismatched pair: %v", err)
	}
}

// The CA is renewed with a third of its life left, with the same key and
// name: certificates signed before verify against the new CA certificate,
// and certificates signed after verify against the old one (what clients
// that have not reloaded ca.crt yet hold).
func TestCARenewalKeepsTrustBothWays(t *testing.T) {
	const life = 90 * time.Minute
	ca, err := newCA(nil, "shop/db", certNow, life)
	if err != nil {
		t.Fatal(err)
	}
	renewPoint := certNow.Add(life).Add(-(life + backdate(life)) / 3)
	for _, tt := range []struct {
		at   time.Time
		want string
	}{{certNow, ""}, {renewPoint.Add(-time.Second), ""}, {renewPoint.Add(time.Second), "the CA expires at"}} {
		if got := caRenewal(ca, tt.at); (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("caRenewal at %s = %q, want %q", tt.at, got, tt.want)
		}
	}
	later := renewPoint.Add(time.Second)
	renewed, err := renewCA(nil, ca, "shop/db", later, life)
	if err != nil {
		t.Fatal(err)
	}
	if samePEM(renewed.Cert, ca.Cert) || caRenewal(renewed, later) != "" {
		t.Fatal("the renewed CA is the old one, or due again at once")
	}
	hosts := []string{"db-rw"}
	before, err := newServerCert(nil, ca, hosts, certNow, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	after, err := newServerCert(nil, renewed, hosts, later, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r := renewal(before.Cert, renewed.Cert, hosts, later.Add(time.Minute)); r != "" {
		t.Errorf("a certificate signed before the renewal against the renewed CA: %s", r)
	}
	if r := renewal(after.Cert, ca.Cert, hosts, later.Add(time.Minute)); r != "" {
		t.Errorf("a certificate signed after the renewal against the previous CA certificate: %s", r)
	}
}
