package instance

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"homeostat.dev/homeostat/backup/pgbin"
)

// The files of a server certificate, as a kubernetes.io/tls Secret (the
// operator's or cert-manager's) holds them and as they are installed.
const (
	TLSCertFile = "tls.crt"
	TLSKeyFile  = "tls.key"
	TLSCAFile   = "ca.crt"
)

// DefaultTLSDir is where an instance keeps the certificate postgres serves:
// .<pgdata name>.tls beside the data directory, on the same volume. It is a
// copy of the mounted Secret because postgres refuses a key that others can
// read (Secret volumes are shared files), and outside PGDATA so that
// pg_basebackup and pg_rewind never copy one instance's files to another.
func DefaultTLSDir(pgdata string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(pgdata)), "."+filepath.Base(filepath.Clean(pgdata))+".tls")
}

// TLS is where an instance's certificate comes from and where it goes.
type TLS struct {
	// Source is the mounted server Secret (tls.crt, tls.key, ca.crt).
	Source string
	// Dir is the installed copy postgres reads (DefaultTLSDir when empty).
	Dir string
}

func (t *TLS) dir(pgdata string) string {
	if t.Dir != "" {
		return t.Dir
	}
	return DefaultTLSDir(pgdata)
}

// tlsSettings turn TLS on with the installed files. ssl_ca_file is the
// cluster CA (for client certificates, should a user add cert logins).
func tlsSettings(dir string) map[string]string {
	return map[string]string{
		"ssl":           "on",
		"ssl_cert_file": filepath.Join(dir, TLSCertFile),
		"ssl_key_file":  filepath.Join(dir, TLSKeyFile),
		"ssl_ca_file":   filepath.Join(dir, TLSCAFile),
	}
}

// installTLS copies the certificate from src to dst when it differs: 0600
// files owned by the postgres user, each written to a temporary name and
// renamed, so a reload reads either the old set or the new one. A pair
// whose key does not match its certificate (a Secret caught half-written)
// is refused and the installed files are left alone. It returns whether
// anything changed.
func installTLS(src, dst string) (bool, error) {
	files := map[string][]byte{}
	for _, name := range []string{TLSCertFile, TLSKeyFile, TLSCAFile} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return false, fmt.Errorf("read the server certificate: %w", err)
		}
		files[name] = b
	}
	if _, err := tls.X509KeyPair(files[TLSCertFile], files[TLSKeyFile]); err != nil {
		// The error names no key material, only that the pair is bad.
		return false, fmt.Errorf("the certificate in %s and its key do not make a pair", src)
	}
	changed := false
	for name, b := range files {
		old, err := os.ReadFile(filepath.Join(dst, name))
		if err == nil && bytes.Equal(old, b) {
			continue
		}
		changed = true
	}
	if !changed {
		return false, nil
	}
	if err := pgbin.PrepareDir(dst, 0o700); err != nil {
		return false, err
	}
	for _, name := range []string{TLSCAFile, TLSKeyFile, TLSCertFile} {
		tmp := filepath.Join(dst, "."+name+".new")
		if err := pgbin.WriteFile(tmp, files[name]); err != nil {
			return false, err
		}
		if err := os.Rename(tmp, filepath.Join(dst, name)); err != nil {
			return false, fmt.Errorf("install %s: %w", name, err)
		}
	}
	return true, nil
}

// enforceTLS makes an existing data directory serve the installed
// certificate and require TLS for network logins: the ssl settings in
// homeostat.conf and the TLS pg_hba.conf. It is how a directory made before
// TLS existed gets it when its pod starts with the certificate mounted.
func enforceTLS(pgdata, dir, superuser, replUser string) error {
	if err := setConf(filepath.Join(pgdata, ConfFile), tlsSettings(dir)); err != nil {
		return err
	}
	c := Config{Superuser: superuser, ReplicationUser: replUser, TLSDir: dir}
	return pgbin.WriteFile(filepath.Join(pgdata, "pg_hba.conf"), []byte(c.HBA()))
}

// startTLS installs the certificate and makes the directory require TLS
// before postgres starts; an instance without a mounted certificate
// (opts.TLS nil) is left as it is.
func startTLS(opts *RunOptions, log *slog.Logger) error {
	t := opts.TLS
	if t == nil {
		return nil
	}
	dir := t.dir(opts.PGData)
	if _, err := installTLS(t.Source, dir); err != nil {
		return fmt.Errorf("install the server certificate: %w", err)
	}
	superuser, repl := opts.Superuser, opts.ReplicationUser
	if repl == "" {
		repl = "streaming_replica"
	}
	if err := enforceTLS(opts.PGData, dir, superuser, repl); err != nil {
		return err
	}
	// A replica made before TLS existed verifies its primary from now on,
	// once the primary serves a certificate of the cluster CA.
	if isFollowing(*opts) {
		if err := writeStandbyConfig(*opts); err != nil {
			return err
		}
	}
	log.Info("serving TLS; network logins require it", "certificate", describeCert(filepath.Join(dir, TLSCertFile)))
	return nil
}

