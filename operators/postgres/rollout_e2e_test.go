package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// replacement is one instance's pod replaced during a rolling update: when
// its old pod began to go, and when its new one was ready.
type replacement struct {
	name          string
	stopped, back time.Time
}

// podWatch follows a cluster's pods while a rolling update runs and
// records each replacement, in order.
type podWatch struct {
	s      *story
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	uids map[string]types.UID
	reps []*replacement
}

func (s *story) watchPods(cluster string) *podWatch {
	ctx, cancel := context.WithCancel(s.ctx)
	w := &podWatch{s: s, cancel: cancel, done: make(chan struct{}), uids: map[string]types.UID{}}
	for _, p := range s.pods(cluster) {
		w.uids[p.Name] = p.UID
	}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			w.look(s.pods(cluster))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return w
}

// look notes pods that began to go (deleted, or gone) and new ones ready.
func (w *podWatch) look(pods map[string]corev1.Pod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	for name, uid := range w.uids {
		p, ok := pods[name]
		if ok && p.UID == uid && p.DeletionTimestamp.IsZero() {
			continue
		}
		if r := w.open(name); r == nil {
			w.reps = append(w.reps, &replacement{name: name, stopped: now})
		}
		if ok && p.UID != uid && podReady(&p) {
			w.open(name).back = now
			w.uids[name] = p.UID
		}
	}
}

// open is the replacement of name still waiting for its new pod.
func (w *podWatch) open(name string) *replacement {
	for _, r := range w.reps {
		if r.name == name && r.back.IsZero() {
			return r
		}
	}
	return nil
}

// stop ends the watch after a last look: the rollout may have ended (the
// last pod ready) since the previous one.
func (w *podWatch) stop(cluster string) []replacement {
	w.cancel()
	<-w.done
	w.look(w.s.pods(cluster))
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]replacement, len(w.reps))
	for i, r := range w.reps {
		out[i] = *r
	}
	return out
}

// pods are a cluster's instance pods (not its Jobs') by name.
func (s *story) pods(cluster string) map[string]corev1.Pod {
	var l corev1.PodList
	if err := env.Client.List(s.ctx, &l, client.InNamespace(s.ns), client.MatchingLabels{LabelCluster: cluster}); err != nil {
		return nil
	}
	out := map[string]corev1.Pod{}
	for _, p := range l.Items {
		if p.Labels[LabelJob] == "" {
			out[p.Name] = p
		}
	}
	return out
}

// patchSpec merges spec into the Postgres, as a commit would change it.
func (s *story) patchSpec(cluster string, spec map[string]any) {
	s.t.Helper()
	b, _ := json.Marshal(map[string]any{"spec": spec})
	pg := &v1alpha1.Postgres{}
	pg.Name, pg.Namespace = cluster, s.ns
	if err := env.Client.Patch(s.ctx, pg, client.RawPatch(types.MergePatchType, b)); err != nil {
		s.t.Fatal(err)
	}
}

// current is true when every instance is Ready and runs the current spec:
// the pod's hash is the spec's, and no instance is reported outdated.
func (s *story) current(cluster string) (bool, string) {
	p := s.postgres(cluster)
	want := SpecHash(p, Options{HomeostatImage: testHomeostatImage})
	if !meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.ConditionReady) || p.Status.ObservedGeneration != p.Generation {
		return false, fmt.Sprintf("phase %s, instances %+v", p.Status.Phase, p.Status.Instances)
	}
	pods := s.pods(cluster)
	if len(pods) != int(p.Spec.Instances) {
		return false, fmt.Sprintf("%d pods", len(pods))
	}
	for _, pod := range pods {
		if pod.Annotations[AnnotationSpecHash] != want || pod.Spec.Containers[0].Image != Image(p) {
			return false, fmt.Sprintf("pod %s: hash %s (want %s), image %s", pod.Name, pod.Annotations[AnnotationSpecHash], want, pod.Spec.Containers[0].Image)
		}
	}
	for _, in := range p.Status.Instances {
		if in.Outdated != "" {
			return false, fmt.Sprintf("%s outdated: %s", in.Name, in.Outdated)
		}
	}
	return true, ""
}

// currentAndServing is current, with every pod ready too (the kubelet's
// probe, which the Services follow, may lag behind the operator's SQL).
func (s *story) currentAndServing(cluster string) (bool, string) {
	if ok, why := s.current(cluster); !ok {
		return false, why
	}
	for _, pod := range s.pods(cluster) {
		if !podReady(&pod) {
			return false, "pod " + pod.Name + " not ready"
		}
	}
	return true, ""
}

