package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// request is what the test server received.
type request struct {
	Method, Path, Auth, ContentType string
	Body                            map[string]any
}

// receiver is a real HTTP server on 127.0.0.1 that records every request.
func receiver(t *testing.T, status int) (*httptest.Server, chan request) {
	t.Helper()
	got := make(chan request, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("body is not JSON: %q", b)
		}
		got <- request{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"ok":false,"description":"nope"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

var failed = Event{
	Namespace: "ci", Pipeline: "shop", Build: "shop-main-0123456",
	Repository: "https://git.example.com/acme/shop.git", Commit: "0123456789abcdef0123456789abcdef01234567",
	Branch: "main", Result: "Failed", FailedStep: "test", Duration: "1m12s",
	Message: ".homeostat-ci.yaml:4: steps[0].run: required",
}

const failedText = "❌ ci/shop shop-main-0123456: failed at step test in 1m12s\n" +
	"https://git.example.com/acme/shop.git main @ 0123456789ab\n" +
	".homeostat-ci.yaml:4: steps[0].run: required"

func TestWebhookFormats(t *testing.T) {
	cases := []struct {
		format string
		secret map[string]string
		want   map[string]any
	}{
		{"slack", nil, map[string]any{"text": failedText}},
		{"telegram", map[string]string{"chatID": "-100200"}, map[string]any{"chat_id": "-100200", "text": failedText, "disable_web_page_preview": true}},
		{"json", nil, map[string]any{
			"namespace": "ci", "pipeline": "shop", "build": "shop-main-0123456",
			"repository": "https://git.example.com/acme/shop.git", "commit": "0123456789abcdef0123456789abcdef01234567",
			"branch": "main", "result": "Failed", "failedStep": "test", "duration": "1m12s",
			"message": ".homeostat-ci.yaml:4: steps[0].run: required"}},
	}
	for _, c := range cases {
		t.Run(c.format, func(t *testing.T) {
			srv, got := receiver(t, http.StatusOK)
			data := map[string][]byte{"url": []byte(srv.URL + "/hook/SECRET")}
			for k, v := range c.secret {
				data[k] = []byte(v)
			}
			n, err := FromSecret(c.format, data)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Notify(context.Background(), failed); err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.Method != "POST" || r.Path != "/hook/SECRET" || r.ContentType != "application/json" {
				t.Fatalf("request %+v", r)
			}
			gotJSON, _ := json.Marshal(r.Body)
			wantJSON, _ := json.Marshal(c.want)
			if string(gotJSON) != string(wantJSON) {
				t.Fatalf("body\n got  %s\n want %s", gotJSON, wantJSON)
			}
		})
	}
}

func TestCommitStatusAPIs(t *testing.T) {
	cases := []struct {
		provider, wantPath, wantAuth string
	}{
		{"github", "/repos/acme/shop/statuses/0123456789abcdef0123456789abcdef01234567", "Bearer tok3n"},
		{"gitea", "/api/v1/repos/acme/shop/statuses/0123456789abcdef0123456789abcdef01234567", "token tok3n"},
	}
	for _, c := range cases {
		t.Run(c.provider, func(t *testing.T) {
			srv, got := receiver(t, http.StatusCreated)
			n := CommitStatus{Provider: c.provider, BaseURL: srv.URL, Token: "tok3n", Context: "homeostat/shop"}
			if err := n.Notify(context.Background(), failed); err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.Path != c.wantPath || r.Auth != c.wantAuth {
				t.Fatalf("request %+v", r)
			}
			want := map[string]any{"state": "failure", "context": "homeostat/shop", "description": "build failed at step test in 1m12s"}
			gotJSON, _ := json.Marshal(r.Body)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Fatalf("body\n got  %s\n want %s", gotJSON, wantJSON)
			}
		})
	}
}

// TestErrorsHideTheURL proves a failed delivery says what failed without
// leaking the webhook URL or bot token it was sent to.
func TestErrorsHideTheURL(t *testing.T) {
	srv, got := receiver(t, http.StatusForbidden)
	err := Slack{URL: srv.URL + "/services/T000/B000/XXXSECRET"}.Notify(context.Background(), failed)
	<-got
	if err == nil || !strings.Contains(err.Error(), "slack webhook: 403 Forbidden") || strings.Contains(err.Error(), "XXXSECRET") {
		t.Fatalf("error %v", err)
	}
	srv.Close()
	err = Telegram{URL: srv.URL + "/botSECRET/sendMessage", ChatID: "1"}.Notify(context.Background(), failed)
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.HasPrefix(err.Error(), "telegram sendMessage: ") {
		t.Fatalf("error %v", err)
	}
}

func TestMultiDeliversToAllAndJoinsErrors(t *testing.T) {
	ok, got := receiver(t, http.StatusOK)
	bad, _ := receiver(t, http.StatusInternalServerError)
	err := Multi{JSON{URL: bad.URL}, Slack{URL: ok.URL}}.Notify(context.Background(), failed)
	if err == nil || !strings.Contains(err.Error(), "json webhook: 500") {
		t.Fatalf("error %v", err)
	}
	if r := <-got; r.Body["text"] != failedText {
		t.Fatalf("the second notifier was not called after the first failed: %+v", r)
	}
}

func TestFromSecretProblems(t *testing.T) {
	cases := []struct {
		format string
		data   map[string][]byte
		want   string
	}{
		{"slack", nil, `notify secret: key "url" is missing or empty`},
		{"slack", map[string][]byte{"url": []byte("not a url")}, `notify secret: key "url" is not a URL`},
		{"telegram", map[string][]byte{"url": []byte("http://127.0.0.1/x")}, `notify secret: key "chatID" is needed for telegram`},
		{"teams", map[string][]byte{"url": []byte("http://127.0.0.1/x")}, `notify: unknown format "teams" (slack, telegram, json)`},
	}
	for _, c := range cases {
		if _, err := FromSecret(c.format, c.data); err == nil || err.Error() != c.want {
			t.Errorf("FromSecret(%s, %v) = %v, want %s", c.format, c.data, err, c.want)
		}
	}
}

func TestRepoPath(t *testing.T) {
	cases := []struct{ in, owner, repo, host string }{
		{"https://github.com/acme/shop.git", "acme", "shop", "github.com"},
		{"https://gitea.example.com:3000/acme/shop", "acme", "shop", "gitea.example.com:3000"},
		{"ssh://git@github.com/acme/shop.git", "acme", "shop", "github.com"},
		{"git@github.com:acme/shop.git", "acme", "shop", "github.com"},
	}
	for _, c := range cases {
		o, r, h, err := RepoPath(c.in)
		if err != nil || o != c.owner || r != c.repo || h != c.host {
			t.Errorf("RepoPath(%s) = %s %s %s %v", c.in, o, r, h, err)
		}
	}
	if _, _, _, err := RepoPath("file:///tmp/repo"); err == nil {
		t.Errorf("a one-segment path has no owner")
	}
}

func TestPermanentFailures(t *testing.T) {
	forbidden, _ := receiver(t, http.StatusForbidden)
	broken, _ := receiver(t, http.StatusBadGateway)
	cases := []struct {
		name      string
		n         Notifier
		permanent bool
	}{
		{"403 is permanent", Slack{URL: forbidden.URL}, true},
		{"502 is worth a retry", Slack{URL: broken.URL}, false},
		{"a repository without owner/repo is permanent", CommitStatus{Provider: "github", BaseURL: broken.URL}, true},
		{"one retryable failure among permanent ones", Multi{Slack{URL: forbidden.URL}, JSON{URL: broken.URL}}, false},
	}
	e := failed
	e.Repository = "file:///srv/shop"
	for _, c := range cases {
		err := c.n.Notify(context.Background(), e)
		if err == nil || IsPermanent(err) != c.permanent {
			t.Errorf("%s: err %v, permanent %v", c.name, err, IsPermanent(err))
		}
	}
}
