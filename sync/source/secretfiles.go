package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// secretKeys are the Secret keys AuthFromSecret reads.
var secretKeys = []string{KeyUsername, KeyPassword, KeyBearerToken, KeyIdentity, KeyIdentityPub, KeyKnownHosts, KeyCA, keyCALegacy}

// ReadSecretDir reads a Secret mounted as a directory (one file per key, as
// Kubernetes mounts it), for AuthFromSecret. Missing keys are simply absent;
// a missing directory is an error, since it was asked for.
func ReadSecretDir(dir string) (map[string][]byte, error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("secret dir: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("secret dir %s: not a directory", dir)
	}
	data := map[string][]byte{}
	for _, k := range secretKeys {
		b, err := os.ReadFile(filepath.Join(dir, k))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return nil, fmt.Errorf("secret dir %s: %w", dir, err)
		}
		data[k] = b
	}
	return data, nil
}

// EnvName is the environment variable that may carry a Secret key for
// commands that take credentials from the environment:
// HOMEOSTAT_GIT_USERNAME, _PASSWORD, _BEARER_TOKEN, _IDENTITY, _KNOWN_HOSTS, _CA_CRT.
func EnvName(key string) string {
	var b strings.Builder
	b.WriteString("HOMEOSTAT_GIT_")
	for i, r := range key {
		switch {
		case r == '.' || r == '_':
			b.WriteByte('_')
		case r >= 'A' && r <= 'Z':
			if i > 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteString(strings.ToUpper(string(r)))
		}
	}
	return b.String()
}

// SecretDataFromEnv reads Secret keys from HOMEOSTAT_GIT_* variables (see
// EnvName) through lookup, normally os.LookupEnv.
func SecretDataFromEnv(lookup func(string) (string, bool)) map[string][]byte {
	data := map[string][]byte{}
	for _, k := range secretKeys {
		if v, ok := lookup(EnvName(k)); ok && v != "" {
			data[k] = []byte(v)
		}
	}
	return data
}