// checkOrder fails unless every instance was replaced exactly once, the
// replicas one at a time (each ready again before the next went), and
// the old primary last.
func checkOrder(t testing.TB, reps []replacement, members []string, primary string) {
	t.Helper()
	checkOneAtATime(t, reps, members)
	if last := reps[len(reps)-1].name; last != primary {
		t.Errorf("replaced last: %s, want the old primary %s (order %+v)", last, primary, reps)
	}
}

// checkOneAtATime fails unless every instance was replaced exactly once,
// each ready again before the next went.
func checkOneAtATime(t testing.TB, reps []replacement, members []string) {
	t.Helper()
	if len(reps) != len(members) {
		t.Fatalf("replacements %+v, want one for each of %v", reps, members)
	}
	seen := map[string]bool{}
	for i, r := range reps {
		if seen[r.name] || r.back.IsZero() {
			t.Errorf("replacement %d of %s: twice, or its new pod never ready (%+v)", i, r.name, reps)
		}
		seen[r.name] = true
		if i > 0 && r.stopped.Before(reps[i-1].back) {
			t.Errorf("%s went at %s, before %s was back at %s: not one at a time",
				r.name, r.stopped.Format(time.StampMilli), reps[i-1].name, reps[i-1].back.Format(time.StampMilli))
		}
	}
}

// rollImageUnderLoad changes the image (a new minor version) while load
// writes: every pod is replaced, replicas one at a time, the primary last
// after a switchover to an updated replica, and writes pause only for the
// switchover.
func (s *story) rollImageUnderLoad(cluster string, load *writeLoad) {
	t := s.t
	pg := s.postgres(cluster)
	primary := pg.Status.Primary
	members := readyNames(pg)
	w := s.watchPods(cluster)
	start := time.Now()
	s.patchSpec(cluster, map[string]any{"image": "postgres:16.1"})
	s.eventually(cluster+" rolled to postgres:16.1", 4*time.Minute, func() (bool, string) { return s.currentAndServing(cluster) })
	end := time.Now()
	reps := w.stop(cluster)
	checkOrder(t, reps, members, primary)
	if p := s.postgres(cluster); p.Status.Primary == primary {
		t.Errorf("primary still %s: no switchover", primary)
	}
	pause := load.longestPause(start, end)
	t.Logf("FACT rolling update of %d instances (image): %s, writes paused at most %s, order %v", len(members),
		end.Sub(start).Round(100*time.Millisecond), pause.Round(100*time.Millisecond), names(reps))
	if pause > slack*promiseSwitchPause {
		t.Errorf("writes paused %s during the rolling update, promised < %s (the switchover)", pause, promiseSwitchPause)
	}
}

// rollSupervised changes settings that need a restart (one of them
// max_connections, raised: the usual order) with primaryUpdateStrategy
// supervised: the replicas are restarted with it,
// then the update waits, saying so, with the outdated primary untouched,
// until `homeostat pg switchover`.
func (s *story) rollSupervised(cluster string) {
	t := s.t
	pg := s.postgres(cluster)
	primary := pg.Status.Primary
	primaryUID := s.pods(cluster)[primary].UID
	s.patchSpec(cluster, map[string]any{"primaryUpdateStrategy": "supervised", "parameters": map[string]string{"shared_buffers": "64MB", "max_connections": "120"}})
	s.eventually(cluster+" waiting for a switchover", 3*time.Minute, func() (bool, string) {
		p := s.postgres(cluster)
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		ok := p.Status.Phase == PhaseWaitingForSwitchover && c != nil && c.Status == "False" &&
			strings.Contains(c.Message, "homeostat pg switchover "+cluster)
		return ok, fmt.Sprintf("phase %s, ready %+v, instances %+v", p.Status.Phase, c, p.Status.Instances)
	})
	// It waits: the primary keeps its pod and its role.
	time.Sleep(3 * time.Second)
	p := s.postgres(cluster)
	if p.Status.Primary != primary || s.pods(cluster)[primary].UID != primaryUID || p.Status.Phase != PhaseWaitingForSwitchover {
		t.Fatalf("supervised update did not wait: primary %s (was %s), phase %s", p.Status.Primary, primary, p.Status.Phase)
	}
	for _, in := range p.Status.Instances {
		if (in.Outdated != "") != (in.Name == primary) {
			t.Errorf("instance %s outdated %q; only the primary %s should be", in.Name, in.Outdated, primary)
		}
	}
	out := s.homeostat("pg", "status", cluster, "-n", s.ns)
	if !strings.Contains(out, "Outdated: "+primary+" (pod template)") || !strings.Contains(out, "homeostat pg switchover") {
		t.Errorf("pg status does not show the waiting rolling update:\n%s", out)
	}
	s.homeostat("pg", "switchover", cluster, "-n", s.ns)
	s.eventually(cluster+" rolled after the switchover", 3*time.Minute, func() (bool, string) { return s.currentAndServing(cluster) })
	if p := s.postgres(cluster); p.Status.Primary == primary {
		t.Errorf("primary still %s after the switchover", primary)
	}
	s.settingEverywhere(cluster, "shared_buffers", "64MB")
	s.settingEverywhere(cluster, "max_connections", "120")
}

