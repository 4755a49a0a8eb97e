package instance

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ReadSecret reads a password from file when given, else from the
// environment variable env; empty when neither is set. Passwords never come
// from command-line arguments, which every process on the machine can read.
func ReadSecret(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read password file %s: %w", file, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return os.Getenv(env), nil
}

const scramIterations = 4096

// ScramVerifier is what PostgreSQL stores for a scram-sha-256 password. Roles
// are created with the verifier, so the plain password is never sent to the
// server, and cannot appear in its logs or pg_stat_statements.
func ScramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramVerifier(password, salt, scramIterations)
}

// VerifierMatches says whether verifier (as pg_authid stores it) was made
// from password, by making it again with the verifier's own salt and
// iteration count. It is how the operator checks a role against its secret
// without writing anything when they agree.
func VerifierMatches(verifier, password string) bool {
	rest, ok := strings.CutPrefix(verifier, "SCRAM-SHA-256$")
	if !ok {
		return false
	}
	params, _, ok := strings.Cut(rest, "$")
	if !ok {
		return false
	}
	iter, saltB64, ok := strings.Cut(params, ":")
	if !ok {
		return false
	}
	iterations, err := strconv.Atoi(iter)
	if err != nil || iterations <= 0 || iterations > 1<<20 {
		return false
	}
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	if err != nil {
		return false
	}
	want, err := scramVerifier(password, salt, iterations)
	return err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(verifier)) == 1
}

func scramVerifier(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(msg string) []byte {
		h := hmac.New(sha256.New, salted)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac("Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := mac("Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

// passfileLine is one libpq passfile entry; ':' and '\' are escaped.
func passfileLine(host string, port int, user, password string) string {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	return fmt.Sprintf("%s:%d:*:%s:%s\n", esc.Replace(host), port, esc.Replace(user), esc.Replace(password))
}
