package source

import (
	"context"
	"errors"
	"net"
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
		{"http with credentials in the url", "http://u:secret-pw@" + addr + "/repo.git", Auth{}},
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

// A server that accepts connections and never answers is unreachable once
// the caller's deadline passes; a cancelled fetch is not an error of the server.
func TestSilentServerAndCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer func() { _ = c.Close() }() // hold it open, say nothing
		}
	}()
	url := "http://" + ln.Addr().String() + "/repo.git"
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = LsRemote(ctx, url, Auth{})
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want ErrUnreachable and DeadlineExceeded, got %v", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("deadline of 300ms honoured only after %v", waited)
	}
	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	_, err = (&Fetcher{CacheDir: t.TempDir()}).Fetch(cancelled, "ns/x", url, Ref{}, Auth{})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Errorf("cancelled: want context.Canceled and not ErrUnreachable, got %v", err)
	}
}
