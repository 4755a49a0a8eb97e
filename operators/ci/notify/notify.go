// Package notify tells people and forges how a build ended: a chat message
// (Slack-compatible or Telegram), a plain JSON document, or a commit status
// on GitHub or Gitea. Each target is a small Notifier; Multi fans out.
// Webhook URLs and tokens are secrets: they never appear in errors.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Event is one finished (or, for commit statuses, started) build.
type Event struct {
	Namespace  string `json:"namespace"`
	Pipeline   string `json:"pipeline"`
	Build      string `json:"build"`
	Repository string `json:"repository"`
	Commit     string `json:"commit"`
	Branch     string `json:"branch,omitempty"`
	// Result is Pending, Running, Succeeded or Failed.
	Result     string `json:"result"`
	FailedStep string `json:"failedStep,omitempty"`
	Duration   string `json:"duration,omitempty"`
	// Message explains a failure (a bad steps file with its file and line,
	// a timeout, an exit code).
	Message string `json:"message,omitempty"`
}

// Finished is true for the results that end a build.
func (e Event) Finished() bool { return e.Result == "Succeeded" || e.Result == "Failed" }

// Notifier delivers an event somewhere.
type Notifier interface {
	Notify(ctx context.Context, e Event) error
}

// Text is the one chat message every chat format carries.
func Text(e Event) string {
	var b strings.Builder
	icon := map[string]string{"Succeeded": "✅", "Failed": "❌"}[e.Result]
	if icon == "" {
		icon = "⏳"
	}
	fmt.Fprintf(&b, "%s %s/%s %s: %s", icon, e.Namespace, e.Pipeline, e.Build, strings.ToLower(e.Result))
	if e.FailedStep != "" {
		fmt.Fprintf(&b, " at step %s", e.FailedStep)
	}
	if e.Duration != "" {
		fmt.Fprintf(&b, " in %s", e.Duration)
	}
	fmt.Fprintf(&b, "\n%s", e.Repository)
	if e.Branch != "" {
		fmt.Fprintf(&b, " %s", e.Branch)
	}
	fmt.Fprintf(&b, " @ %s", short(e.Commit))
	if e.Message != "" {
		fmt.Fprintf(&b, "\n%s", e.Message)
	}
	return b.String()
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// Slack posts {"text": ...}, which Slack, Mattermost, Rocket.Chat and
// Discord's /slack endpoint all accept.
type Slack struct {
	URL    string
	Client *http.Client
}

// Notify posts the message.
func (s Slack) Notify(ctx context.Context, e Event) error {
	return post(ctx, s.Client, "slack webhook", s.URL, nil, map[string]string{"text": Text(e)})
}

// Telegram calls the Bot API's sendMessage. URL is the method URL
// (https://api.telegram.org/bot<token>/sendMessage), ChatID the chat.
type Telegram struct {
	URL    string
	ChatID string
	Client *http.Client
}

// Notify sends the message.
func (t Telegram) Notify(ctx context.Context, e Event) error {
	body := map[string]any{"chat_id": t.ChatID, "text": Text(e), "disable_web_page_preview": true}
	return post(ctx, t.Client, "telegram sendMessage", t.URL, nil, body)
}

// JSON posts the Event itself, for whatever a team wires up.
type JSON struct {
	URL    string
	Client *http.Client
}

// Notify posts the event.
func (j JSON) Notify(ctx context.Context, e Event) error {
	return post(ctx, j.Client, "json webhook", j.URL, nil, e)
}

// permanentError marks a failure that retrying cannot fix: a bad
// configuration, or a request the server rejected as wrong.
type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether every failure in err is permanent.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !IsPermanent(e) {
				return false
			}
		}
		return true
	}
	var p permanentError
	return errors.As(err, &p)
}

// Multi sends to every notifier and reports every failure.
type Multi []Notifier

// Notify delivers to all, even after one fails.
func (m Multi) Notify(ctx context.Context, e Event) error {
	var errs []error
	for _, n := range m {
		if err := n.Notify(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var (
	_ Notifier = Slack{}
	_ Notifier = Telegram{}
	_ Notifier = JSON{}
	_ Notifier = Multi{}
	_ Notifier = CommitStatus{}
)

// FromSecret builds the webhook notifier of a format (slack, telegram,
// json) from a Secret's data: "url", and "chatID" for Telegram.
func FromSecret(format string, data map[string][]byte) (Notifier, error) {
	u := strings.TrimSpace(string(data["url"]))
	if u == "" {
		return nil, fmt.Errorf("notify secret: key \"url\" is missing or empty")
	}
	if _, err := url.ParseRequestURI(u); err != nil {
		return nil, fmt.Errorf("notify secret: key \"url\" is not a URL")
	}
	switch format {
	case "", "slack":
		return Slack{URL: u}, nil
	case "json":
		return JSON{URL: u}, nil
	case "telegram":
		chat := strings.TrimSpace(string(data["chatID"]))
		if chat == "" {
			return nil, fmt.Errorf("notify secret: key \"chatID\" is needed for telegram")
		}
		return Telegram{URL: u, ChatID: chat}, nil
	default:
		return nil, fmt.Errorf("notify: unknown format %q (slack, telegram, json)", format)
	}
}

// post sends body as JSON. Its errors name what was called, never the URL,
// which for webhooks and bots holds the credential.
func post(ctx context.Context, c *http.Client, what, u string, header http.Header, body any) error {
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: bad url", what)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		err := fmt.Errorf("%s: %s: %s", what, resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return Permanent(err) // a wrong token or payload stays wrong
		}
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
