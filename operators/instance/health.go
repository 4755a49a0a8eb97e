package instance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultMaxLag is how much WAL a streaming replica may have received
// notice of but not replayed and still be ready: 64 MiB, four WAL segments.
// Well past the jitter of a replica that keeps up (its replay trails the
// primary by a few hundred kilobytes under a steady load), while a replica
// that falls that far behind serves reads that are visibly stale and
// leaves the -ro Service until it catches up.
const DefaultMaxLag int64 = 64 << 20

// HealthOptions configure the health endpoint `instance run` serves.
type HealthOptions struct {
	// Addr is where GET /readyz answers (":8000" in a pod); empty: no
	// endpoint.
	Addr string
	// MaxLag bounds a ready replica's replay lag in bytes (see
	// DefaultMaxLag); 0 allows none.
	MaxLag int64
}

// Readiness is one verdict of the health endpoint.
type Readiness struct {
	Ready bool `json:"ready"`
	// Role is "primary" or "replica" ("" when the server does not answer).
	Role string `json:"role,omitempty"`
	// Reason says why, in words a human reads in `kubectl describe pod`.
	Reason string `json:"reason"`
}

// localState is what the server says of itself for a verdict.
type localState struct {
	inRecovery bool
	readOnly   bool
	// receiver is pg_stat_wal_receiver's status ("" without a receiver),
	// sender its upstream's host and port.
	receiver   string
	senderHost string
	senderPort int
	// lag is the WAL the sender reported having that is not replayed yet.
	lag int64
}

// judge is the readiness rule. A primary is ready when it accepts writes
// (out of recovery, not read-only) and the operator has not named another
// instance primary. A replica is ready when its WAL receiver streams from
// the address that leads to whoever the operator made primary (the -rw
// Service the instance manager pointed it at), the operator does not name
// this instance primary (a promotion is under way), and its replay is at
// most maxLag bytes behind what the primary has sent. primary is the
// operator's choice, "" when not known (no API server: the local facts
// decide alone).
func judge(s localState, m Membership, primary string, maxLag int64) Readiness {
	if !s.inRecovery {
		switch {
		case primary != "" && primary != m.Name:
			return Readiness{Role: "primary", Reason: fmt.Sprintf("deposed: the operator made %s the primary", primary)}
		case s.readOnly:
			return Readiness{Role: "primary", Reason: "read-only (default_transaction_read_only is on)"}
		}
		return Readiness{Ready: true, Role: "primary", Reason: "accepts writes"}
	}
	r := Readiness{Role: "replica"}
	up := m.Upstream
	switch {
	case primary != "" && primary == m.Name:
		r.Reason = "named primary, still in recovery: promotion under way"
	case s.receiver != "streaming":
		r.Reason = "not streaming from the primary (WAL receiver: " + nonEmpty(s.receiver, "none") + ")"
	case up.Host != "" && (s.senderHost != up.Host || s.senderPort != up.Port):
		r.Reason = fmt.Sprintf("streams from %s, not from the primary at %s",
			net.JoinHostPort(s.senderHost, strconv.Itoa(s.senderPort)), net.JoinHostPort(up.Host, strconv.Itoa(up.Port)))
	case s.lag > maxLag:
		r.Reason = fmt.Sprintf("replay lags %d bytes behind the primary (bound %d)", s.lag, maxLag)
	default:
		r.Ready, r.Reason = true, fmt.Sprintf("streams from the primary, replay lag %d bytes", s.lag)
	}
	return r
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// health serves the verdict over HTTP, reading the local server over its
// unix socket and the operator's choice of primary from the authority
// (refreshed in the background, so a slow API server never slows a probe).
type health struct {
	pgdata, superuser string
	member            Membership
	maxLag            int64
	log               *slog.Logger

	mu      sync.Mutex
	db      *sql.DB
	primary string
}

// check reads the local server and judges it.
func (h *health) check(ctx context.Context) Readiness {
	s, err := h.local(ctx)
	if err != nil {
		return Readiness{Reason: "server does not answer: " + err.Error()}
	}
	h.mu.Lock()
	primary := h.primary
	h.mu.Unlock()
	if disagrees(s, h.member.Name, primary) {
		// The role just changed (a promotion, a switchover): ask again
		// rather than judge by an answer from before it.
		primary = h.refreshPrimary(ctx)
	}
	return judge(s, h.member, primary, h.maxLag)
}

// disagrees: the server's role and the operator's last known choice do
// not fit together.
func disagrees(s localState, name, primary string) bool {
	if primary == "" {
		return false
	}
	return (!s.inRecovery && primary != name) || (s.inRecovery && primary == name)
}

// refreshPrimary asks the authority once and returns its answer (the last
// known one when it does not answer).
func (h *health) refreshPrimary(ctx context.Context) string {
	if h.member.Authority != nil {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		p, err := h.member.Authority.Primary(actx)
		cancel()
		if err == nil {
			h.mu.Lock()
			h.primary = p
			h.mu.Unlock()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.primary
}

func (h *health) local(ctx context.Context) (localState, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db == nil {
		db, err := Connect(h.pgdata, h.superuser)
		if err != nil {
			return localState{}, err
		}
		db.SetMaxOpenConns(1)
		h.db = db
	}
	var s localState
	var ro string
	err := h.db.QueryRowContext(ctx, `SELECT pg_is_in_recovery(), current_setting('transaction_read_only'),
		COALESCE(w.status, ''), COALESCE(w.sender_host, ''), COALESCE(w.sender_port, 0),
		COALESCE(pg_wal_lsn_diff(w.latest_end_lsn, pg_last_wal_replay_lsn()), 0)::bigint
		FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver w ON true`).
		Scan(&s.inRecovery, &ro, &s.receiver, &s.senderHost, &s.senderPort, &s.lag)
	if err != nil {
		// A restarted server needs a new connection.
		_ = h.db.Close()
		h.db = nil
		return s, err
	}
	// In recovery every transaction is read-only; the setting matters only
	// on a primary.
	s.readOnly = ro == "on" && !s.inRecovery
	return s, nil
}

// watchAuthority keeps h.primary current while ctx lives.
func (h *health) watchAuthority(ctx context.Context) {
	if h.member.Authority == nil {
		return
	}
	for {
		h.refreshPrimary(ctx)
		if !sleep(ctx, 2*time.Second) {
			return
		}
	}
}

// ServeHTTP answers GET /readyz: 200 when ready, 503 when not, the reason
// in the body either way.
func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/readyz" {
		http.NotFound(w, r)
		return
	}
	v := h.check(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !v.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintf(w, "%s: %s\n", nonEmpty(v.Role, "unknown"), v.Reason)
}

// serveHealth starts the health endpoint of opts.Health, if any; stop ends
// it.
func serveHealth(opts RunOptions, log *slog.Logger) (stop func(), err error) {
	if opts.Health.Addr == "" {
		return func() {}, nil
	}
	h := &health{pgdata: opts.PGData, superuser: opts.Superuser, member: opts.Membership, maxLag: opts.Health.MaxLag, log: log}
	l, err := net.Listen("tcp", opts.Health.Addr)
	if err != nil {
		return nil, fmt.Errorf("health endpoint %s: %w", opts.Health.Addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go h.watchAuthority(ctx)
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("health endpoint stopped", "addr", opts.Health.Addr, "err", err)
		}
	}()
	log.Info("health endpoint listening", "addr", l.Addr().String(), "maxLag", opts.Health.MaxLag)
	return func() {
		cancel()
		_ = srv.Close()
		h.mu.Lock()
		if h.db != nil {
			_ = h.db.Close()
		}
		h.mu.Unlock()
	}, nil
}
