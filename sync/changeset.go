// Package sync makes a cluster match a rendered set of objects: it plans with
// server-side dry-run, applies with server-side apply in stages, prunes what
// left git and waits for health. Every step returns or extends one ChangeSet,
// the single printable value the CLI, events, snapshots and metrics render.
//
// The package keeps no state on disk: what it applied is recorded on the
// objects themselves (a content hash annotation and the "homeostat" field
// manager) and in the Sync's inventory, so a sync that finds nothing to do
// sends no write request at all.
package sync

import (
	"fmt"
	"sort"
	"strings"

	"homeostat.dev/homeostat/render"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Action is what a sync did (or, for a plan, would do) to one object.
type Action string

// The actions of a ChangeSet; the strings are stable and appear in
// snapshots, events and CLI output.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Pruned     Action = "pruned"
	// Kept is an object prune left in place although it left git: a
	// Namespace holding objects homeostat did not apply (Err says which).
	// The Sync still owns it, so a later sync prunes it once it is empty.
	Kept   Action = "kept"
	Failed Action = "failed"
)

// Change is one object and what happened to it.
type Change struct {
	Ref    Ref
	Action Action
	// Drift is true when the live object had been changed (or deleted) by
	// something other than homeostat and the sync put it back.
	Drift bool
	// Recreated is true when an immutable field changed and the object was
	// deleted and created again (it opted in, or the Sync forces).
	Recreated bool
	// Source is the file the object was rendered from (empty for pruned objects).
	Source render.Source
	// Diff is a unified diff of the live and desired object, set by Plan only.
	Diff string
	// Err says why the object failed.
	Err string
}

// String prints "Kind/namespace/name action", the line format kubectl and
// Flux users know.
func (c Change) String() string {
	s := fmt.Sprintf("%s %s", c.Ref, c.Action)
	if c.Drift {
		s += " (drift corrected)"
	}
	if c.Recreated {
		s += " (recreated)"
	}
	if c.Err != "" {
		s += ": " + c.Err
	}
	return s
}

// ChangeSet is the result of a plan, apply or prune.
type ChangeSet struct {
	Changes []Change
}

// Add appends changes.
func (cs *ChangeSet) Add(c ...Change) { cs.Changes = append(cs.Changes, c...) }

// Count is the number of changes with the given action.
func (cs ChangeSet) Count(a Action) int {
	n := 0
	for _, c := range cs.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Drifted is the number of objects that had drifted and were put back.
func (cs ChangeSet) Drifted() int {
	n := 0
	for _, c := range cs.Changes {
		if c.Drift {
			n++
		}
	}
	return n
}

// Changed reports whether anything was (or would be) created, configured or pruned.
func (cs ChangeSet) Changed() bool {
	for _, c := range cs.Changes {
		if c.Action != Unchanged && c.Action != Kept {
			return true
		}
	}
	return false
}

// Summary is one line of counts, for logs, events and conditions.
func (cs ChangeSet) Summary() string {
	s := fmt.Sprintf("%d created, %d configured, %d unchanged, %d pruned",
		cs.Count(Created), cs.Count(Configured), cs.Count(Unchanged), cs.Count(Pruned))
	if n := cs.Count(Kept); n > 0 {
		s += fmt.Sprintf(", %d kept", n)
	}
	if n := cs.Count(Failed); n > 0 {
		s += fmt.Sprintf(", %d failed", n)
	}
	if n := cs.Drifted(); n > 0 {
		s += fmt.Sprintf(" (%d drifted)", n)
	}
	return s
}

// String lists every change except unchanged objects (which would drown a
// large repository's output), sorted, then the summary line.
func (cs ChangeSet) String() string {
	var b strings.Builder
	for _, c := range cs.Sorted().Changes {
		if c.Action == Unchanged {
			continue
		}
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	b.WriteString(cs.Summary())
	return b.String()
}

// Sorted returns a copy ordered by action then object, for stable output.
func (cs ChangeSet) Sorted() ChangeSet {
	out := append([]Change(nil), cs.Changes...)
	order := map[Action]int{Failed: 0, Created: 1, Configured: 2, Pruned: 3, Kept: 4, Unchanged: 5}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Action != out[j].Action {
			return order[out[i].Action] < order[out[j].Action]
		}
		return out[i].Ref.String() < out[j].Ref.String()
	})
	return ChangeSet{Changes: out}
}

// API converts the changes other than unchanged to the Snapshot's form.
func (cs ChangeSet) API() []v1alpha1.Change {
	var out []v1alpha1.Change
	for _, c := range cs.Sorted().Changes {
		if c.Action == Unchanged {
			continue
		}
		a := string(c.Action)
		if c.Drift {
			a += " (drift)"
		}
		out = append(out, v1alpha1.Change{Object: c.Ref.String(), Action: a})
	}
	return out
}

// Inventory is the objects the change set leaves applied: everything except
// pruned and failed objects.
func (cs ChangeSet) Inventory() Inventory {
	var inv Inventory
	for _, c := range cs.Changes {
		if c.Action != Pruned && c.Action != Failed {
			inv = append(inv, c.Ref)
		}
	}
	return inv
}
