package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebhookSecret: a file is followed as it appears, changes and goes; the
// environment is read once; nothing at all is refused at start.
func TestWebhookSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")

	t.Setenv("HOMEOSTAT_WEBHOOK_SECRET", "")
	get, err := webhookSecret(file)
	if err != nil {
		t.Fatalf("a missing file (the optional Secret not created yet) must not stop the controller: %v", err)
	}
	for i, step := range []struct{ write, want string }{
		{"", ""},               // not there yet: refuse everything
		{"  first\n", "first"}, // created: trimmed as kubectl create secret --from-file leaves it
		{"second", "second"},   // rotated
		{"\n", ""},             // emptied
	} {
		if i > 0 {
			if err := os.WriteFile(file, []byte(step.write), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if got := string(get()); got != step.want {
			t.Fatalf("step %d: secret %q, want %q", i, got, step.want)
		}
	}

	t.Setenv("HOMEOSTAT_WEBHOOK_SECRET", "fromenv")
	if get, err := webhookSecret(""); err != nil || string(get()) != "fromenv" {
		t.Fatalf("env: %v", err)
	}
	t.Setenv("HOMEOSTAT_WEBHOOK_SECRET", " ")
	if _, err := webhookSecret(""); err == nil || !strings.Contains(err.Error(), "needs a secret") {
		t.Fatalf("no secret anywhere must be refused, got %v", err)
	}
	if _, err := webhookSecret(dir); err == nil || !strings.Contains(err.Error(), "webhook secret:") {
		t.Fatalf("an unreadable path must be refused, got %v", err)
	}
}
