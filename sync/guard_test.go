package sync

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func refs(n int) Inventory {
	out := make(Inventory, n)
	for i := range out {
		out[i] = Ref{Kind: "ConfigMap", Namespace: "ns", Name: fmt.Sprintf("c%d", i)}
	}
	return out
}

func TestCheckPrune(t *testing.T) {
	limit := func(n int32) *int32 { return &n }
	for _, tc := range []struct {
		name       string
		inv, stale int
		limit      *int32
		allow      bool
		refused    string // a part of the message, "" when allowed
	}{
		{name: "nothing to prune", inv: 4, stale: 0},
		{name: "half", inv: 4, stale: 2},
		{name: "more than half", inv: 4, stale: 3, refused: "refusing to prune 3 of 4 objects (more than half of the inventory): ConfigMap/ns/c0"},
		{name: "everything", inv: 1, stale: 1, refused: "all of the inventory"},
		{name: "everything of many", inv: 10, stale: 10, refused: "prune 10 of 10"},
		{name: "limit allows", inv: 4, stale: 4, limit: limit(4)},
		{name: "limit refuses", inv: 10, stale: 3, limit: limit(2), refused: "spec.pruneLimit (2)"},
		{name: "limit 0 refuses any prune", inv: 10, stale: 1, limit: limit(0), refused: "spec.pruneLimit (0)"},
		{name: "allow-mass-prune", inv: 4, stale: 4, allow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := refs(tc.inv)
			err := CheckPrune(inv, inv[:tc.stale], tc.limit, tc.allow)
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
				return
			}
			var mp *MassPruneError
			if !errors.As(err, &mp) || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "--allow-mass-prune") {
				t.Fatalf("want a refusal containing %q, got %v", tc.refused, err)
			}
		})
	}
}
