package postgres

import (
	"errors"
	"net"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"homeostat.dev/homeostat/operators/instance"
)

// An API server that answers with a refusal is reachable (no partition,
// no fencing) but says nothing about roles; one that does not answer, or
// is overloaded, is not reachable.
func TestRefusedTellsAnAnswerFromNoAnswer(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	for name, tc := range map[string]struct {
		err     error
		refused bool
	}{
		"forbidden":           {apierrors.NewForbidden(pods, "db-1", errors.New("no RBAC")), true},
		"not found":           {apierrors.NewNotFound(pods, "db-1"), true},
		"connection refused":  {&net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		"server timeout":      {apierrors.NewServerTimeout(pods, "patch", 1), false},
		"service unavailable": {apierrors.NewServiceUnavailable("overloaded"), false},
		"none":                {nil, false},
	} {
		if got := errors.Is(refused(tc.err), instance.ErrRefused); got != tc.refused {
			t.Errorf("%s: refused = %v, want %v", name, got, tc.refused)
		}
	}
}
