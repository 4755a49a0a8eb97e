// Package webhook receives push notifications from GitHub, GitLab and Gitea,
// verifies them with the shared secret, and hands a parsed PushEvent to
// every registered Handler: the sync loop triggers the Syncs of the pushed
// repository, and the CI operator registers its own handler for Pipelines.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
)

// PushEvent is one push, whatever the provider.
type PushEvent struct {
	// Provider is github, gitlab or gitea.
	Provider string
	// RepoURLs are every URL the provider gives for the repository (clone
	// over HTTPS and SSH, web page); a handler matches its own URL against them.
	RepoURLs []string
	// Branch is the pushed branch ("" for a tag push); Tag the pushed tag.
	Branch, Tag string
	// Commit is the new head commit.
	Commit string
}

// Handler acts on a verified push.
type Handler interface {
	HandlePush(ctx context.Context, e PushEvent) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, e PushEvent) error

// HandlePush implements Handler.
func (f HandlerFunc) HandlePush(ctx context.Context, e PushEvent) error { return f(ctx, e) }

// Receiver is the HTTP endpoint providers post to. Every request must prove
// it knows Secret: GitHub and Gitea sign the body with HMAC-SHA256, GitLab
// sends the token itself. A Receiver without a secret refuses everything.
type Receiver struct {
	Secret []byte
	// SecretFunc, when set, is asked on every request instead of Secret, so
	// a secret created or rotated while the receiver runs (a mounted
	// Kubernetes Secret's file) takes effect without a restart.
	SecretFunc func() []byte
	Handlers   []Handler
	Log        logr.Logger
}

// maxBody bounds a payload; pushes of thousands of commits stay far below.
const maxBody = 5 << 20

// ServeHTTP implements http.Handler.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	provider, kind := detect(r.Header)
	if provider == "" {
		http.Error(w, "not a GitHub, GitLab or Gitea webhook", http.StatusBadRequest)
		return
	}
	if err := rc.verify(provider, r.Header, body); err != nil {
		rc.Log.Info("webhook refused", "provider", provider, "reason", err.Error(), "remote", r.RemoteAddr)
		http.Error(w, "signature verification failed", http.StatusUnauthorized)
		return
	}
	if kind != "push" {
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "ignored %s event\n", kind)
		return
	}
	ev, err := parsePush(provider, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var errs []error
	for _, h := range rc.Handlers {
		if err := h.HandlePush(r.Context(), ev); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		rc.Log.Error(err, "webhook handler failed", "provider", provider, "commit", ev.Commit)
		http.Error(w, "handler failed", http.StatusInternalServerError)
		return
	}
	rc.Log.Info("push received", "provider", provider, "repo", first(ev.RepoURLs), "branch", ev.Branch, "commit", ev.Commit)
	w.WriteHeader(http.StatusAccepted)
}

// detect names the provider and the event kind ("push" or something else).
func detect(h http.Header) (provider, kind string) {
	switch {
	case h.Get("X-Gitea-Event") != "":
		return "gitea", h.Get("X-Gitea-Event")
	case h.Get("X-Gogs-Event") != "":
		return "gitea", h.Get("X-Gogs-Event")
	case h.Get("X-GitHub-Event") != "":
		return "github", h.Get("X-GitHub-Event")
	case h.Get("X-Gitlab-Event") != "":
		k := h.Get("X-Gitlab-Event")
		if k == "Push Hook" || k == "Tag Push Hook" {
			k = "push"
		}
		return "gitlab", k
	}
	return "", ""
}

// verify checks the request's proof of the secret, in constant time.
func (rc *Receiver) verify(provider string, h http.Header, body []byte) error {
	secret := rc.Secret
	if rc.SecretFunc != nil {
		secret = rc.SecretFunc()
	}
	if len(secret) == 0 {
		return errors.New("receiver has no secret configured")
	}
	if provider == "gitlab" {
		if subtle.ConstantTimeCompare([]byte(h.Get("X-Gitlab-Token")), secret) != 1 {
			return errors.New("X-Gitlab-Token does not match")
		}
		return nil
	}
	var sig string
	switch {
	case provider == "github":
		sig = strings.TrimPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
	case h.Get("X-Gitea-Signature") != "":
		sig = h.Get("X-Gitea-Signature")
	default:
		sig = h.Get("X-Gogs-Signature")
	}
	if sig == "" {
		return errors.New("no signature header")
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return errors.New("signature is not hex")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("HMAC-SHA256 does not match")
	}
	return nil
}

// payload holds the fields of the three providers' push payloads we use;
// they share most names.
type payload struct {
	Ref         string `json:"ref"`
	After       string `json:"after"`
	CheckoutSHA string `json:"checkout_sha"`
	Repository  struct {
		CloneURL    string `json:"clone_url"`
		SSHURL      string `json:"ssh_url"`
		HTMLURL     string `json:"html_url"`
		GitURL      string `json:"git_url"`
		URL         string `json:"url"`
		GitHTTPURL  string `json:"git_http_url"`
		GitSSHURL   string `json:"git_ssh_url"`
		Homepage    string `json:"homepage"`
		FullName    string `json:"full_name"`
		Description string `json:"description"`
	} `json:"repository"`
	Project struct {
		GitHTTPURL string `json:"git_http_url"`
		GitSSHURL  string `json:"git_ssh_url"`
		WebURL     string `json:"web_url"`
	} `json:"project"`
}

func parsePush(provider string, body []byte) (PushEvent, error) {
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return PushEvent{}, fmt.Errorf("%s push payload: %w", provider, err)
	}
	ev := PushEvent{Provider: provider, Commit: p.After}
	if p.CheckoutSHA != "" {
		ev.Commit = p.CheckoutSHA
	}
	switch {
	case strings.HasPrefix(p.Ref, "refs/heads/"):
		ev.Branch = strings.TrimPrefix(p.Ref, "refs/heads/")
	case strings.HasPrefix(p.Ref, "refs/tags/"):
		ev.Tag = strings.TrimPrefix(p.Ref, "refs/tags/")
	}
	seen := map[string]bool{}
	for _, u := range []string{p.Repository.CloneURL, p.Repository.SSHURL, p.Repository.HTMLURL, p.Repository.GitURL,
		p.Repository.URL, p.Repository.GitHTTPURL, p.Repository.GitSSHURL, p.Repository.Homepage,
		p.Project.GitHTTPURL, p.Project.GitSSHURL, p.Project.WebURL} {
		if u != "" && !seen[u] {
			seen[u] = true
			ev.RepoURLs = append(ev.RepoURLs, u)
		}
	}
	if len(ev.RepoURLs) == 0 {
		return PushEvent{}, fmt.Errorf("%s push payload names no repository URL", provider)
	}
	return ev, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
