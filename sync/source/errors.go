package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Sentinel errors, for errors.Is, so that a caller can turn a failed fetch
// into a status condition reason without parsing messages. Every error this
// package returns for a remote operation is an *Error that matches at most one
// of them (ErrHostKey also matches ErrAuth: the server failed to prove who it is).
var (
	// ErrUnreachable: the server could not be reached (refused, DNS, timeout).
	// Usually transient: retry with backoff.
	ErrUnreachable = errors.New("git server unreachable")
	// ErrAuth: the server refused our credentials, or we refused the server's
	// identity (TLS certificate, SSH host key).
	ErrAuth = errors.New("git authentication failed")
	// ErrHostKey: the SSH host key is not in known_hosts, does not match it,
	// or the Secret has no known_hosts at all. Never skipped silently.
	ErrHostKey = errors.New("ssh host key not trusted")
	// ErrRefNotFound: the branch, tag or commit does not exist in the repository.
	ErrRefNotFound = errors.New("git ref not found")
	// ErrRepositoryNotFound: the server answered but has no such repository.
	ErrRepositoryNotFound = errors.New("git repository not found")
)

// Error is the error of a remote git operation. Its message names the
// operation and the URL (with any credentials removed) and never contains a
// password, token or key: it is built already scrubbed, and it keeps no
// reference to the underlying error (whose text might hold them), only to the
// sentinel kind and to a context error if the operation was cancelled.
type Error struct {
	// Op is the operation: "fetch", "ls-remote" or "clone".
	Op string
	// URL is the repository URL without user information.
	URL string
	// Kind is one of the sentinel errors, or nil if the cause is unclassified.
	Kind error

	msg    string
	causes []error
}

// Error names the operation and the (credential-free) URL.
func (e *Error) Error() string { return e.Op + " " + e.URL + ": " + e.msg }

// Unwrap exposes the sentinel kind (and ErrAuth for host key errors, and a
// context error if there was one) to errors.Is, and nothing else.
func (e *Error) Unwrap() []error { return e.causes }

// newError builds an *Error whose message is scrubbed of the given secrets.
func newError(op string, ep endpoint, kind error, msg string, secrets []string, extra ...error) *Error {
	e := &Error{Op: op, URL: ep.display, Kind: kind, msg: scrub(msg, secrets)}
	if kind != nil {
		e.causes = append(e.causes, kind)
	}
	if errors.Is(kind, ErrHostKey) {
		e.causes = append(e.causes, ErrAuth)
	}
	for _, x := range extra {
		if x != nil {
			e.causes = append(e.causes, x)
		}
	}
	return e
}

var userinfoInURL = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@`)

// scrub removes secrets and URL user information from a message.
func scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return userinfoInURL.ReplaceAllString(msg, "$1")
}

// classify turns an error of go-git (or of the network) into an *Error.
func classify(ctx context.Context, op string, ep endpoint, auth Auth, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	secrets := auth.secrets(ep)
	ctxErr := ctx.Err()
	host := ep.hostPort()
	detail := strings.TrimRight(err.Error(), ": ")
	switch {
	case anyIs(err, errHostKeyChanged):
		return newError(op, ep, ErrHostKey, "ssh host key of "+host+" does not match known_hosts: refusing to connect "+
			"(if the server's key really changed, update known_hosts in the secret)", secrets)
	case anyIs(err, errHostUnknown):
		return newError(op, ep, ErrHostKey, "ssh host "+host+" is not in known_hosts: refusing to connect "+
			"(add its key, as `ssh-keyscan` prints it, to known_hosts in the secret)", secrets)
	case strings.Contains(detail, "no common algorithm for host key"):
		return newError(op, ep, ErrHostKey, "ssh host "+host+" offers none of the key types known_hosts has for it: refusing to connect "+
			"(if the server's key really changed, update known_hosts in the secret)", secrets)
	case anyIs(err, transport.ErrAuthenticationRequired), anyIs(err, transport.ErrAuthorizationFailed),
		strings.Contains(detail, "unable to authenticate"):
		if auth.IsZero() && ep.user == "" {
			detail += " (no credentials were given)"
		}
		return newError(op, ep, ErrAuth, "authentication to "+host+" failed: "+detail, secrets)
	case isTLSTrust(err):
		return newError(op, ep, ErrAuth, "TLS certificate of "+host+" is not trusted (add its CA as ca.crt to the secret): "+detail, secrets)
	case anyIs(err, transport.ErrRepositoryNotFound):
		return newError(op, ep, ErrRepositoryNotFound, "repository not found on "+host, secrets)
	case anyIs(err, transport.ErrEmptyRemoteRepository):
		return newError(op, ep, ErrRefNotFound, "repository is empty: it has no branches", secrets)
	case errors.Is(ctxErr, context.Canceled):
		return newError(op, ep, nil, "cancelled", secrets, ctxErr)
	case ctxErr != nil:
		return newError(op, ep, ErrUnreachable, "git server "+host+" did not answer in time: "+ctxErr.Error(), secrets, ctxErr)
	case isNetwork(err):
		return newError(op, ep, ErrUnreachable, "cannot reach git server "+host+": "+detail, secrets)
	default:
		return newError(op, ep, nil, detail, secrets)
	}
}

// walk visits err and everything it wraps, including go-git's error types
// that carry a cause without an Unwrap method.
func walk(err error, visit func(error) bool) bool {
	if err == nil {
		return false
	}
	if visit(err) {
		return true
	}
	// walk is its own errors.Is/As: each error of the chain is looked at as it is.
	switch e := err.(type) { //nolint:errorlint // see above
	case *plumbing.UnexpectedError:
		return walk(e.Err, visit)
	case *plumbing.PermanentError:
		return walk(e.Err, visit)
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			if walk(x, visit) {
				return true
			}
		}
		return false
	case interface{ Unwrap() error }:
		return walk(e.Unwrap(), visit)
	}
	return false
}

func anyIs(err, target error) bool {
	return walk(err, func(e error) bool { return e == target }) //nolint:errorlint // walk unwraps
}

func isNetwork(err error) bool {
	if walk(err, func(e error) bool {
		switch e.(type) { //nolint:errorlint // walk unwraps
		case *net.OpError, *net.DNSError, *net.AddrError:
			return true
		}
		for _, target := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH,
			syscall.ENETUNREACH, os.ErrDeadlineExceeded, context.DeadlineExceeded} {
			if e == target { //nolint:errorlint // walk unwraps
				return true
			}
		}
		return false
	}) {
		return true
	}
	// go-git flattens some transport errors into strings.
	msg := err.Error()
	for _, s := range []string{"connection refused", "no such host", "i/o timeout", "network is unreachable", "connection reset"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func isTLSTrust(err error) bool {
	return walk(err, func(e error) bool {
		switch e.(type) { //nolint:errorlint // walk unwraps
		case *tls.CertificateVerificationError, x509.UnknownAuthorityError, *x509.UnknownAuthorityError,
			x509.HostnameError, *x509.HostnameError, x509.CertificateInvalidError:
			return true
		}
		return false
	}) || strings.Contains(err.Error(), "x509: certificate")
}
