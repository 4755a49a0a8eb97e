package sync

import (
	"errors"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// A discovery that could not read every API group leaves kinds unchecked:
// each unread group is named, so the Namespace is kept, not pruned blind.
func TestUndiscoveredGroupsCountAsForeign(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"all discovered", nil, nil},
		{"groups failed", &discovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{
			{Group: "metrics.k8s.io", Version: "v1beta1"}: errors.New("service unavailable"),
			{Group: "b.example.com", Version: "v1"}:       errors.New("timeout"),
		}}, []string{"b.example.com/v1 (cannot discover: timeout)", "metrics.k8s.io/v1beta1 (cannot discover: service unavailable)"}},
		{"other error", errors.New("connection reset"), []string{"some kinds (cannot discover: connection reset)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := undiscovered(tc.err); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("undiscovered(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
