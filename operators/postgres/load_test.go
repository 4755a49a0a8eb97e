package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// writeLoad is concurrent write traffic through NAME-rw, as applications
// make it: each writer inserts (writer, seq) rows one at a time and records
// the ones the server acknowledged. Every row also records the server's
// synchronous_standby_names at the moment it was written, so a test can
// prove none was acknowledged by an asynchronous primary.
type writeLoad struct {
	t      testing.TB
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	acked map[[2]int]bool
	// okAt are the times of acknowledged writes, to find pauses, and
	// okPort the port of the server that acknowledged each: which server
	// took it.
	okAt   []time.Time
	okPort []int
}

const loadTable = `CREATE TABLE IF NOT EXISTS load (writer int, seq int, ssn text NOT NULL DEFAULT current_setting('synchronous_standby_names'),
	at timestamptz DEFAULT clock_timestamp(), PRIMARY KEY (writer, seq))`

// startLoad starts n writers against Service svc of cluster.
func (s *story) startLoad(cluster string, n int) *writeLoad {
	s.t.Helper()
	var sec corev1.Secret
	if err := env.Client.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: SecretName(cluster, SecretApp)}, &sec); err != nil {
		s.t.Fatal(err)
	}
	addr, err := s.kube.Resolve(s.ctx, s.ns, RWService(cluster))
	if err != nil {
		s.t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	dsn := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s %s connect_timeout=3",
		host, port, sec.Data["username"], sec.Data["password"], sec.Data["dbname"], s.verifyFull(&sec))
	ctx, cancel := context.WithCancel(s.ctx)
	l := &writeLoad{t: s.t, cancel: cancel, acked: map[[2]int]bool{}}
	setup, err := sql.Open("postgres", dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	defer setup.Close()
	if _, err := setup.ExecContext(ctx, loadTable); err != nil {
		s.t.Fatal(err)
	}
	for w := 0; w < n; w++ {
		db, localOnly, err := carefulDB(dsn)
		if err != nil {
			s.t.Fatal(err)
		}
		l.wg.Add(1)
		go l.writer(ctx, db, localOnly, w)
	}
	s.t.Cleanup(l.stop)
	return l
}

func (l *writeLoad) writer(ctx context.Context, db *sql.DB, localOnly func() bool, w int) {
	defer l.wg.Done()
	defer db.Close()
	for seq := 0; ctx.Err() == nil; seq++ {
		localOnly()
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var port int
		err := db.QueryRowContext(qctx, `INSERT INTO load (writer, seq) VALUES ($1, $2) RETURNING inet_server_port()`, w, seq).Scan(&port)
		cancel()
		if err != nil || localOnly() {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		l.mu.Lock()
		l.acked[[2]int{w, seq}] = true
		l.okAt = append(l.okAt, time.Now())
		l.okPort = append(l.okPort, port)
		l.mu.Unlock()
	}
}

// carefulDB opens a one-connection pool that tells, through localOnly,
// whether the last commit came back with PostgreSQL's warning that the wait
// for its synchronous standby was canceled (the client gave up): such a
// commit is on this server only, and a careful client does not count it as
// acknowledged. Calling localOnly also resets it.
func carefulDB(dsn string) (*sql.DB, func() bool, error) {
	base, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, nil, err
	}
	var mu sync.Mutex
	warned := false
	db := sql.OpenDB(pq.ConnectorWithNoticeHandler(base, func(e *pq.Error) {
		if strings.Contains(e.Message, "synchronous replication") {
			mu.Lock()
			warned = true
			mu.Unlock()
		}
	}))
	db.SetMaxOpenConns(1)
	return db, func() bool {
		mu.Lock()
		defer mu.Unlock()
		w := warned
		warned = false
		return w
	}, nil
}

func (l *writeLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// firstWriteAfter is when the first write acknowledged after t by a server
// on another port than old was.
func (l *writeLoad) firstWriteAfter(t time.Time, old int) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, at := range l.okAt {
		if at.After(t) && l.okPort[i] != old {
			return at, true
		}
	}
	return time.Time{}, false
}

// longestPause is the longest time without an acknowledged write between
// from and to.
func (l *writeLoad) longestPause(from, to time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	times := []time.Time{from}
	for _, at := range l.okAt {
		if at.After(from) && at.Before(to) {
			times = append(times, at)
		}
	}
	times = append(times, to)
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	var longest time.Duration
	for i := 1; i < len(times); i++ {
		longest = max(longest, times[i].Sub(times[i-1]))
	}
	return longest
}

// verify checks, on the primary behind db, that every acknowledged write is
// there and that no row was written while synchronous_standby_names was
// empty.
func (l *writeLoad) verify(ctx context.Context, db *sql.DB) {
	l.t.Helper()
	rows, err := db.QueryContext(ctx, `SELECT writer, seq, ssn FROM load`)
	if err != nil {
		l.t.Fatal(err)
	}
	defer rows.Close()
	have := map[[2]int]bool{}
	async := 0
	for rows.Next() {
		var w, seq int
		var ssn string
		if err := rows.Scan(&w, &seq, &ssn); err != nil {
			l.t.Fatal(err)
		}
		have[[2]int{w, seq}] = true
		if ssn == "" {
			async++
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lost := 0
	for k := range l.acked {
		if !have[k] {
			lost++
		}
	}
	l.t.Logf("load: %d writes acknowledged, %d rows on the primary", len(l.acked), len(have))
	if lost > 0 {
		l.t.Errorf("%d acknowledged writes lost", lost)
	}
	if async > 0 {
		l.t.Errorf("%d rows written while synchronous_standby_names was empty", async)
	}
}
