package source

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

var (
	errHostKeyChanged = errors.New("ssh host key mismatch")
	errHostUnknown    = errors.New("ssh host unknown")
)

// hostKeyChecker checks SSH host keys against the known_hosts of a Secret,
// with the usual OpenSSH semantics (hashed names, [host]:port, @revoked).
type hostKeyChecker struct{ db *knownhosts.HostKeyDB }

func newHostKeyChecker(knownHosts []byte) (*hostKeyChecker, error) {
	// The knownhosts parsers read files; the file lives only for the parse.
	f, err := os.CreateTemp("", "homeostat-known-hosts-")
	if err != nil {
		return nil, fmt.Errorf("write known_hosts: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }()
	_, werr := f.Write(knownHosts)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("write known_hosts: %w", werr)
	}
	db, err := knownhosts.NewDB(f.Name())
	if err != nil {
		return nil, fmt.Errorf("parse known_hosts: %w", err)
	}
	return &hostKeyChecker{db: db}, nil
}

func (h *hostKeyChecker) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := h.db.HostKeyCallback()(hostname, remote, key)
	switch {
	case err == nil:
		return nil
	case knownhosts.IsHostKeyChanged(err):
		return fmt.Errorf("%w: %s", errHostKeyChanged, hostname)
	case knownhosts.IsHostUnknown(err):
		return fmt.Errorf("%w: %s", errHostUnknown, hostname)
	}
	return err
}

// algorithms limits the negotiation to the key types known_hosts has for the
// host, so that a server offering several key types is checked against the
// one we know instead of failing on another.
func (h *hostKeyChecker) algorithms(hostWithPort string) []string {
	return h.db.HostKeyAlgorithms(hostWithPort)
}
