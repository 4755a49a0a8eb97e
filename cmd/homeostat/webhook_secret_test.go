package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebhookSecret covers the three outcomes of reading the secret: on,
// off (nothing configured) and refused (configured but unusable).
func TestWebhookSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		file    string
		env     string
		want    string
		wantOK  bool
		wantErr string
	}{
		{name: "file, trimmed", file: write("s", "  s3cret\n"), want: "s3cret", wantOK: true},
		{name: "file wins over env", file: write("t", "fromfile"), env: "fromenv", want: "fromfile", wantOK: true},
		{name: "env", env: "fromenv", want: "fromenv", wantOK: true},
		{name: "optional secret not mounted", file: filepath.Join(dir, "absent", "secret")},
		{name: "empty file refused", file: write("empty", "\n"), wantErr: "needs a secret"},
		{name: "nothing at all refused", wantErr: "needs a secret"},
		{name: "unreadable path", file: dir, wantErr: "webhook secret:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOMEOSTAT_WEBHOOK_SECRET", tt.env)
			got, ok, err := webhookSecret(tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK || string(got) != tt.want {
				t.Fatalf("got (%q, %v), want (%q, %v)", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
