package postgres

import (
	"fmt"
	"sort"
	"strings"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/operators/instance"
)

// SynchronousStandbyNames is the synchronous_standby_names value for a
// primary with the given replicas (instance names; standbys report their
// slot names, instance.SlotName): "ANY n (r1, r2)", with n capped at the
// number of replicas (so a one-instance cluster is not blocked forever), or
// "" for asynchronous replication.
func SynchronousStandbyNames(n int, replicas []string) string {
	if n > len(replicas) {
		n = len(replicas)
	}
	if n <= 0 {
		return ""
	}
	names := append([]string(nil), replicas...)
	sort.Strings(names)
	quoted := make([]string, len(names))
	for i, r := range names {
		// Standbys connect with application_name = their slot name.
		quoted[i] = `"` + instance.SlotName(r) + `"`
	}
	return fmt.Sprintf("ANY %d (%s)", n, strings.Join(quoted, ", "))
}

// LSN is a PostgreSQL WAL location as a number, so locations compare.
type LSN uint64

// ParseLSN reads the "X/Y" text form PostgreSQL prints.
func ParseLSN(s string) (LSN, error) {
	v, err := backup.ParseLSN(s)
	return LSN(v), err
}

// String prints the "X/Y" form.
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xffffffff) }

// Candidate is a replica that could be promoted, as observed.
type Candidate struct {
	Name string
	// Ready is true when the replica answered.
	Ready bool
	// Timeline the replica is on (the highest it was seen on): a replica
	// still on an abandoned timeline must never win over one that follows
	// the newest, however much WAL it received there.
	Timeline int64
	// Received is how far it has received WAL: under synchronous
	// replication, among replicas on the newest timeline the one that
	// received most holds every acknowledged commit.
	Received LSN
}

// ChoosePromotion picks the replica to promote: the ready one on the highest
// timeline, then with the most WAL received, ties broken by name so the
// choice is stable. It returns "" when no replica is ready.
func ChoosePromotion(cands []Candidate) string {
	best := -1
	for i, c := range cands {
		if !c.Ready {
			continue
		}
		if best < 0 || better(c, cands[best]) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return cands[best].Name
}

func better(a, b Candidate) bool {
	if a.Timeline != b.Timeline {
		return a.Timeline > b.Timeline
	}
	if a.Received != b.Received {
		return a.Received > b.Received
	}
	return a.Name < b.Name
}

// FailoverSafe says whether promoting the best of the reachable replicas
// keeps every acknowledged commit. With synchronous_standby_names = ANY k
// (r1..rn), a commit was acknowledged once k of the n replicas had flushed
// it; so one of the reachable replicas is sure to hold it only when fewer
// than k replicas are unreachable. Asynchronous replication (k = 0) promises
// nothing, so any failover is "safe". When it is not, the reason names the
// unreachable replicas and how many are needed.
func FailoverSafe(k int, replicas []string, reachable map[string]bool) (bool, string) {
	k = min(k, len(replicas))
	if k <= 0 {
		return true, ""
	}
	var missing []string
	for _, r := range replicas {
		if !reachable[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) < k {
		return true, ""
	}
	sort.Strings(missing)
	return false, fmt.Sprintf("synchronous: %d needs %d of the replicas %v reachable to be sure one holds every acknowledged commit; unreachable: %v",
		k, len(replicas)-k+1, sortedCopy(replicas), missing)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
