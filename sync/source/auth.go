package source

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// Keys of a git credentials Secret, the same as Flux's so that existing
// Secrets work unchanged.
const (
	KeyUsername    = "username"
	KeyPassword    = "password"
	KeyBearerToken = "bearerToken"
	KeyIdentity    = "identity"
	KeyIdentityPub = "identity.pub"
	KeyKnownHosts  = "known_hosts"
	KeyCA          = "ca.crt"
	keyCALegacy    = "caFile"
)

// Auth holds the credentials for one repository, read from a Secret's data.
// HTTPS uses Username+Password (basic auth) or BearerToken; SSH uses Identity
// (a PEM private key; Password, if set, is its passphrase) and KnownHosts,
// which is required: a host key is always checked. CA adds a certificate
// authority for HTTPS servers with a private CA.
//
// Auth never prints its secrets: String, GoString, MarshalJSON and LogValue
// name only which fields are set.
type Auth struct {
	Username, Password, BearerToken string
	Identity, KnownHosts, CA        []byte
}

// AuthFromSecret reads credentials from a Secret's data (or a directory of
// mounted secret files) and checks that they are usable, so that a broken
// Secret is reported as such rather than as a failed connection. Unknown keys
// are ignored.
func AuthFromSecret(data map[string][]byte) (Auth, error) {
	a := Auth{
		Username:    string(data[KeyUsername]),
		Password:    string(data[KeyPassword]),
		BearerToken: strings.TrimSpace(string(data[KeyBearerToken])),
		Identity:    data[KeyIdentity],
		KnownHosts:  data[KeyKnownHosts],
		CA:          data[KeyCA],
	}
	if len(a.CA) == 0 {
		a.CA = data[keyCALegacy]
	}
	if a.BearerToken != "" && (a.Username != "" || a.Password != "") {
		return Auth{}, errors.New("secret has both bearerToken and username/password: keep one")
	}
	if len(a.Identity) > 0 {
		if _, err := a.signer(); err != nil {
			return Auth{}, err
		}
	} else if a.Password != "" && a.Username == "" {
		return Auth{}, errors.New("secret has a password but no username")
	}
	if len(a.KnownHosts) > 0 {
		if err := checkKnownHosts(a.KnownHosts); err != nil {
			return Auth{}, err
		}
	}
	if len(a.CA) > 0 {
		if err := checkCA(a.CA); err != nil {
			return Auth{}, err
		}
	}
	return a, nil
}

func (a Auth) signer() (ssh.Signer, error) {
	var (
		s   ssh.Signer
		err error
	)
	if a.Password != "" {
		s, err = ssh.ParsePrivateKeyWithPassphrase(a.Identity, []byte(a.Password))
	} else {
		s, err = ssh.ParsePrivateKey(a.Identity)
	}
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, errors.New("secret key identity is encrypted: put its passphrase in password")
		}
		// The parser's message never contains key material.
		return nil, fmt.Errorf("secret key identity: %w", err)
	}
	return s, nil
}

func checkKnownHosts(b []byte) error {
	rest := b
	for n := 0; len(strings.TrimSpace(string(rest))) > 0; n++ {
		var err error
		_, _, _, _, rest, err = ssh.ParseKnownHosts(rest)
		if err != nil {
			return fmt.Errorf("secret key known_hosts: %w", err)
		}
	}
	return nil
}

func checkCA(b []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		if blk, _ := pem.Decode(b); blk == nil {
			return errors.New("secret key ca.crt: no PEM certificate found")
		}
		return errors.New("secret key ca.crt: no valid certificate found")
	}
	return nil
}

// fields names the fields that are set, for printing.
func (a Auth) fields() []string {
	var f []string
	add := func(set bool, name string) {
		if set {
			f = append(f, name)
		}
	}
	add(a.Username != "", KeyUsername)
	add(a.Password != "", KeyPassword)
	add(a.BearerToken != "", KeyBearerToken)
	add(len(a.Identity) > 0, KeyIdentity)
	add(len(a.KnownHosts) > 0, KeyKnownHosts)
	add(len(a.CA) > 0, KeyCA)
	return f
}

// String names the fields that are set, never their values.
func (a Auth) String() string { return "source.Auth{" + strings.Join(a.fields(), ",") + "}" }

// GoString is String, so that %#v does not print secrets either.
func (a Auth) GoString() string { return a.String() }

// MarshalJSON writes only which fields are set: {"set":["username","password"]}.
func (a Auth) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Set []string `json:"set"`
	}{a.fields()})
}

// LogValue keeps secrets out of structured logs.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// IsZero reports whether no credential is set (anonymous access).
func (a Auth) IsZero() bool { return len(a.fields()) == 0 }

// secrets lists the strings that must never appear in a message.
func (a Auth) secrets(ep endpoint) []string {
	s := []string{a.Password, a.BearerToken}
	if ep.password != "" {
		s = append(s, ep.password)
	}
	if ep.isHTTP() && ep.user != "" && len(ep.user) >= 6 {
		// A user in an https URL is often a token; short names like "git"
		// are left alone so messages stay readable.
		s = append(s, ep.user)
	}
	return s
}

// method builds the go-git auth method for the endpoint's protocol.
func (a Auth) method(ep endpoint) (transport.AuthMethod, error) {
	switch ep.ep.Protocol {
	case "http", "https":
		switch {
		case a.BearerToken != "":
			return &githttp.TokenAuth{Token: a.BearerToken}, nil
		case a.Username != "" || a.Password != "":
			return &githttp.BasicAuth{Username: a.Username, Password: a.Password}, nil
		}
		return nil, nil
	case "ssh":
		return a.sshMethod(ep)
	default:
		return nil, nil
	}
}

func (a Auth) sshMethod(ep endpoint) (transport.AuthMethod, error) {
	host := ep.hostPort()
	if len(a.KnownHosts) == 0 {
		return nil, newError("connect", ep, ErrHostKey, "no known_hosts in the secret: refusing to connect to ssh host "+
			host+" without checking its key (add known_hosts, as `ssh-keyscan` prints it)", nil)
	}
	if len(a.Identity) == 0 {
		return nil, newError("connect", ep, ErrAuth, "no identity (private key) in the secret for ssh host "+host, nil)
	}
	signer, err := a.signer()
	if err != nil {
		return nil, newError("connect", ep, ErrAuth, err.Error(), nil)
	}
	hk, err := newHostKeyChecker(a.KnownHosts)
	if err != nil {
		return nil, newError("connect", ep, ErrHostKey, err.Error(), nil)
	}
	user := ep.user
	if user == "" {
		user = "git"
	}
	keys := &gitssh.PublicKeys{User: user, Signer: signer}
	keys.HostKeyCallback = hk.callback
	keys.HostKeyAlgorithms = hk.algorithms(ep.sshHostWithPort())
	return sshKeys{keys}, nil
}

// sshConnectTimeout bounds the TCP connect of an SSH session, which go-git
// does not tie to the context (reads and writes after it are).
const sshConnectTimeout = 30 * time.Second

// sshKeys is go-git's public key auth with a connect timeout.
type sshKeys struct{ *gitssh.PublicKeys }

func (k sshKeys) ClientConfig() (*ssh.ClientConfig, error) {
	cfg, err := k.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = sshConnectTimeout
	return cfg, nil
}
