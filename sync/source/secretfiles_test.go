package source

import (
	"os"
	"path/filepath"
	"testing"
)

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"username": "HOMEOSTAT_GIT_USERNAME", "password": "HOMEOSTAT_GIT_PASSWORD",
		"bearerToken": "HOMEOSTAT_GIT_BEARER_TOKEN", "identity": "HOMEOSTAT_GIT_IDENTITY",
		"identity.pub": "HOMEOSTAT_GIT_IDENTITY_PUB", "known_hosts": "HOMEOSTAT_GIT_KNOWN_HOSTS",
		"ca.crt": "HOMEOSTAT_GIT_CA_CRT", "caFile": "HOMEOSTAT_GIT_CA_FILE",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestReadSecretDirAsKubernetesMountsIt(t *testing.T) {
	// Kubernetes mounts each key as a symlink into a ..data directory.
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_11_24")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"username": "alice", "password": "pw", "unrelated": "x"} {
		if err := os.WriteFile(filepath.Join(data, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..2026_11_24", k), filepath.Join(dir, k)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadSecretDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got["username"]) != "alice" || string(got["password"]) != "pw" {
		t.Errorf("read %v", got)
	}
	if _, err := ReadSecretDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing secret dir: no error")
	}
	env := map[string]string{"HOMEOSTAT_GIT_BEARER_TOKEN": "tok", "HOMEOSTAT_GIT_PASSWORD": ""}
	fromEnv := SecretDataFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if len(fromEnv) != 1 || string(fromEnv["bearerToken"]) != "tok" {
		t.Errorf("from env %v", fromEnv)
	}
}
