package source

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestSSHHostKey(t *testing.T) {
	srv, fx := newServer(t)
	s := startSSH(t, srv)
	other, _ := newEd25519(t)
	otherType, _ := newECDSA(t)
	_, strangerPEM := newEd25519(t)

	tests := []struct {
		name       string
		auth       Auth
		wantErr    error
		wantText   string
		wantCommit string
	}{
		{name: "right known_hosts", auth: Auth{Identity: s.client, KnownHosts: knownHostsLine(s.addr, s.hostKey)}, wantCommit: fx.c3},
		{name: "known_hosts with other hosts too", auth: Auth{Identity: s.client, KnownHosts: append(knownHostsLine("git.example.com", other.PublicKey()), knownHostsLine(s.addr, s.hostKey)...)}, wantCommit: fx.c3},
		{name: "host key mismatch", auth: Auth{Identity: s.client, KnownHosts: knownHostsLine(s.addr, other.PublicKey())}, wantErr: ErrHostKey, wantText: "does not match known_hosts"},
		{name: "key of another type only", auth: Auth{Identity: s.client, KnownHosts: knownHostsLine(s.addr, otherType.PublicKey())}, wantErr: ErrHostKey, wantText: "refusing to connect"},
		{name: "host not in known_hosts", auth: Auth{Identity: s.client, KnownHosts: knownHostsLine("git.example.com", s.hostKey)}, wantErr: ErrHostKey, wantText: "not in known_hosts"},
		{name: "no known_hosts", auth: Auth{Identity: s.client}, wantErr: ErrHostKey, wantText: "no known_hosts in the secret"},
		{name: "client key not authorized", auth: Auth{Identity: strangerPEM, KnownHosts: knownHostsLine(s.addr, s.hostKey)}, wantErr: ErrAuth, wantText: "authentication to 127.0.0.1"},
		{name: "no identity", auth: Auth{KnownHosts: knownHostsLine(s.addr, s.hostKey)}, wantErr: ErrAuth, wantText: "no identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Fetcher{CacheDir: t.TempDir()}
			rev, err := f.Fetch(context.Background(), "ns/ssh", s.url, Ref{}, tt.auth)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Fetch over ssh: %v", err)
				}
				if rev.Commit != tt.wantCommit {
					t.Errorf("commit %s, want %s", rev.Commit, tt.wantCommit)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("want %v, got %v", tt.wantErr, err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not say %q", err, tt.wantText)
			}
			if errors.Is(tt.wantErr, ErrHostKey) && !errors.Is(err, ErrAuth) {
				t.Errorf("host key error %v does not also match ErrAuth", err)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error shows key material: %v", err)
			}
		})
	}
}

func TestSSHLsRemoteAndClone(t *testing.T) {
	srv, fx := newServer(t)
	s := startSSH(t, srv)
	auth := Auth{Identity: s.client, KnownHosts: knownHostsLine(s.addr, s.hostKey)}
	heads, err := LsRemote(context.Background(), s.url, auth)
	if err != nil {
		t.Fatal(err)
	}
	if heads["main"] != fx.c3 || heads["feature"] != fx.f1 {
		t.Errorf("heads %v", heads)
	}
	dir := t.TempDir()
	if err := Clone(context.Background(), s.url, fx.c2, dir, auth); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dir, "apps/b.yaml"); got != "name: b\n" {
		t.Errorf("apps/b.yaml = %q", got)
	}
	if _, err := LsRemote(context.Background(), s.url, Auth{Identity: s.client}); !errors.Is(err, ErrHostKey) {
		t.Errorf("LsRemote without known_hosts: want ErrHostKey, got %v", err)
	}
}
