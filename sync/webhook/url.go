package webhook

import (
	"net/url"
	"strings"
)

// NormalizeURL reduces a repository URL to "host/path" in lower case, so
// https://github.com/Org/Repo.git, git@github.com:org/repo and
// ssh://git@github.com/org/repo all compare equal.
func NormalizeURL(raw string) string {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		// scp-like: [user@]host:path
		if at := strings.Index(s, "@"); at >= 0 {
			s = s[at+1:]
		}
		s = strings.Replace(s, ":", "/", 1)
	} else if u, err := url.Parse(s); err == nil {
		host := u.Hostname()
		if u.Scheme == "file" {
			host = ""
		}
		s = host + u.Path
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git")
	return strings.ToLower(s)
}

// SameRepo reports whether a and b name the same repository.
func SameRepo(a, b string) bool { return NormalizeURL(a) == NormalizeURL(b) }
