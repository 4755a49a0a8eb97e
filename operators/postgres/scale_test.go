package postgres

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// readyVolumes creates filled claims for instances 1..n, as after their
// init and join Jobs.
func readyVolumes(t *testing.T, pg *v1alpha1.Postgres, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		pvc := PVC(pg, InstanceName(pg.Name, i), i)
		pvc.Annotations[AnnotationPVCStatus] = pvcReady
		if err := env.Client.Create(context.Background(), pvc); err != nil {
			t.Fatal(err)
		}
	}
}

func liveVolumes(t *testing.T, ns string) map[string]bool {
	t.Helper()
	var l corev1.PersistentVolumeClaimList
	if err := env.Client.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range l.Items {
		if p.DeletionTimestamp.IsZero() {
			out[p.Name] = true
		}
	}
	return out
}

func TestScaleDownRemovesTheNewestReplicaNeverThePrimary(t *testing.T) {
	for _, tc := range []struct {
		primary string
		gone    string
	}{
		{"db-1", "db-3"},
		{"db-3", "db-2"},
	} {
		t.Run("primary "+tc.primary, func(t *testing.T) {
			ns := newNamespace(t)
			pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) { pg.Spec.Instances = 2 })
			readyVolumes(t, pg, 3)
			cur := get(t, &v1alpha1.Postgres{}, ns, "db")
			cur.Status.Primary = tc.primary
			if err := env.Client.Status().Update(context.Background(), cur); err != nil {
				t.Fatal(err)
			}
			r := newReconciler()
			if _, err := reconcileOnce(t, r, pg); err != nil {
				t.Fatal(err)
			}
			live := liveVolumes(t, ns)
			if live[tc.gone] || !live[tc.primary] || len(live) != 2 {
				t.Errorf("volumes after scaling to 2 = %v; want %s removed and primary %s kept", live, tc.gone, tc.primary)
			}
			got := get(t, &v1alpha1.Postgres{}, ns, "db")
			if got.Status.Phase != PhaseScalingDown {
				t.Errorf("phase = %q", got.Status.Phase)
			}
			// The primary's pod exists; the removed replica's does not.
			var pods corev1.PodList
			_ = env.Client.List(context.Background(), &pods, client.InNamespace(ns))
			for _, p := range pods.Items {
				if p.Name == tc.gone && p.DeletionTimestamp.IsZero() {
					t.Errorf("pod %s survived scaling down", p.Name)
				}
			}
		})
	}
}

func TestScaleUpWaitsForAPrimaryBeforeCloning(t *testing.T) {
	ns := newNamespace(t)
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) { pg.Spec.Instances = 3 })
	readyVolumes(t, pg, 1)
	cur := get(t, &v1alpha1.Postgres{}, ns, "db")
	cur.Status.Primary = "db-1"
	if err := env.Client.Status().Update(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	if _, err := reconcileOnce(t, newReconciler(), pg); err != nil {
		t.Fatal(err)
	}
	// No instance answers in this test: no replica may be cloned yet.
	if live := liveVolumes(t, ns); len(live) != 1 {
		t.Errorf("volumes = %v; a replica was started without a reachable primary", live)
	}
	got := get(t, &v1alpha1.Postgres{}, ns, "db")
	if got.Status.Phase != PhaseCreatingReplica {
		t.Errorf("phase = %q, want %s", got.Status.Phase, PhaseCreatingReplica)
	}
	get(t, &corev1.Pod{}, ns, "db-1") // the primary's pod was created
}
