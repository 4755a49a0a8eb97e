package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestAuthFromSecret(t *testing.T) {
	_, keyPEM := newEd25519(t)
	signer, _ := newEd25519(t)
	_, _, caPEM := newTLS(t)
	_, encPEM := encryptedKey(t, "hunter22")
	knownHosts := knownHostsLine("github.com", signer.PublicKey())

	tests := []struct {
		name    string
		data    map[string]string
		want    []string // fields set
		wantErr string
	}{
		{name: "empty", data: nil},
		{name: "basic", data: map[string]string{"username": "alice", "password": "s3cret"}, want: []string{"username", "password"}},
		{name: "token as username", data: map[string]string{"username": "ghp_token"}, want: []string{"username"}},
		{name: "bearer", data: map[string]string{"bearerToken": "tok\n"}, want: []string{"bearerToken"}},
		{name: "ssh", data: map[string]string{"identity": string(keyPEM), "identity.pub": "ssh-ed25519 AAAA", "known_hosts": string(knownHosts)}, want: []string{"identity", "known_hosts"}},
		{name: "ssh with passphrase", data: map[string]string{"identity": string(encPEM), "password": "hunter22", "known_hosts": string(knownHosts)}, want: []string{"password", "identity", "known_hosts"}},
		{name: "ca", data: map[string]string{"username": "a", "password": "b", "ca.crt": string(caPEM)}, want: []string{"username", "password", "ca.crt"}},
		{name: "legacy caFile", data: map[string]string{"caFile": string(caPEM)}, want: []string{"ca.crt"}},
		{name: "bearer and basic", data: map[string]string{"bearerToken": "t", "username": "a", "password": "b"}, wantErr: "both bearerToken and username/password"},
		{name: "password alone", data: map[string]string{"password": "b"}, wantErr: "password but no username"},
		{name: "garbage identity", data: map[string]string{"identity": "not a key"}, wantErr: "secret key identity"},
		{name: "encrypted identity without passphrase", data: map[string]string{"identity": string(encPEM)}, wantErr: "put its passphrase in password"},
		{name: "wrong passphrase", data: map[string]string{"identity": string(encPEM), "password": "nope"}, wantErr: "secret key identity"},
		{name: "bad known_hosts", data: map[string]string{"identity": string(keyPEM), "known_hosts": "github.com ssh-ed25519 !!!"}, wantErr: "secret key known_hosts"},
		{name: "bad ca", data: map[string]string{"ca.crt": "nope"}, wantErr: "secret key ca.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := map[string][]byte{}
			for k, v := range tt.data {
				data[k] = []byte(v)
			}
			a, err := AuthFromSecret(data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
				}
				for _, v := range tt.data {
					if len(v) > 3 && strings.Contains(err.Error(), v) {
						t.Errorf("error %q repeats a secret value", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(a.fields()); got != fmt.Sprint(tt.want) {
				t.Errorf("fields set %v, want %v", got, tt.want)
			}
		})
	}
}

func encryptedKey(t testing.TB, passphrase string) (ssh.Signer, []byte) {
	t.Helper()
	signer, plain := newEd25519(t)
	raw, err := ssh.ParseRawPrivateKey(plain)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKeyWithPassphrase(raw, "", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	return signer, pemEncode(blk)
}

func TestAuthNeverPrintsSecrets(t *testing.T) {
	_, keyPEM := newEd25519(t)
	a := Auth{Username: "alice-user", Password: "pa55word", BearerToken: "t0ken-xyz", Identity: keyPEM, KnownHosts: []byte("host ssh-ed25519 AAAAC3")}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("fetch", "auth", a)
	js, err := json.Marshal(map[string]any{"auth": a, "ptr": &a})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", a), "%+v": fmt.Sprintf("%+v", a), "%#v": fmt.Sprintf("%#v", a),
		"%s":            fmt.Sprintf("%s", a), //nolint:staticcheck // the verb is what is tested
		"%v of pointer": fmt.Sprintf("%v", &a), "%+v in struct": fmt.Sprintf("%+v", struct{ A Auth }{a}),
		"json": string(js), "slog": logged.String(),
	}
	for what, out := range outputs {
		for _, secret := range []string{"alice-user", "pa55word", "t0ken-xyz", "PRIVATE KEY", "AAAAC3"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s prints %q: %s", what, secret, out)
			}
		}
		if !strings.Contains(out, "password") {
			t.Errorf("%s does not say which fields are set: %s", what, out)
		}
	}
}

func TestHTTPBasicAuth(t *testing.T) {
	srv, fx := newServer(t)
	srv.Auth("alice", "right-password")
	u := startHTTP(t, srv)
	withUser := strings.Replace(u, "http://", "http://alice:wrong-in-url@", 1)
	withRightUser := strings.Replace(u, "http://", "http://alice:right-password@", 1)

	tests := []struct {
		name    string
		url     string
		auth    Auth
		wantErr error
	}{
		{name: "right password", url: u, auth: Auth{Username: "alice", Password: "right-password"}},
		{name: "wrong password", url: u, auth: Auth{Username: "alice", Password: "wrong-password"}, wantErr: ErrAuth},
		{name: "no credentials", url: u, wantErr: ErrAuth},
		{name: "wrong credentials in the url", url: withUser, wantErr: ErrAuth},
		{name: "credentials in the url", url: withRightUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Fetcher{CacheDir: t.TempDir()}
			rev, err := f.Fetch(context.Background(), "ns/http", tt.url, Ref{Tag: "v2"}, tt.auth)
			if tt.wantErr == nil {
				if err != nil || rev.Commit != fx.c2 {
					t.Fatalf("got %+v, %v; want commit %s", rev, err, fx.c2)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("want %v, got %v", tt.wantErr, err)
			}
			t.Log(err)
			msg := err.Error()
			for _, secret := range []string{"wrong-password", "wrong-in-url", "right-password", "alice:"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error shows %q: %s", secret, msg)
				}
			}
			host := strings.TrimPrefix(srv.HTTPAddress(), "http://")
			if !strings.Contains(msg, host) {
				t.Errorf("error %q does not name the server %s", msg, host)
			}
		})
	}
}

