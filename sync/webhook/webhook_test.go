package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func hmacHex(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestReceiverVerifiesAndParsesEachProvider(t *testing.T) {
	const secret = "s3cret"
	github := `{"ref":"refs/heads/main","after":"c1","repository":{"clone_url":"https://github.com/org/apps.git","ssh_url":"git@github.com:org/apps.git"}}`
	gitea := `{"ref":"refs/heads/dev","after":"c2","repository":{"clone_url":"https://gitea.example.com/org/apps.git"}}`
	gitlab := `{"ref":"refs/tags/v1","checkout_sha":"c3","project":{"git_http_url":"https://gitlab.example.com/org/apps.git"}}`
	cases := []struct {
		name    string
		headers map[string]string
		body    string
		code    int
		want    *PushEvent
	}{
		{"github push", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + hmacHex(secret, github)}, github, 202,
			&PushEvent{Provider: "github", Branch: "main", Commit: "c1", RepoURLs: []string{"https://github.com/org/apps.git", "git@github.com:org/apps.git"}}},
		{"github bad signature", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + hmacHex("other", github)}, github, 401, nil},
		{"github no signature", map[string]string{"X-GitHub-Event": "push"}, github, 401, nil},
		{"github ping", map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + hmacHex(secret, "{}")}, "{}", 200, nil},
		{"gitea push", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": hmacHex(secret, gitea)}, gitea, 202,
			&PushEvent{Provider: "gitea", Branch: "dev", Commit: "c2", RepoURLs: []string{"https://gitea.example.com/org/apps.git"}}},
		{"gitea bad signature", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": hmacHex(secret, gitea+" ")}, gitea, 401, nil},
		{"gitlab tag push", map[string]string{"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": secret}, gitlab, 202,
			&PushEvent{Provider: "gitlab", Tag: "v1", Commit: "c3", RepoURLs: []string{"https://gitlab.example.com/org/apps.git"}}},
		{"gitlab bad token", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, gitlab, 401, nil},
		{"unknown provider", map[string]string{}, github, 400, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []PushEvent
			rc := &Receiver{Secret: []byte(secret), Handlers: []Handler{HandlerFunc(func(_ context.Context, e PushEvent) error {
				got = append(got, e)
				return nil
			})}}
			req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewBufferString(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			rc.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.code, rec.Body)
			}
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("handler called: %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("handler called %d times", len(got))
			}
			g := got[0]
			if g.Provider != tc.want.Provider || g.Branch != tc.want.Branch || g.Tag != tc.want.Tag || g.Commit != tc.want.Commit || !slices.Equal(g.RepoURLs, tc.want.RepoURLs) {
				t.Fatalf("got %+v, want %+v", g, *tc.want)
			}
		})
	}
}

func TestReceiverWithoutSecretRefusesEverything(t *testing.T) {
	body := `{"ref":"refs/heads/main","repository":{"clone_url":"https://x/y"}}`
	rc := &Receiver{}
	req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewBufferString(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hmacHex("", body))
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", rec.Code)
	}
}

func TestSameRepo(t *testing.T) {
	same := [][2]string{
		{"https://github.com/Org/Apps.git", "git@github.com:org/apps"},
		{"ssh://git@github.com/org/apps.git", "https://github.com/org/apps/"},
		{"file:///tmp/repos/apps.git", "file:///tmp/repos/apps"},
		{"http://127.0.0.1:3000/org/apps.git", "http://127.0.0.1:3000/org/apps"},
	}
	for _, p := range same {
		if !SameRepo(p[0], p[1]) {
			t.Errorf("%s and %s should match (%s vs %s)", p[0], p[1], NormalizeURL(p[0]), NormalizeURL(p[1]))
		}
	}
	if SameRepo("https://github.com/org/apps", "https://github.com/org/apps-infra") {
		t.Error("different repositories matched")
	}
}

// With SecretFunc the receiver follows the secret as it appears and rotates.
func TestReceiverFollowsARotatingSecret(t *testing.T) {
	body := `{"ref":"refs/heads/main","after":"abc","repository":{"clone_url":"https://x/y"}}`
	var current string
	pushes := 0
	rc := &Receiver{
		SecretFunc: func() []byte { return []byte(current) },
		Handlers:   []Handler{HandlerFunc(func(context.Context, PushEvent) error { pushes++; return nil })},
	}
	post := func(signWith string) int {
		req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewBufferString(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hmacHex(signWith, body))
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		return rec.Code
	}
	steps := []struct {
		secret, signWith string
		want             int
	}{
		{"", "", http.StatusUnauthorized},            // not configured yet
		{"first", "first", http.StatusAccepted},      // created while running
		{"second", "first", http.StatusUnauthorized}, // rotated: the old one is refused
		{"second", "second", http.StatusAccepted},
	}
	for i, s := range steps {
		current = s.secret
		if got := post(s.signWith); got != s.want {
			t.Fatalf("step %d: status %d, want %d", i, got, s.want)
		}
	}
	if pushes != 2 {
		t.Fatalf("%d pushes handled, want 2", pushes)
	}
}
