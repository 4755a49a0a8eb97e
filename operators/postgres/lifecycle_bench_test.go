package postgres

import (
	"database/sql"
	"fmt"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// BenchmarkClusterLifecycle measures, with real PostgreSQL processes run by
// the kubelet harness, how long a three-instance cluster with synchronous
// replication takes from the Postgres object to Ready (bootstrap-s), and how
// long from the primary's process being killed to a write committed through
// NAME-rw on the promoted replica (failover-s, with failoverDelay 1s).
func BenchmarkClusterLifecycle(b *testing.B) {
	s := startStory(b)
	var boot, fail time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench%d", i)
		start := time.Now()
		pg := &v1alpha1.Postgres{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
			Spec: v1alpha1.PostgresSpec{Instances: 3, Synchronous: 1, Storage: v1alpha1.Storage{Size: "1Gi"}, Database: "shop",
				FailoverDelay: &metav1.Duration{Duration: time.Second}},
		}
		if err := env.Client.Create(s.ctx, pg); err != nil {
			b.Fatal(err)
		}
		pg = s.waitReady(name, 3)
		s.waitStreaming(name, 2)
		boot += time.Since(start)

		if err := s.kube.Kill(s.ns, pg.Status.Primary); err != nil {
			b.Fatal(err)
		}
		killed := time.Now()
		s.eventually("a write on the promoted replica", 3*time.Minute, func() (bool, string) {
			err := s.writeOnce(name)
			return err == nil, fmt.Sprint(err)
		})
		fail += time.Since(killed)
	}
	b.ReportMetric(boot.Seconds()/float64(b.N), "bootstrap-s")
	b.ReportMetric(fail.Seconds()/float64(b.N), "failover-s")
}

// writeOnce commits one row through NAME-rw on a fresh connection, as an
// application reconnecting after a failover would.
func (s *story) writeOnce(cluster string) error {
	var sec corev1.Secret
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: SecretName(cluster, SecretApp)}, &sec); err != nil {
		return err
	}
	addr, err := s.kube.Resolve(s.ctx, s.ns, RWService(cluster))
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(addr)
	db, err := sql.Open("postgres", fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s %s connect_timeout=2",
		host, port, sec.Data["username"], sec.Data["password"], sec.Data["dbname"], s.verifyFull(&sec)))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(s.ctx, `CREATE TABLE IF NOT EXISTS beats (at timestamptz DEFAULT now()); INSERT INTO beats DEFAULT VALUES`)
	return err
}
