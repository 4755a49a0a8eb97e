package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Annotations on a Postgres recording what the last successful password
// and parameter steps were made from, so that a reconcile where neither the
// secrets nor the spec changed skips them (and their queries). Changing
// the spec's parameters, editing a credential secret, adding an instance
// or a new primary each run them again. A change made by hand inside the
// database (ALTER ROLE, ALTER SYSTEM) is so corrected at the next such
// change, or, for the passwords, when an instance restarts (instance run
// sets them from the secrets).
const (
	AnnotationPasswordsSynced  = "homeostat.dev/passwords-synced"
	AnnotationParametersSynced = "homeostat.dev/parameters-synced"
)

// passwordsKey is what the passwords step depends on: the primary it ran
// on and the resourceVersions of the app and replication secrets.
func passwordsKey(c *cluster) string {
	return digest(c.pg.Status.Primary, c.secretVersions[SecretApp], c.secretVersions[SecretReplication])
}

// parametersKey is what the parameters step depends on: spec.parameters
// and the instances that took them.
func parametersKey(c *cluster) string {
	want := lowerKeys(c.pg.Spec.Parameters)
	parts := make([]string, 0, len(want)+1)
	for _, k := range sortedKeys(want) {
		parts = append(parts, k+"="+want[k])
	}
	return digest(strings.Join(parts, "\n"), strings.Join(readyPVCs(c), ","))
}

// digest is a short hash of parts: an annotation value that says whether
// they changed without spelling them out.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
