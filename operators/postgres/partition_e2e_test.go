package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// TestPartitionedPrimaryFencesItself cuts the primary off (its postgres
// keeps running; it reaches neither the API server nor its peers, and
// Service traffic no longer reaches it) under write load, while clients on
// both sides probe every instance directly. The old primary shuts itself
// down within its bound and a replica is promoted only after that: at no
// moment do two servers accept writes, and every write acknowledged by
// either is on the surviving timeline. Healed, the old primary rejoins.
func TestPartitionedPrimaryFencesItself(t *testing.T) {
	s := startStory(t)
	pg := &v1alpha1.Postgres{
		ObjectMeta: metav1.ObjectMeta{Name: "split", Namespace: s.ns},
		Spec: v1alpha1.PostgresSpec{Version: "16", Instances: 3, Synchronous: 1, Storage: v1alpha1.Storage{Size: "1Gi"}, Database: "shop",
			FailoverDelay: &metav1.Duration{Duration: 3 * time.Second}},
	}
	if err := env.Client.Create(s.ctx, pg); err != nil {
		t.Fatal(err)
	}
	s.waitWhole("split", 3, 4*time.Minute)
	volumes := s.volumeUIDs("split")
	load := s.startLoad("split", 8)
	probes := s.startProbes("split")
	time.Sleep(2 * time.Second)

	old := s.postgres("split").Status.Primary
	cut := time.Now()
	s.kube.Partition(s.ns, old)
	s.eventually("a replica promoted", 2*time.Minute, func() (bool, string) {
		p := s.postgres("split")
		return p.Status.Primary != old, fmt.Sprintf("primary %s, phase %s", p.Status.Primary, p.Status.Phase)
	})
	promoted := time.Now()
	time.Sleep(5 * time.Second)
	t.Logf("FACT partition of %s: a replica promoted %s after the cut", old, promoted.Sub(cut).Round(100*time.Millisecond))
	s.kube.Heal(s.ns, old)
	s.waitWhole("split", 3, 2*time.Minute)
	t.Logf("FACT partition of %s: whole %s after the cut (healed after %s)", old, time.Since(cut).Round(100*time.Millisecond), promoted.Sub(cut).Round(100*time.Millisecond)+5*time.Second)
	probes.stop()
	load.stop()
	probes.checkOneWriterAtATime()
	db := s.db("split", RWService("split"))
	load.verify(s.ctx, db)
	probes.verify(s.ctx, db)
	if now := s.volumeUIDs("split"); fmt.Sprint(now) != fmt.Sprint(volumes) {
		t.Errorf("volumes changed (an instance was cloned again): before %v, after %v", volumes, now)
	}
}

// probes write to every instance directly, as clients on every side of a
// partition would, and record which server acknowledged what, when.
type probes struct {
	t      testing.TB
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// acked are the acknowledged probe ids with the instance and the time
	// window [sent, acknowledged] of each.
	acked []probeAck
}

type probeAck struct {
	id         int
	instance   string
	sent, done time.Time
}

func (s *story) startProbes(cluster string) *probes {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.ctx)
	p := &probes{t: s.t, cancel: cancel}
	if _, err := s.db(cluster, RWService(cluster)).ExecContext(ctx, `CREATE TABLE probe (id int PRIMARY KEY, instance text)`); err != nil {
		s.t.Fatal(err)
	}
	for i, in := range s.postgres(cluster).Status.Instances {
		p.wg.Add(1)
		go p.probe(ctx, s.directDSN(cluster, in.Name), in.Name, i)
	}
	s.t.Cleanup(p.stop)
	return p
}

// directDSN is how the app role connects to an instance's server
// directly, bypassing Services and partitions.
func (s *story) directDSN(cluster, instance string) string {
	s.t.Helper()
	var sec corev1.Secret
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: SecretName(cluster, SecretApp)}, &sec); err != nil {
		s.t.Fatal(err)
	}
	addr, err := s.kube.DirectAddr(s.ns, instance)
	if err != nil {
		s.t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s %s connect_timeout=2",
		host, port, sec.Data["username"], sec.Data["password"], sec.Data["dbname"], s.verifyFull(&sec))
}

// probe writes to one server as a careful client does: a commit that
// comes back with PostgreSQL's warning that the wait for the synchronous
// standby was canceled (the probe gave up after a second) committed
// locally only, and is not counted as acknowledged.
func (p *probes) probe(ctx context.Context, dsn, instance string, k int) {
	defer p.wg.Done()
	db, localOnly, err := carefulDB(dsn)
	if err != nil {
		p.t.Error(err)
		return
	}
	defer db.Close()
	for n := 0; ctx.Err() == nil; n++ {
		id := k*1_000_000 + n
		sent := time.Now()
		localOnly()
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := db.ExecContext(qctx, `INSERT INTO probe (id, instance) VALUES ($1, $2)`, id, instance)
		cancel()
		if err == nil && !localOnly() {
			p.mu.Lock()
			p.acked = append(p.acked, probeAck{id: id, instance: instance, sent: sent, done: time.Now()})
			p.mu.Unlock()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *probes) stop() {
	p.cancel()
	p.wg.Wait()
}

// checkOneWriterAtATime fails when two servers acknowledged writes whose
// windows overlap, or when a server acknowledged writes after another one
// had started to: ownership of writes moves once, from the old primary to
// the new one.
func (p *probes) checkOneWriterAtATime() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	last, first := map[string]time.Time{}, map[string]time.Time{}
	for _, a := range p.acked {
		if f, ok := first[a.instance]; !ok || a.sent.Before(f) {
			first[a.instance] = a.sent
		}
		if a.done.After(last[a.instance]) {
			last[a.instance] = a.done
		}
	}
	for a := range first {
		for b := range first {
			if a != b && first[a].Before(first[b]) && last[a].After(first[b]) {
				p.t.Errorf("%s acknowledged writes until %s, after %s started to at %s", a, last[a].Format(time.StampMilli), b, first[b].Format(time.StampMilli))
			}
		}
	}
	p.t.Logf("probes: %d acknowledged; first/last per server: %v / %v", len(p.acked), first, last)
}

// verify checks that every acknowledged probe is on the primary behind db.
func (p *probes) verify(ctx context.Context, db *sql.DB) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	lost := 0
	for _, a := range p.acked {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM probe WHERE id = $1`, a.id).Scan(&n); err != nil {
			p.t.Fatal(err)
		}
		if n != 1 {
			lost++
		}
	}
	if lost > 0 {
		p.t.Errorf("%d acknowledged probe writes are not on the surviving timeline", lost)
	}
}