// watchTLS polls the mounted certificate every interval (the kubelet
// rewrites a Secret volume when the Secret changes) and, when it changed,
// installs it and calls reload: postgres rereads its ssl files on SIGHUP,
// so a renewed certificate is served to new connections without a restart.
func watchTLS(ctx context.Context, opts RunOptions, interval time.Duration, reload func(), log *slog.Logger) {
	t := opts.TLS
	if t == nil {
		return
	}
	dir := t.dir(opts.PGData)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		changed, err := installTLS(t.Source, dir)
		if err != nil {
			log.Warn("the mounted server certificate cannot be installed; serving the previous one", "err", err)
			continue
		}
		if changed {
			reload()
			log.Info("new server certificate installed; postgres reloaded", "certificate", describeCert(filepath.Join(dir, TLSCertFile)))
		}
		// The primary is asked every sixth check only: each probe is a
		// connection it logs.
		if n%6 != 0 {
			continue
		}
		if upgraded, err := upgradeUpstream(opts, log); err != nil {
			log.Warn("could not move streaming to verify-full", "err", err)
		} else if upgraded {
			reload()
			log.Info("the primary serves the cluster's certificate: streaming from it with sslmode=verify-full now")
		}
	}
}

// isFollowing says whether this instance is a standby that knows its
// upstream (run with --cluster), so its primary_conninfo is homeostat's.
func isFollowing(opts RunOptions) bool {
	m := opts.Membership
	return m.Name != "" && m.Upstream.Host != "" && fileExists(filepath.Join(opts.PGData, "standby.signal"))
}

// upstreamProbeTimeout bounds the check of the primary's certificate.
const upstreamProbeTimeout = 3 * time.Second

// upstreamSSL decides how a standby reaches up: with verify-full when its
// configuration already does (never downgraded) or when the primary serves
// a certificate the cluster CA signed for up.Host; else, for a primary
// that serves no TLS yet (a pod made before TLS existed, during its
// cluster's rollout), with sslmode=prefer.
func upstreamSSL(pgdata string, up Upstream) Upstream {
	if up.SSLRootCert == "" || conninfoVerifies(pgdata) {
		return up
	}
	if err := upstreamVerified(up, upstreamProbeTimeout); err != nil {
		up.SSLRootCert = ""
	}
	return up
}

// upgradeUpstream moves a standby that streams without verification to
// verify-full once its primary serves the cluster's certificate, and says
// whether it did (postgres must then reload).
func upgradeUpstream(opts RunOptions, log *slog.Logger) (bool, error) {
	if opts.TLS == nil || opts.Membership.Upstream.SSLRootCert == "" || !isFollowing(opts) || conninfoVerifies(opts.PGData) {
		return false, nil
	}
	if err := upstreamVerified(opts.Membership.Upstream, upstreamProbeTimeout); err != nil {
		log.Info("streaming from the primary without verification: it serves no certificate of the cluster CA yet", "primary", opts.Membership.Upstream.Host, "err", err)
		return false, nil
	}
	return true, writeStandbyConfig(opts)
}

// conninfoVerifies says whether homeostat.conf's primary_conninfo asks for
// verify-full.
func conninfoVerifies(pgdata string) bool {
	b, err := os.ReadFile(filepath.Join(pgdata, ConfFile))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "primary_conninfo = ") {
			return strings.Contains(line, "sslmode=verify-full")
		}
	}
	return false
}

// upstreamVerified speaks PostgreSQL's SSLRequest to the primary and checks
// that it serves a certificate the CA in up.SSLRootCert signed for up.Host.
func upstreamVerified(up Upstream, timeout time.Duration) error {
	ca, err := os.ReadFile(up.SSLRootCert)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return fmt.Errorf("%s holds no certificate", up.SSLRootCert)
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(up.Host, strconv.Itoa(up.Port)), timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	// SSLRequest: length 8, code 1234.5679.
	if _, err := conn.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
		return err
	}
	answer := make([]byte, 1)
	if _, err := io.ReadFull(conn, answer); err != nil {
		return err
	}
	if answer[0] != 'S' {
		return fmt.Errorf("%s serves no TLS", up.Host)
	}
	return tls.Client(conn, &tls.Config{RootCAs: roots, ServerName: up.Host, MinVersion: tls.VersionTLS12}).Handshake()
}

// describeCert is a certificate's serial and expiry for the log (never
// the key).
func describeCert(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "not PEM"
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "does not parse"
	}
	return fmt.Sprintf("serial %s, valid until %s", c.SerialNumber.Text(16), c.NotAfter.UTC().Format(time.RFC3339))
}
