package instance

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
)

// Status is what `instance status` prints.
type Status struct {
	// Role is "primary" or "replica".
	Role     string `json:"role"`
	Timeline int    `json:"timeline"`
	// CurrentLSN is the primary's write position.
	CurrentLSN string `json:"currentLSN,omitempty"`
	// ReceiveLSN and ReplayLSN are a replica's positions; ReplayDelaySeconds
	// is how old the last replayed transaction is.
	ReceiveLSN         string   `json:"receiveLSN,omitempty"`
	ReplayLSN          string   `json:"replayLSN,omitempty"`
	ReplayDelaySeconds *float64 `json:"replayDelaySeconds,omitempty"`
	// Upstream is the replica's WAL receiver: primary host and state.
	Upstream *Receiver `json:"upstream,omitempty"`
	// Standbys are the replicas streaming from this server.
	Standbys []Standby `json:"standbys"`
	// SynchronousStandbyNames is the current setting.
	SynchronousStandbyNames string `json:"synchronousStandbyNames"`
}

// Receiver is a replica's connection to its primary (pg_stat_wal_receiver).
type Receiver struct {
	Status   string `json:"status"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Slot     string `json:"slot"`
	Timeline int    `json:"timeline"`
}

// Standby is one row of pg_stat_replication; LagBytes is how far its replay
// is behind this server's current position.
type Standby struct {
	Name             string   `json:"name"`
	Address          string   `json:"address"`
	State            string   `json:"state"`
	SyncState        string   `json:"syncState"`
	SentLSN          string   `json:"sentLSN"`
	FlushLSN         string   `json:"flushLSN"`
	ReplayLSN        string   `json:"replayLSN"`
	LagBytes         int64    `json:"lagBytes"`
	ReplayLagSeconds *float64 `json:"replayLagSeconds,omitempty"`
}

// GetStatus reads the status of the server db is connected to.
func GetStatus(ctx context.Context, db *sql.DB) (Status, error) {
	var st Status
	var inRecovery bool
	if err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names')").
		Scan(&inRecovery, &st.SynchronousStandbyNames); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	if !inRecovery {
		st.Role = "primary"
		var walfile string
		if err := db.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())").Scan(&st.CurrentLSN, &walfile); err != nil {
			return st, fmt.Errorf("status: current lsn: %w", err)
		}
		tli, _ := strconv.ParseInt(walfile[:8], 16, 32)
		st.Timeline = int(tli)
	} else {
		st.Role = "replica"
		var recv, replay sql.NullString
		var delay sql.NullFloat64
		if err := db.QueryRowContext(ctx, `SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
			extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, (SELECT timeline_id FROM pg_control_checkpoint())`).
			Scan(&recv, &replay, &delay, &st.Timeline); err != nil {
			return st, fmt.Errorf("status: replay position: %w", err)
		}
		st.ReceiveLSN, st.ReplayLSN = recv.String, replay.String
		if delay.Valid {
			st.ReplayDelaySeconds = &delay.Float64
		}
		var r Receiver
		var slot sql.NullString
		err := db.QueryRowContext(ctx, "SELECT status, sender_host, sender_port, slot_name, received_tli FROM pg_stat_wal_receiver").
			Scan(&r.Status, &r.Host, &r.Port, &slot, &r.Timeline)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return st, fmt.Errorf("status: wal receiver: %w", err)
		default:
			r.Slot = slot.String
			st.Upstream = &r
			if r.Timeline > st.Timeline {
				st.Timeline = r.Timeline
			}
		}
	}
	standbys, err := standbys(ctx, db, inRecovery)
	st.Standbys = standbys
	return st, err
}

func standbys(ctx context.Context, db *sql.DB, inRecovery bool) ([]Standby, error) {
	current := "pg_current_wal_lsn()"
	if inRecovery {
		current = "pg_last_wal_replay_lsn()"
	}
	rows, err := db.QueryContext(ctx, `SELECT application_name, coalesce(host(client_addr), 'local'), state, sync_state,
		coalesce(sent_lsn::text, ''), coalesce(flush_lsn::text, ''), coalesce(replay_lsn::text, ''),
		coalesce(pg_wal_lsn_diff(`+current+`, replay_lsn), 0)::bigint, extract(epoch FROM replay_lag)::float8
		FROM pg_stat_replication ORDER BY application_name`)
	if err != nil {
		return nil, fmt.Errorf("status: pg_stat_replication: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []Standby{}
	for rows.Next() {
		var s Standby
		var lag sql.NullFloat64
		if err := rows.Scan(&s.Name, &s.Address, &s.State, &s.SyncState, &s.SentLSN, &s.FlushLSN, &s.ReplayLSN, &s.LagBytes, &lag); err != nil {
			return nil, err
		}
		if lag.Valid {
			s.ReplayLagSeconds = &lag.Float64
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