// lowerHotStandby lowers max_connections (from 120 to the default 100, by
// removing it from spec.parameters: the operator resets it), which a
// standby needs at least as high as its primary's: the primary is restarted first, in place, with
// PrimaryAvailable saying PlannedRestart and no failover (failoverDelay is
// 2s here), then the replicas one at a time; every instance ends at the
// new value, and the load goes on (its writes are verified at the end).
// primaryUpdateStrategy is still supervised: an in-place restart is not a
// switchover and does not wait for one.
func (s *story) lowerHotStandby(cluster string, load *writeLoad) {
	t := s.t
	pg := s.postgres(cluster)
	primary := pg.Status.Primary
	members := readyNames(pg)
	w := s.watchPods(cluster)
	start := time.Now()
	s.patchSpec(cluster, map[string]any{"parameters": map[string]any{"max_connections": nil}})
	planned := false
	s.eventually(cluster+" rolled to max_connections 100", 4*time.Minute, func() (bool, string) {
		p := s.postgres(cluster)
		if c := meta.FindStatusCondition(p.Status.Conditions, ConditionPrimaryAvailable); c != nil && c.Reason == ReasonPlannedRestart {
			planned = true
		}
		return s.currentAndServing(cluster)
	})
	end := time.Now()
	reps := w.stop(cluster)
	checkOneAtATime(t, reps, members)
	if reps[0].name != primary {
		t.Errorf("replaced first: %s, want the primary %s (order %v)", reps[0].name, primary, names(reps))
	}
	if p := s.postgres(cluster); p.Status.Primary != primary {
		t.Errorf("primary %s, want %s: a failover or switchover happened during the planned restart", p.Status.Primary, primary)
	}
	if !planned {
		t.Errorf("PrimaryAvailable never said %s during the primary's restart", ReasonPlannedRestart)
	}
	s.settingEverywhere(cluster, "max_connections", "100")
	t.Logf("FACT lowering max_connections on %d instances: %s, order %v, writes paused at most %s (the primary's restart)", len(members),
		end.Sub(start).Round(100*time.Millisecond), names(reps), load.longestPause(start, end).Round(100*time.Millisecond))
}

// settingEverywhere checks a setting's running value on every instance.
func (s *story) settingEverywhere(cluster, name, want string) {
	s.t.Helper()
	for inst := range s.pods(cluster) {
		addr, err := s.kube.Resolve(s.ctx, s.ns, inst)
		if err != nil {
			s.t.Fatal(err)
		}
		db, err := pgConn(addr, s.superLogin(cluster))
		if err != nil {
			s.t.Fatal(err)
		}
		var got string
		err = db.QueryRowContext(s.ctx, "SHOW "+name).Scan(&got)
		db.Close()
		if err != nil || got != want {
			s.t.Errorf("%s on %s = %q (%v), want %q", name, inst, got, err, want)
		}
	}
}

func readyNames(pg *v1alpha1.Postgres) []string {
	var out []string
	for _, in := range pg.Status.Instances {
		out = append(out, in.Name)
	}
	return out
}

func names(reps []replacement) []string {
	var out []string
	for _, r := range reps {
		out = append(out, r.name)
	}
	return out
}

