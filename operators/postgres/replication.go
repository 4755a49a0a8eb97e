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
	// Received is how far it has received WAL: under synchronous
	// replication, the replica that received most holds every acknowledged
	// commit.
	Received LSN
	// Timeline the replica is on; it breaks ties only, since a replica
	// that lost its primary may no longer report the timeline it streams.
	Timeline int64
}

// ChoosePromotion picks the replica to promote: the ready one that has
// received the most WAL, ties broken by name so the choice is stable. It
// returns "" when no replica is ready.
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
	if a.Received != b.Received {
		return a.Received > b.Received
	}
	if a.Timeline != b.Timeline {
		return a.Timeline > b.Timeline
	}
	return a.Name < b.Name
}
