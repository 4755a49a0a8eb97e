package backup

import (
	"context"
	"fmt"
	"strings"
)

// RetentionPlan is what Retain deletes.
type RetentionPlan struct {
	// Backups are the IDs removed: complete ones beyond the newest keep, and
	// incomplete ones older than the oldest backup kept.
	Backups []string `json:"backups"`
	// WAL are archive names only the removed backups needed.
	WAL []string `json:"wal"`
}

// PlanRetention decides, without touching the store, what keeping the newest
// keep complete backups allows to delete: older complete backups, incomplete
// ones (interrupted uploads) older than the oldest kept backup, and WAL older
// than the first segment of the oldest kept backup (on its timeline and the
// ones before it), which no kept backup can use. History files always stay.
// Without any complete backup nothing is deleted.
func PlanRetention(backups []Manifest, incomplete []string, walNames []string, keep int) RetentionPlan {
	var plan RetentionPlan
	if keep < 1 || len(backups) == 0 {
		return plan
	}
	cut := max(len(backups)-keep, 0)
	oldestKept := backups[cut]
	for _, b := range backups[:cut] {
		plan.Backups = append(plan.Backups, b.ID)
	}
	for _, id := range incomplete {
		if id < oldestKept.ID {
			plan.Backups = append(plan.Backups, id)
		}
	}
	first, ok := parseSegment(oldestKept.StartWAL)
	if !ok {
		return plan
	}
	for _, name := range walNames {
		seg, ok := parseSegment(name)
		if ok && seg.tli <= first.tli && seg.num < first.num {
			plan.WAL = append(plan.WAL, name)
		}
	}
	return plan
}

// Retain keeps the newest keep complete backups and deletes the rest, with
// the WAL only they needed.
func Retain(ctx context.Context, s Store, keep int) (RetentionPlan, error) {
	if keep < 1 {
		return RetentionPlan{}, fmt.Errorf("retention: keep must be at least 1, got %d", keep)
	}
	backups, incomplete, err := List(ctx, s)
	if err != nil {
		return RetentionPlan{}, err
	}
	wal, err := s.List(ctx, walDir)
	if err != nil {
		return RetentionPlan{}, err
	}
	names := make([]string, 0, len(wal))
	for _, o := range wal {
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(o.Key, walDir), ".zst"))
	}
	plan := PlanRetention(backups, incomplete, names, keep)
	for _, id := range plan.Backups {
		if err := Delete(ctx, s, id); err != nil {
			return plan, err
		}
	}
	keys := make([]string, len(plan.WAL))
	for i, n := range plan.WAL {
		keys[i] = walKey(n)
	}
	return plan, s.Delete(ctx, keys...)
}