func TestHTTPBearerToken(t *testing.T) {
	srv, fx := newServer(t)
	srv.AddHTTPMiddlewares(requireBearer("the-token"))
	u := startHTTP(t, srv)
	heads, err := LsRemote(context.Background(), u, Auth{BearerToken: "the-token"})
	if err != nil || heads["main"] != fx.c3 {
		t.Fatalf("LsRemote with token: %v, %v", heads, err)
	}
	_, err = LsRemote(context.Background(), u, Auth{BearerToken: "not-the-token"})
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "not-the-token") {
		t.Fatalf("wrong token: want a clean ErrAuth, got %v", err)
	}
}

func TestHTTPSWithPrivateCA(t *testing.T) {
	srv, fx := newServer(t)
	srv.Auth("alice", "pw")
	cert, key, ca := newTLS(t)
	if err := srv.StartHTTPS(cert, key, ca, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.StopHTTP)
	u := srv.HTTPAddress() + "/repo.git"
	if !strings.HasPrefix(u, "https://") {
		t.Fatalf("server URL %s is not https", u)
	}
	f := &Fetcher{CacheDir: t.TempDir()}
	rev, err := f.Fetch(context.Background(), "ns/https", u, Ref{Branch: "feature"}, Auth{Username: "alice", Password: "pw", CA: ca})
	if err != nil || rev.Commit != fx.f1 {
		t.Fatalf("fetch over https with the CA: %+v, %v", rev, err)
	}
	_, err = f.Fetch(context.Background(), "ns/https-no-ca", u, Ref{}, Auth{Username: "alice", Password: "pw"})
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("without the CA: want ErrAuth saying the certificate is not trusted, got %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://alice:pw@git.example.com/org/repo.git", "https://git.example.com/org/repo.git"},
		{"https://ghp_token@git.example.com/org/repo.git", "https://git.example.com/org/repo.git"},
		{"ssh://git@git.example.com:2222/org/repo.git", "ssh://git@git.example.com:2222/org/repo.git"},
		{"ssh://git:pw@git.example.com/org/repo.git", "ssh://git@git.example.com/org/repo.git"},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git"},
		{"file:///srv/repo", "file:///srv/repo"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	msg := scrub(`Get "https://bob:hunter2@h/x/info/refs": EOF with hunter2 again`, []string{"hunter2"})
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "bob") {
		t.Errorf("scrub left a secret: %s", msg)
	}
	if _, err := url.Parse(redactURL("https://a:b@h/r")); err != nil {
		t.Error(err)
	}
}
