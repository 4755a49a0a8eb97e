package instance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ExitFenced is instance run's exit code after it shut an isolated (or
// deposed) primary down.
const ExitFenced = 4

// watchIsolation runs beside a server that may be a primary, and returns
// (with the reason on fence) once that primary must stop taking writes:
//   - the authority names another instance as primary (a failover happened
//     while this one was cut off, and it is back), or
//   - it has reached neither the API server nor any streaming replica for
//     longer than Membership.FenceAfter.
//
// While the server answers locally as a primary and reaches the API server,
// it renews its heartbeat there: the operator fails over only once the
// heartbeat has been silent for longer than the fencing bound (plus two
// check intervals), by which time this loop has shut the server down. A
// replica's instance manager only watches; it takes no part.
func watchIsolation(ctx context.Context, opts RunOptions, log *slog.Logger, fence chan<- string) {
	m := opts.Membership
	if m.Authority == nil || m.FenceAfter <= 0 {
		return
	}
	interval := CheckInterval(m.FenceAfter)
	var db *sql.DB
	defer func() {
		if db != nil {
			_ = db.Close()
		}
	}()
	lastAPI, lastPeer := time.Now(), time.Now()
	for sleep(ctx, interval) {
		if db == nil {
			var err error
			if db, err = Connect(opts.PGData, opts.Superuser); err != nil {
				continue // not started yet
			}
			db.SetMaxOpenConns(1)
		}
		now := time.Now()
		primary, peers, err := localRole(ctx, db, m.FenceAfter/2)
		if err != nil || !primary {
			// Not (yet) a primary, or not answering: nothing to fence,
			// and no heartbeat, so the operator does not count on it.
			lastAPI, lastPeer = now, now
			continue
		}
		if peers > 0 {
			lastPeer = now
		}
		if chosen, ok := heartbeat(ctx, m, max(interval, 2*time.Second)); ok {
			lastAPI = now
			if chosen != "" && chosen != m.Name {
				fence <- fmt.Sprintf("the operator made %s the primary", chosen)
				return
			}
		}
		if now.Sub(lastAPI) > m.FenceAfter && now.Sub(lastPeer) > m.FenceAfter {
			fence <- fmt.Sprintf("isolated: no API server since %s and no streaming replica since %s (bound %s)",
				lastAPI.Format(time.RFC3339), lastPeer.Format(time.RFC3339), m.FenceAfter)
			return
		}
		log.Debug("primary not isolated", "api", lastAPI, "peer", lastPeer)
	}
}

// CheckInterval is how often an instance manager checks for isolation and
// renews its heartbeat, for a fencing bound: five checks a bound.
func CheckInterval(fenceAfter time.Duration) time.Duration {
	return max(fenceAfter/5, 200*time.Millisecond)
}

// heartbeat renews the primary's heartbeat and asks who the primary is.
func heartbeat(ctx context.Context, m Membership, timeout time.Duration) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// An API server that answers, even with a refusal, is reachable.
	if err := m.Authority.Heartbeat(ctx); err != nil && !errors.Is(err, ErrRefused) {
		return "", false
	}
	p, err := m.Authority.Primary(ctx)
	if errors.Is(err, ErrRefused) {
		return "", true
	}
	return p, err == nil
}

// localRole asks the local server whether it is a primary and how many
// replicas stream from it with a reply within fresh.
func localRole(ctx context.Context, db *sql.DB, fresh time.Duration) (primary bool, peers int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = db.QueryRowContext(ctx, `SELECT NOT pg_is_in_recovery(), (SELECT count(*) FROM pg_stat_replication
		WHERE state = 'streaming' AND reply_time > now() - make_interval(secs => $1))`, fresh.Seconds()).Scan(&primary, &peers)
	return primary, peers, err
}
