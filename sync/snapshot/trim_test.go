package snapshot

import (
	"fmt"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// history builds Snapshots newest first from results: S succeeded, F failed.
func history(results string) []metav1.PartialObjectMetadata {
	out := make([]metav1.PartialObjectMetadata, len(results))
	for i, r := range results {
		res := v1alpha1.SnapshotFailed
		if r == 'S' {
			res = v1alpha1.SnapshotSucceeded
		}
		out[i].Name = fmt.Sprintf("s-%02d", len(results)-i)
		out[i].Labels = map[string]string{LabelResult: res}
	}
	return out
}

func TestDoomedKeepsHistoryAndTheNewestSuccesses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results string // newest first
		keep    int
		want    []int
	}{
		{"within history", "FSF", 5, nil},
		{"oldest beyond history go", "SSSSS", 2, []int{3, 4}},
		{"failures never push out the newest three successes", "FFFFFFFFFFSSSS", 5, []int{5, 6, 7, 8, 9, 13}},
		{"fewer successes than three are all kept", "FFFFFFS", 2, []int{2, 3, 4, 5}},
		{"history 1", "SFS", 1, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Doomed(history(tc.results), tc.keep); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Doomed(%s, %d) = %v, want %v", tc.results, tc.keep, got, tc.want)
			}
		})
	}
}
