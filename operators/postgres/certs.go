package postgres

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"time"
)

// Default certificate lifetimes. Both are renewed once less than a third
// of their lifetime is left (renewAt), as cert-manager does: the server
// certificate 30 days before it expires; the CA, after some six and a half
// years, with the same key and name (renewCA), so certificates it signed
// and clients holding its previous certificate keep verifying.
const (
	DefaultServerCertLifetime = 90 * 24 * time.Hour
	DefaultCALifetime         = 10 * 365 * 24 * time.Hour
)

// clockSkew backdates NotBefore, so a node whose clock is a little behind
// the operator's accepts a certificate issued a moment ago; a tenth of the
// lifetime at most, so the renewal point (a third of NotBefore..NotAfter
// left) stays well after the issue.
const clockSkew = 5 * time.Minute

func backdate(lifetime time.Duration) time.Duration { return min(clockSkew, lifetime/10) }

// keyPair is a PEM certificate and its PEM (PKCS#8) private key.
type keyPair struct {
	Cert, Key []byte
}

// newCA makes a self-signed ECDSA P-256 certificate authority for one cluster.
func newCA(rnd io.Reader, cluster string, now time.Time, lifetime time.Duration) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), randOr(rnd))
	if err != nil {
		return keyPair{}, fmt.Errorf("generate CA key: %w", err)
	}
	return signCA(rnd, key, cluster, now, lifetime)
}

// caRenewal says why the CA's certificate must be made again ("" when it
// is fine): a third of its lifetime left.
func caRenewal(ca keyPair, now time.Time) string {
	cert, err := parseCert(ca.Cert)
	if err != nil {
		return "the CA certificate does not parse"
	}
	if now.After(renewAt(cert)) {
		return fmt.Sprintf("the CA expires at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

// renewCA makes the CA's certificate again with the same key and name:
// certificates signed under the previous one verify against the new one,
// and clients that still hold the previous one verify new certificates
// until it expires.
func renewCA(rnd io.Reader, ca keyPair, cluster string, now time.Time, lifetime time.Duration) (keyPair, error) {
	_, key, err := parsePair(ca)
	if err != nil {
		return keyPair{}, err
	}
	return signCA(rnd, key, cluster, now, lifetime)
}

func signCA(rnd io.Reader, key *ecdsa.PrivateKey, cluster string, now time.Time, lifetime time.Duration) (keyPair, error) {
	serial, err := newSerial(rnd)
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cluster + " CA", Organization: []string{"homeostat"}},
		NotBefore:             now.Add(-backdate(lifetime)),
		NotAfter:              now.Add(lifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(randOr(rnd), tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return keyPair{}, fmt.Errorf("sign CA certificate: %w", err)
	}
	return encodePair(der, key)
}

// newServerCert makes an ECDSA P-256 server certificate for hosts (DNS
// names and IP addresses), signed by ca.
func newServerCert(rnd io.Reader, ca keyPair, hosts []string, now time.Time, lifetime time.Duration) (keyPair, error) {
	caCert, caKey, err := parsePair(ca)
	if err != nil {
		return keyPair{}, fmt.Errorf("CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), randOr(rnd))
	if err != nil {
		return keyPair{}, fmt.Errorf("generate server key: %w", err)
	}
	serial, err := newSerial(rnd)
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"homeostat"}},
		NotBefore:    now.Add(-backdate(lifetime)),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(randOr(rnd), tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return keyPair{}, fmt.Errorf("sign server certificate: %w", err)
	}
	return encodePair(der, key)
}

// renewal says why a server certificate must be issued again, or "" when
// it is fine: it does not parse, was not signed by the CA, does not name
// every host, or has less than a third of its lifetime left.
func renewal(certPEM, caPEM []byte, hosts []string, now time.Time) string {
	cert, err := parseCert(certPEM)
	if err != nil {
		return "the certificate does not parse"
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return "the CA does not parse"
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return "it does not verify against the CA: " + err.Error()
	}
	if missing := missingHosts(cert, hosts); len(missing) > 0 {
		return fmt.Sprintf("it does not name %v", missing)
	}
	if now.After(renewAt(cert)) {
		return fmt.Sprintf("it expires at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

// renewAt is when a third of the certificate's lifetime is left.
func renewAt(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Add(-life / 3)
}

// missingHosts are the hosts the certificate does not name exactly.
func missingHosts(cert *x509.Certificate, hosts []string) []string {
	var missing []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
				missing = append(missing, h)
			}
			continue
		}
		if !slices.Contains(cert.DNSNames, h) {
			missing = append(missing, h)
		}
	}
	return missing
}

// certSerial is a PEM certificate's serial number in hex, as openssl and
// pg_stat_ssl (in decimal) show it; "" when it does not parse.
func certSerial(certPEM []byte) string {
	cert, err := parseCert(certPEM)
	if err != nil {
		return ""
	}
	return cert.SerialNumber.Text(16)
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parsePair(p keyPair) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, err := parseCert(p.Cert)
	if err != nil {
		return nil, nil, err
	}
	b, _ := pem.Decode(p.Key)
	if b == nil {
		return nil, nil, errors.New("no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, nil, errors.New("private key does not parse") // never the key itself
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("private key does not match the certificate")
	}
	return cert, key, nil
}

func encodePair(der []byte, key *ecdsa.PrivateKey) (keyPair, error) {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

// newSerial is a random 128-bit serial number, as RFC 5280 and the CA/B
// forum ask (positive, unpredictable).
func newSerial(rnd io.Reader) (*big.Int, error) {
	n, err := rand.Int(randOr(rnd), new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func randOr(rnd io.Reader) io.Reader {
	if rnd == nil {
		return rand.Reader
	}
	return rnd
}

// samePEM compares two PEM blobs ignoring surrounding whitespace.
func samePEM(a, b []byte) bool { return bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b)) }
