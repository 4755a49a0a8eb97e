package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"homeostat.dev/homeostat/operators/instance"
)

// tlsFlags are the server certificate flags of init, join and run.
type tlsFlags struct {
	source, upstreamSSLMode string
	poll                    time.Duration
}

func (f *tlsFlags) bind(fs *pflag.FlagSet, run bool) {
	fs.StringVar(&f.source, "tls-dir", "", "mounted server certificate (tls.crt, tls.key, ca.crt): TLS on, network logins must use it, replicas verify their primary (verify-full)")
	fs.StringVar(&f.upstreamSSLMode, "upstream-sslmode", "verify-full", "how a replica with --tls-dir reaches its primary: verify-full, or prefer for a primary that serves no TLS yet")
	if run {
		fs.DurationVar(&f.poll, "tls-poll", 5*time.Second, "how often --tls-dir is checked for a renewed certificate (reloaded without a restart)")
	}
}

// check refuses an --upstream-sslmode other than the two that make sense.
func (f *tlsFlags) check() error {
	if f.upstreamSSLMode != "verify-full" && f.upstreamSSLMode != "prefer" {
		return usageError{fmt.Errorf("--upstream-sslmode %q: want verify-full or prefer", f.upstreamSSLMode)}
	}
	return nil
}

// upstreamCA is the CA a replica verifies its primary against; "" for
// sslmode=prefer.
func (f *tlsFlags) upstreamCA(t *instance.TLS) string {
	if t == nil || f.upstreamSSLMode == "prefer" {
		return ""
	}
	return filepath.Join(t.Dir, instance.TLSCAFile)
}

// tls is where the certificate comes from and goes for pgdata; nil
// without --tls-dir.
func (f *tlsFlags) tls(pgdata string) *instance.TLS {
	if f.source == "" {
		return nil
	}
	return &instance.TLS{Source: f.source, Dir: instance.DefaultTLSDir(pgdata)}
}

// configure turns TLS on in an init or join configuration: the server
// serves the installed certificate, and a standby verifies its primary
// against the installed CA.
func (f *tlsFlags) configure(c *instance.Config, pgdata string) {
	t := f.tls(pgdata)
	if t == nil {
		return
	}
	c.TLSSource, c.TLSDir = t.Source, t.Dir
	if c.Primary != nil {
		c.Primary.SSLRootCert = f.upstreamCA(t)
	}
}
