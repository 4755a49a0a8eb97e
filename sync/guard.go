package sync

import (
	"fmt"
)

// AnnotationPrune set to "disabled" on an object keeps it when it leaves
// git: prune leaves it in place and the Sync stops owning it.
const AnnotationPrune = "homeostat.dev/prune"

// MassPruneError is a prune refused because it would delete too much of
// what the Sync owns.
type MassPruneError struct {
	Stale, Inventory int
	Examples         []string
	Limit            *int32
}

func (e *MassPruneError) Error() string {
	why := "more than half of the inventory"
	if e.Limit != nil {
		why = fmt.Sprintf("more than spec.pruneLimit (%d)", *e.Limit)
	} else if e.Stale == e.Inventory {
		why = "all of the inventory"
	}
	return fmt.Sprintf("refusing to prune %d of %d objects (%s): %s; if this is meant, raise spec.pruneLimit or run `homeostat sync --allow-mass-prune` once",
		e.Stale, e.Inventory, why, listSome(e.Examples, 3))
}

// CheckPrune decides whether a sync may prune stale out of inventory (what
// the Sync owned before it). Without a limit it refuses more than half of
// the inventory and all of it; a limit allows up to that many; allow (a
// one-shot --allow-mass-prune) lets anything through.
func CheckPrune(inventory, stale Inventory, limit *int32, allow bool) error {
	n := len(stale)
	switch {
	case allow || n == 0:
		return nil
	case limit != nil && n <= int(*limit):
		return nil
	case limit == nil && n < len(inventory) && 2*n <= len(inventory):
		return nil
	}
	ex := make([]string, 0, len(stale))
	for _, r := range stale {
		ex = append(ex, r.String())
	}
	return &MassPruneError{Stale: n, Inventory: len(inventory), Examples: ex, Limit: limit}
}
