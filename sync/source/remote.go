package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/memory"
)

// endpoint is a parsed repository location: what go-git dials, and what we
// may print.
type endpoint struct {
	raw      string // as given to go-git (may hold credentials)
	display  string // without user information
	user     string
	password string
	ep       *transport.Endpoint
}

// parseEndpoint accepts URLs (file://, http(s)://, ssh://), scp-like
// addresses (git@host:org/repo.git) and local paths (made absolute).
func parseEndpoint(raw string) (endpoint, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return endpoint{}, fmt.Errorf("repository url is empty")
	}
	if !strings.Contains(raw, "://") && !looksSCP(raw) {
		abs, err := filepath.Abs(raw)
		if err != nil {
			return endpoint{}, fmt.Errorf("repository path %s: %w", raw, err)
		}
		raw = abs
	}
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("repository url %s: %s", redactURL(raw), scrub(err.Error(), nil))
	}
	e := endpoint{raw: raw, ep: ep, user: ep.User, password: ep.Password, display: redactURL(raw)}
	switch ep.Protocol {
	case "file", "http", "https", "ssh", "git":
	default:
		return endpoint{}, fmt.Errorf("repository url %s: unsupported protocol %q", e.display, ep.Protocol)
	}
	return e, nil
}

// looksSCP reports whether s is "user@host:path" (or "host:path" with a
// non-numeric, non-slash path) as git understands it.
func looksSCP(s string) bool {
	colon := strings.Index(s, ":")
	if colon <= 0 || strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") {
		return false
	}
	return !strings.Contains(s[:colon], "/")
}

// redactURL drops the user information of an http(s) URL and the password of
// any other, so the result may be printed, logged and stored in status.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || !strings.Contains(raw, "://") {
		return scrub(raw, nil)
	}
	switch u.Scheme {
	case "http", "https":
		u.User = nil
	default:
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

func (e endpoint) isHTTP() bool { return e.ep.Protocol == "http" || e.ep.Protocol == "https" }

// hostPort names the server in messages.
func (e endpoint) hostPort() string {
	if e.ep.Protocol == "file" {
		return "local path " + e.ep.Path
	}
	if e.ep.Port != 0 {
		return net.JoinHostPort(e.ep.Host, strconv.Itoa(e.ep.Port))
	}
	return e.ep.Host
}

// sshHostWithPort is the address go-git dials for SSH.
func (e endpoint) sshHostWithPort() string {
	port := e.ep.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(e.ep.Host, strconv.Itoa(port))
}

// session is one repository with credentials resolved for its protocol.
type session struct {
	ep     endpoint
	auth   Auth
	method transport.AuthMethod
}

func newSession(op, rawURL string, auth Auth) (*session, error) {
	ep, err := parseEndpoint(rawURL)
	if err != nil {
		return nil, err
	}
	m, err := auth.method(ep)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Op = op
		}
		return nil, err
	}
	return &session{ep: ep, auth: auth, method: m}, nil
}

func (s *session) remote(st storage.Storer) *git.Remote {
	return git.NewRemote(st, &config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{s.ep.raw}})
}

// list is ls-remote: the advertised references, annotated tags peeled too.
func (s *session) list(ctx context.Context, op string) ([]*plumbing.Reference, error) {
	refs, err := s.remote(memory.NewStorage()).ListContext(ctx, &git.ListOptions{
		Auth:          s.method,
		CABundle:      s.auth.CA,
		PeelingOption: git.AppendPeeled,
	})
	if err != nil {
		return nil, classify(ctx, op, s.ep, s.auth, err)
	}
	return refs, nil
}

// fetch runs one fetch into st; "already up to date" is success.
func (s *session) fetch(ctx context.Context, op string, st storage.Storer, depth int, specs ...config.RefSpec) error {
	err := s.remote(st).FetchContext(ctx, &git.FetchOptions{
		RefSpecs: specs,
		Depth:    depth,
		Auth:     s.method,
		CABundle: s.auth.CA,
		Tags:     git.NoTags,
		Force:    true,
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return classify(ctx, op, s.ep, s.auth, err)
}

// LsRemote lists the branches of a repository and the commit each points to
// (branch name -> full commit hash), without cloning: what CI polling needs.
func LsRemote(ctx context.Context, url string, auth Auth) (map[string]string, error) {
	s, err := newSession("ls-remote", url, auth)
	if err != nil {
		return nil, err
	}
	heads := map[string]string{}
	refs, err := s.list(ctx, "ls-remote")
	if errors.Is(err, ErrRefNotFound) {
		return heads, nil // an empty repository has no branches yet
	}
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		if r.Name().IsBranch() && r.Type() == plumbing.HashReference {
			heads[r.Name().Short()] = r.Hash().String()
		}
	}
	return heads, nil
}

// lookup finds the commit a branch or tag points to; for an annotated tag,
// the peeled commit rather than the tag object.
func lookup(refs []*plumbing.Reference, name plumbing.ReferenceName) (plumbing.Hash, bool) {
	var h plumbing.Hash
	found := false
	for _, r := range refs {
		switch r.Name() {
		case name + "^{}":
			return r.Hash(), true
		case name:
			if r.Type() == plumbing.HashReference {
				h, found = r.Hash(), true
			}
		}
	}
	return h, found
}
