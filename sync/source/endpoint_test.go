package source

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	abs, _ := filepath.Abs("relative/repo")
	tests := []struct {
		in          string
		wantDisplay string
		wantHost    string
		wantErr     string
	}{
		{in: "https://u:pw@git.example.com/org/repo.git", wantDisplay: "https://git.example.com/org/repo.git", wantHost: "git.example.com"},
		{in: "ssh://git@git.example.com:2222/org/repo.git", wantDisplay: "ssh://git@git.example.com:2222/org/repo.git", wantHost: "git.example.com:2222"},
		{in: "git@github.com:org/repo.git", wantDisplay: "git@github.com:org/repo.git", wantHost: "github.com:22"},
		{in: "/srv/git/repo.git", wantDisplay: "/srv/git/repo.git", wantHost: "local path /srv/git/repo.git"},
		{in: "relative/repo", wantDisplay: abs, wantHost: "local path " + abs},
		{in: "  ", wantErr: "repository url is empty"},
		{in: "ftp://u:secret@example.com/repo", wantErr: `unsupported protocol "ftp"`},
		{in: "https://u:secret@host:notaport/repo", wantErr: "repository url"},
	}
	for _, tt := range tests {
		e, err := parseEndpoint(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "secret") {
				t.Errorf("parseEndpoint(%q): want a clean error about %q, got %v", tt.in, tt.wantErr, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseEndpoint(%q): %v", tt.in, err)
			continue
		}
		if e.display != tt.wantDisplay || e.hostPort() != tt.wantHost {
			t.Errorf("parseEndpoint(%q) = display %q host %q, want %q %q", tt.in, e.display, e.hostPort(), tt.wantDisplay, tt.wantHost)
		}
	}
}
