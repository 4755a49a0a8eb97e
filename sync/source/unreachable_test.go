package source

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUnreachableServer(t *testing.T) {
	addr := closedPort(t)
	signer, keyPEM := newEd25519(t)
	tests := []struct {
		name string
		url  string
		auth Auth
	}{
		{"http", "http://" + addr + "/repo.git", Auth{Username: "u", Password: "secret-pw"}},
		{"ssh", "ssh://git@" + addr + "/repo.git", Auth{Identity: keyPEM, KnownHosts: knownHostsLine(addr, signer.PublicKey())}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			f := &Fetcher{CacheDir: t.TempDir()}
			_, err := f.Fetch(ctx, "ns/down", tt.url, Ref{}, tt.auth)
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Fetch: want ErrUnreachable, got %v", err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), addr) {
				t.Errorf("error %q does not name %s", err, addr)
			}
			if strings.Contains(err.Error(), "secret-pw") {
				t.Errorf("error shows the password: %v", err)
			}
			if _, err := LsRemote(ctx, tt.url, tt.auth); !errors.Is(err, ErrUnreachable) {
				t.Errorf("LsRemote: want ErrUnreachable, got %v", err)
			}
			if err := Clone(ctx, tt.url, strings.Repeat("a", 40), t.TempDir(), tt.auth); !errors.Is(err, ErrUnreachable) {
				t.Errorf("Clone: want ErrUnreachable, got %v", err)
			}
		})
	}
}

func TestMissingRepository(t *testing.T) {
	srv, _ := newServer(t)
	u := startHTTP(t, srv)
	_, err := LsRemote(context.Background(), strings.Replace(u, "repo.git", "nope.git", 1), Auth{})
	if !errors.Is(err, ErrRepositoryNotFound) {
		t.Fatalf("want ErrRepositoryNotFound, got %v", err)
	}
}