// A single instance has no replica to switch over to: a setting that needs
// a restart restarts its pod in place, on its own volume, and its data and
// status.primary stay.
func TestSingleInstanceRollsByRestartOnItsVolume(t *testing.T) {
	s := startStory(t)
	pg := &v1alpha1.Postgres{
		ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: s.ns},
		Spec:       v1alpha1.PostgresSpec{Version: "16", Instances: 1, Storage: v1alpha1.Storage{Size: "1Gi"}, Database: "shop"},
	}
	if err := env.Client.Create(s.ctx, pg); err != nil {
		t.Fatal(err)
	}
	s.waitReady("solo", 1)
	// NAME-rw follows the pod's readiness probe, which may lag.
	s.eventually("solo serving", time.Minute, func() (bool, string) { return s.currentAndServing("solo") })
	volumes := s.volumeUIDs("solo")
	rw := s.db("solo", RWService("solo"))
	if _, err := rw.ExecContext(s.ctx, `CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	w := s.watchPods("solo")
	s.patchSpec("solo", map[string]any{"parameters": map[string]string{"max_connections": "120"}})
	s.eventually("solo restarted with max_connections 120", 3*time.Minute, func() (bool, string) { return s.currentAndServing("solo") })
	checkOrder(t, w.stop("solo"), []string{"solo-1"}, "solo-1")
	s.settingEverywhere("solo", "max_connections", "120")
	if p := s.postgres("solo"); p.Status.Primary != "solo-1" {
		t.Errorf("primary %s, want solo-1", p.Status.Primary)
	}
	if now := s.volumeUIDs("solo"); fmt.Sprint(now) != fmt.Sprint(volumes) {
		t.Errorf("volume replaced: before %v, after %v", volumes, now)
	}
	db := s.db("solo", RWService("solo"))
	s.eventually("the row written before the restart", time.Minute, func() (bool, string) {
		var n int
		err := db.QueryRowContext(s.ctx, `SELECT count(*) FROM kept`).Scan(&n)
		return err == nil && n == 1, fmt.Sprintf("%d rows, %v", n, err)
	})
}

// refuseOtherMajor makes the first replica the rolling update replaces
// hold data of another major version than its binaries (its PG_VERSION
// says 16; the binaries are 15): as an image of the wrong major would. Its
// new pod refuses to start, the Postgres says ImageVersionMismatch naming
// the image and both majors, and the update goes no further: the other
// pods keep theirs. Setting the image back replaces the refused pod and
// the cluster is whole again, with the same primary.
func (s *story) refuseOtherMajor(cluster string) {
	t := s.t
	pg := s.postgres(cluster)
	primary, oldImage := pg.Status.Primary, Image(pg)
	first := ""
	for _, m := range readyNames(pg) {
		if m != primary && first == "" {
			first = m
		}
	}
	version := filepath.Join(s.dir, "kubelet", "volumes", "claims", s.ns+"_"+first, "pgdata", "PG_VERSION")
	orig, err := os.ReadFile(version)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(version, []byte("16\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := s.pods(cluster)
	start := time.Now()
	s.patchSpec(cluster, map[string]any{"image": "postgres:16.2"})
	want := []string{first, "postgres:16.2", "binaries are PostgreSQL 15", "data directory is PostgreSQL 16"}
	s.eventually(cluster+" refuses the image", 2*time.Minute, func() (bool, string) {
		p := s.postgres(cluster)
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil {
			return false, "no Ready condition"
		}
		ok := p.Status.Phase == ReasonImageVersionMismatch && c.Status == metav1.ConditionFalse && c.Reason == ReasonImageVersionMismatch
		for _, w := range want {
			ok = ok && strings.Contains(c.Message, w)
		}
		return ok, fmt.Sprintf("phase %s, ready %+v", p.Status.Phase, c)
	})
	refused := time.Since(start)
	// It stays there: no other pod is replaced.
	time.Sleep(3 * time.Second)
	for name, pod := range s.pods(cluster) {
		if name != first && pod.UID != before[name].UID {
			t.Errorf("%s was replaced after %s refused the image", name, first)
		}
	}
	if p := s.postgres(cluster); p.Status.Phase != ReasonImageVersionMismatch || p.Status.Primary != primary {
		t.Errorf("phase %s, primary %s (was %s): the update went on", p.Status.Phase, p.Status.Primary, primary)
	}
	if err := os.WriteFile(version, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	s.patchSpec(cluster, map[string]any{"image": oldImage})
	fixed := time.Now()
	s.eventually(cluster+" whole again on "+oldImage, 3*time.Minute, func() (bool, string) { return s.currentAndServing(cluster) })
	if p := s.postgres(cluster); p.Status.Primary != primary {
		t.Errorf("primary %s, want %s", p.Status.Primary, primary)
	}
	t.Logf("FACT image refused by %s's data directory: ImageVersionMismatch after %s; whole again %s after the image was set back",
		first, refused.Round(100*time.Millisecond), time.Since(fixed).Round(100*time.Millisecond))
}
