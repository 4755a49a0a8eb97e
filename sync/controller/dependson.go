package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// ReasonDependencyNotReady marks a Sync waiting for the Syncs in its
// spec.dependsOn, or refusing a cycle among them.
const ReasonDependencyNotReady = "DependencyNotReady"

// dependencyRetry is how soon a Sync waiting for a dependency looks again.
const dependencyRetry = 10 * time.Second

// cycleError is a dependsOn cycle: it needs a person, not a retry.
type cycleError struct{ path []string }

func (e cycleError) Error() string { return "dependency cycle: " + strings.Join(e.path, " -> ") }

// checkDependencies returns nil when every Sync in s's spec.dependsOn is
// Ready at its latest revision: Ready is True for its current generation,
// and the last revision it fetched is the one it applied. Otherwise the
// error names the first that is not, or the cycle s is part of.
func checkDependencies(ctx context.Context, c client.Reader, s *v1alpha1.Sync) error {
	if len(s.Spec.DependsOn) == 0 {
		return nil
	}
	if path, err := findCycle(ctx, c, s); err != nil || path != nil {
		if err != nil {
			return err
		}
		return cycleError{path: path}
	}
	for _, d := range s.Spec.DependsOn {
		key := dependencyKey(s, d)
		dep := &v1alpha1.Sync{}
		if err := c.Get(ctx, key, dep); err != nil {
			return fmt.Errorf("dependency %s: %w", key, err)
		}
		if why := notReady(dep); why != "" {
			return fmt.Errorf("dependency %s is not ready: %s", key, why)
		}
	}
	return nil
}

func dependencyKey(s *v1alpha1.Sync, d v1alpha1.SyncReference) client.ObjectKey {
	ns := d.Namespace
	if ns == "" {
		ns = s.Namespace
	}
	return client.ObjectKey{Namespace: ns, Name: d.Name}
}

// notReady says why a dependency is not Ready at its latest revision ("" when it is).
func notReady(dep *v1alpha1.Sync) string {
	ready := apimeta.FindStatusCondition(dep.Status.Conditions, v1alpha1.ConditionReady)
	switch {
	case ready == nil || ready.Status != metav1.ConditionTrue:
		if ready != nil {
			return ready.Reason
		}
		return "not synced yet"
	case dep.Status.ObservedGeneration != dep.Generation || ready.ObservedGeneration != dep.Generation:
		return "its spec changed since its last sync"
	case dep.Status.LastAppliedRevision != dep.Status.LastAttemptedRevision:
		return "revision " + dep.Status.LastAttemptedRevision + " is not applied yet"
	}
	return ""
}

// findCycle walks dependsOn from s and returns the path of a cycle that
// starts and ends at s, or nil. Missing Syncs end a path (they are waited
// for, not a cycle).
func findCycle(ctx context.Context, c client.Reader, s *v1alpha1.Sync) ([]string, error) {
	start := client.ObjectKeyFromObject(s)
	done := map[client.ObjectKey]bool{}
	var visit func(cur *v1alpha1.Sync, path []string) ([]string, error)
	visit = func(cur *v1alpha1.Sync, path []string) ([]string, error) {
		for _, d := range cur.Spec.DependsOn {
			key := dependencyKey(cur, d)
			if key == start {
				return append(path, key.String()), nil
			}
			if done[key] {
				continue
			}
			done[key] = true
			next := &v1alpha1.Sync{}
			if err := c.Get(ctx, key, next); err != nil {
				if client.IgnoreNotFound(err) == nil {
					continue
				}
				return nil, fmt.Errorf("dependency %s: %w", key, err)
			}
			if p, err := visit(next, append(path, key.String())); p != nil || err != nil {
				return p, err
			}
		}
		return nil, nil
	}
	return visit(s, []string{start.String()})
}

// SetDependencyNotReady records that s waits for (or cannot have) its
// dependencies; a cycle also marks it Stalled, since only an edit ends it.
func SetDependencyNotReady(s *v1alpha1.Sync, err error) {
	s.Status.ObservedGeneration = s.Generation
	setCondition(s, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonDependencyNotReady, err.Error())
	if errors.As(err, &cycleError{}) {
		setCondition(s, v1alpha1.ConditionStalled, metav1.ConditionTrue, ReasonDependencyNotReady, err.Error())
		return
	}
	apimeta.RemoveStatusCondition(&s.Status.Conditions, v1alpha1.ConditionStalled)
}
