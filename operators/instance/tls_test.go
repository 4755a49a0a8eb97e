package instance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned is a throwaway certificate and key (PEM) named cn.
func selfSigned(t *testing.T, cn string) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func writeTLSSource(t *testing.T, dir string, cert, key, ca []byte) {
	t.Helper()
	for name, b := range map[string][]byte{TLSCertFile: cert, TLSKeyFile: key, TLSCAFile: ca} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The installed copy is what postgres reads: private files, replaced only
// by a complete, matching pair, and a change is reported once (so run
// reloads once per renewal).
func TestTLSInstallRefusesAMismatchedPairAndReportsChanges(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "tls")
	certA, keyA := selfSigned(t, "a")
	certB, keyB := selfSigned(t, "b")
	steps := []struct {
		name        string
		cert, key   []byte
		wantChanged bool
		wantErr     string
		wantCert    []byte
	}{
		{"first install", certA, keyA, true, "", certA},
		{"the same again", certA, keyA, false, "", certA},
		{"a half-written Secret: new certificate, old key", certB, keyA, false, "do not make a pair", certA},
		{"the renewed pair", certB, keyB, true, "", certB},
	}
	for _, st := range steps {
		writeTLSSource(t, src, st.cert, st.key, certA)
		changed, err := installTLS(src, dst)
		if (st.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), st.wantErr)) {
			t.Fatalf("%s: err %v, want %q", st.name, err, st.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Fatalf("%s: the error shows key material: %v", st.name, err)
		}
		if changed != st.wantChanged {
			t.Fatalf("%s: changed = %v, want %v", st.name, changed, st.wantChanged)
		}
		got, _ := os.ReadFile(filepath.Join(dst, TLSCertFile))
		if string(got) != string(st.wantCert) {
			t.Fatalf("%s: installed certificate is not the expected one", st.name)
		}
	}
	for _, name := range []string{TLSCertFile, TLSKeyFile, TLSCAFile} {
		fi, err := os.Stat(filepath.Join(dst, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", name, err, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("tls dir: %v, want 0700", err)
	}
}

func TestDefaultTLSDirIsBesideTheDataDirectory(t *testing.T) {
	if got := DefaultTLSDir("/var/lib/postgresql/data/pgdata/"); got != "/var/lib/postgresql/data/.pgdata.tls" {
		t.Fatalf("DefaultTLSDir = %s", got)
	}
}
