package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"homeostat.dev/homeostat/backup"
)

// ConditionContinuousArchiving is True while the primary's archive_command
// succeeds (pg_stat_archiver), False with the last failure and the WAL
// waiting while it fails. Only clusters with spec.backup have it.
const ConditionContinuousArchiving = "ContinuousArchiving"

// Prometheus metrics of WAL archiving, served by the manager's metrics
// endpoint.
var (
	archiveFailing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "homeostat_postgres_archive_failing",
		Help: "1 while the primary's last archive_command attempt failed (pg_stat_archiver), else 0.",
	}, []string{"namespace", "name"})
	archiveWaiting = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "homeostat_postgres_wal_waiting_segments",
		Help: "WAL files on the primary waiting to be archived (.ready in pg_wal/archive_status).",
	}, []string{"namespace", "name"})
)

func init() {
	metrics.Registry.MustRegister(archiveFailing, archiveWaiting)
}

// Archiver is the primary's pg_stat_archiver and the WAL files waiting.
type Archiver struct {
	Archived, Failed             int64
	LastArchived, LastFailed     string
	LastArchivedAt, LastFailedAt sql.NullTime
	Waiting                      int
	OldestWaiting                string
}

// Failing is true when the last attempt failed: a failure newer than the
// last success.
func (a Archiver) Failing() bool {
	return a.LastFailedAt.Valid && (!a.LastArchivedAt.Valid || a.LastFailedAt.Time.After(a.LastArchivedAt.Time))
}

// String says what the condition's message says.
func (a Archiver) String() string {
	if a.Failing() {
		return fmt.Sprintf("archive_command failed %d times, last for %s at %s; %d WAL files waiting (oldest %s)",
			a.Failed, a.LastFailed, a.LastFailedAt.Time.UTC().Format(time.RFC3339), a.Waiting, nonEmpty(a.OldestWaiting, "none"))
	}
	if !a.LastArchivedAt.Valid {
		return fmt.Sprintf("nothing archived yet; %d WAL files waiting", a.Waiting)
	}
	return fmt.Sprintf("%d WAL files archived, last %s at %s; %d waiting", a.Archived, a.LastArchived,
		a.LastArchivedAt.Time.UTC().Format(time.RFC3339), a.Waiting)
}

// ReadArchiver reads the archiver's state from a server (as the superuser:
// the archive_status directory is listed with pg_ls_dir).
func ReadArchiver(ctx context.Context, db *sql.DB) (Archiver, error) {
	var a Archiver
	err := db.QueryRowContext(ctx, `SELECT archived_count, failed_count, coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''),
		last_archived_time, last_failed_time,
		(SELECT count(*) FROM pg_ls_dir('pg_wal/archive_status') f WHERE f LIKE '%.ready'),
		coalesce((SELECT min(f) FROM pg_ls_dir('pg_wal/archive_status') f WHERE f LIKE '%.ready'), '')
		FROM pg_stat_archiver`).Scan(&a.Archived, &a.Failed, &a.LastArchived, &a.LastFailed, &a.LastArchivedAt, &a.LastFailedAt,
		&a.Waiting, &a.OldestWaiting)
	a.OldestWaiting = strings.TrimSuffix(a.OldestWaiting, ".ready")
	return a, err
}

// checkArchiving sets ContinuousArchiving and the metrics from the
// primary's archiver. It never holds up the workflow.
func (r *PostgresReconciler) checkArchiving(ctx context.Context, c *cluster) error {
	o := c.obs[c.pg.Status.Primary]
	if c.pg.Spec.Backup == nil || !o.Reachable || o.InRecovery {
		return nil
	}
	db, _, err := r.conn(ctx, c, c.pg.Status.Primary)
	if err != nil {
		return nil
	}
	a, err := ReadArchiver(ctx, db)
	if err != nil {
		return nil
	}
	failing := 0.0
	prev := meta.FindStatusCondition(c.pg.Status.Conditions, ConditionContinuousArchiving)
	if a.Failing() {
		failing = 1
		setCondition(c.pg, ConditionContinuousArchiving, metav1.ConditionFalse, "ArchiveFailing", a.String())
		if prev == nil || prev.Status != metav1.ConditionFalse {
			r.warn(c.pg, "ArchiveFailing", "%s", a.String())
		}
	} else {
		setCondition(c.pg, ConditionContinuousArchiving, metav1.ConditionTrue, "Archiving", a.String())
	}
	archiveFailing.WithLabelValues(c.pg.Namespace, c.pg.Name).Set(failing)
	archiveWaiting.WithLabelValues(c.pg.Namespace, c.pg.Name).Set(float64(a.Waiting))
	return nil
}

// errArchiveNotEmpty marks a WAL archive that holds another cluster's WAL.
var errArchiveNotEmpty = errors.New("WAL archive not empty")

// checkArchiveEmpty refuses to create a new cluster on a WAL archive path
// that already holds WAL (another cluster's, or an earlier one's of the
// same name): every wal-push of a segment name that exists there with other
// content fails, so pg_wal would grow until the disk is full. A cluster
// bootstrapped from that very path continues its history and may use it.
func (r *PostgresReconciler) checkArchiveEmpty(ctx context.Context, c *cluster) error {
	b := c.pg.Spec.Backup
	if b == nil {
		return nil
	}
	if bs := c.pg.Spec.Bootstrap; bs != nil && bs.FromBackup != nil {
		src := bs.FromBackup.S3
		if src.Endpoint == b.S3.Endpoint && src.Bucket == b.S3.Bucket && strings.Trim(src.Path, "/") == strings.Trim(b.S3.Path, "/") {
			return nil
		}
	}
	cfg, err := StoreConfig(ctx, r.Client, c.pg.Namespace, &b.S3)
	if err != nil {
		return err
	}
	store, err := backup.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open backup store %s: %w", cfg, err)
	}
	wal, err := store.List(ctx, "wal/")
	if err != nil {
		return fmt.Errorf("list WAL archive in %s: %w", cfg, err)
	}
	if len(wal) == 0 {
		return nil
	}
	return reconcile.TerminalError(&stalled{"ArchiveNotEmpty", fmt.Errorf("%w: %s already holds %d archived WAL files (first %s): a new cluster would fail to archive over them; set spec.backup.s3.path to an empty path, or bootstrap from this one (spec.bootstrap.fromBackup)",
		errArchiveNotEmpty, cfg, len(wal), wal[0].Key)})
}
