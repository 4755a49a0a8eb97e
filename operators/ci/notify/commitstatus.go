package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CommitStatus sets a status on the built commit through the GitHub or
// Gitea API, so the result shows next to the commit and on pull requests.
type CommitStatus struct {
	// Provider is github or gitea.
	Provider string
	// BaseURL is the API base: https://api.github.com (the default for
	// github), or the Gitea server (by default the repository's host).
	BaseURL string
	// Token authorises the call.
	Token string
	// Context names the status, so several pipelines can report on one commit.
	Context string
	// TargetURL is linked from the status, when set.
	TargetURL string
	Client    *http.Client
}

// Notify posts the status for e.Commit of e.Repository.
func (c CommitStatus) Notify(ctx context.Context, e Event) error {
	owner, repo, host, err := RepoPath(e.Repository)
	if err != nil {
		return Permanent(fmt.Errorf("commit status: %w", err))
	}
	base := strings.TrimSuffix(c.BaseURL, "/")
	var endpoint string
	header := http.Header{}
	switch c.Provider {
	case "github":
		if base == "" {
			base = "https://api.github.com"
		}
		endpoint = fmt.Sprintf("%s/repos/%s/%s/statuses/%s", base, owner, repo, e.Commit)
		header.Set("Authorization", "Bearer "+c.Token)
		header.Set("Accept", "application/vnd.github+json")
	case "gitea":
		if base == "" {
			base = "https://" + host
		}
		endpoint = fmt.Sprintf("%s/api/v1/repos/%s/%s/statuses/%s", base, owner, repo, e.Commit)
		header.Set("Authorization", "token "+c.Token)
	default:
		return Permanent(fmt.Errorf("commit status: unknown provider %q (github, gitea)", c.Provider))
	}
	body := map[string]string{"state": State(e.Result), "context": c.Context, "description": description(e)}
	if c.TargetURL != "" {
		body["target_url"] = c.TargetURL
	}
	return post(ctx, c.Client, c.Provider+" commit status", endpoint, header, body)
}

// State maps a build result to the commit status states GitHub and Gitea share.
func State(result string) string {
	switch result {
	case "Succeeded":
		return "success"
	case "Failed":
		return "failure"
	default:
		return "pending"
	}
}

func description(e Event) string {
	d := "build " + strings.ToLower(e.Result)
	if e.FailedStep != "" {
		d += " at step " + e.FailedStep
	}
	if e.Duration != "" {
		d += " in " + e.Duration
	}
	if len(d) > 140 { // GitHub's limit
		d = d[:137] + "..."
	}
	return d
}

// RepoPath finds the owner and repository name (and host) in a clone URL:
// https://host/owner/repo.git, ssh://git@host/owner/repo.git or
// git@host:owner/repo.git.
func RepoPath(repoURL string) (owner, repo, host string, err error) {
	var p string
	if u, perr := url.Parse(repoURL); perr == nil && u.Scheme != "" && u.Host != "" {
		host, p = u.Host, u.Path
	} else if at := strings.Index(repoURL, "@"); at >= 0 && strings.Contains(repoURL[at:], ":") {
		rest := repoURL[at+1:]
		i := strings.Index(rest, ":")
		host, p = rest[:i], rest[i+1:]
	} else {
		return "", "", "", fmt.Errorf("repository %q: cannot find owner/repo in it", repoURL)
	}
	parts := strings.Split(strings.Trim(strings.TrimSuffix(p, ".git"), "/"), "/")
	if len(parts) < 2 || parts[len(parts)-2] == "" || parts[len(parts)-1] == "" {
		return "", "", "", fmt.Errorf("repository %q: cannot find owner/repo in it", repoURL)
	}
	return parts[len(parts)-2], parts[len(parts)-1], host, nil
}
