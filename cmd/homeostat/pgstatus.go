package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"homeostat.dev/homeostat/operators/postgres"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// newPGStatusCommand is the `kubectl cnpg status` of homeostat: one screen
// with what `kubectl get pg` leaves out.
func newPGStatusCommand() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a Postgres cluster: its instances with role, readiness, lag and disk usage, its backups and conditions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, pg, err := getPostgres(cmd.Context(), namespace, args[0])
			if err != nil {
				return err
			}
			backups, err := postgres.ListBackups(cmd.Context(), c, pg)
			if err != nil {
				return err
			}
			return printPGStatus(cmd.OutOrStdout(), pg, backups, time.Now())
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of the Postgres")
	return cmd
}

// pgStatusBackups is how many of the newest Backups status lists.
const pgStatusBackups = 5

// printPGStatus writes the cluster, its instances, its newest backups and
// its conditions; now makes ages reproducible in tests.
func printPGStatus(w io.Writer, pg *v1alpha1.Postgres, backups []v1alpha1.Backup, now time.Time) error {
	st := pg.Status
	fmt.Fprintf(w, "Postgres %s/%s  %s  primary %s  %d/%d ready\n", pg.Namespace, pg.Name,
		orDash(st.Phase), orDash(st.Primary), st.ReadyInstances, pg.Spec.Instances)
	fmt.Fprintf(w, "Image %s  storage %s  synchronous %d\n", postgres.Image(pg), pg.Spec.Storage.Size, pg.Spec.Synchronous)
	fmt.Fprintf(w, "Services %s (read-write)  %s (read-only)\n\n", postgres.RWService(pg.Name), postgres.ROService(pg.Name))

	if err := printInstances(w, st.Instances); err != nil {
		return err
	}
	printRollout(w, pg)

	fmt.Fprintf(w, "\nBackups: last %s, recoverable from %s\n", timeOrNever(st.LastBackup, now), timeOrNever(st.FirstRecoverabilityPoint, now))
	if c := meta.FindStatusCondition(st.Conditions, postgres.ConditionContinuousArchiving); c != nil {
		state := "ok"
		if c.Status != metav1.ConditionTrue {
			state = "FAILING"
		}
		fmt.Fprintf(w, "WAL archiving: %s: %s\n", state, c.Message)
	}
	if len(backups) > pgStatusBackups {
		backups = backups[len(backups)-pgStatusBackups:]
	}
	if len(backups) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BACKUP\tPHASE\tSTARTED\tSIZE\tLSN")
		for i := len(backups) - 1; i >= 0; i-- {
			b := backups[i].Status
			lsn := "-"
			if b.BeginLSN != "" {
				lsn = b.BeginLSN + ".." + b.EndLSN
			}
			size := "-"
			if b.Size > 0 {
				size = bytesIEC(b.Size)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", backups[i].Name, orDash(b.Phase), timeOrNever(b.StartedAt, now), size, lsn)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for i := len(backups) - 1; i >= 0; i-- {
			if e := backups[i].Status.Error; e != "" {
				fmt.Fprintf(w, "  %s: %s\n", backups[i].Name, e)
			}
		}
	}

	fmt.Fprintln(w, "\nConditions:")
	for _, c := range st.Conditions {
		fmt.Fprintf(w, "  %s=%s  %s: %s (%s ago)\n", c.Type, c.Status, c.Reason, c.Message, duration.HumanDuration(now.Sub(c.LastTransitionTime.Time)))
	}
	return nil
}

// printInstances is the instances' table: role, readiness, position, lag,
// and the data volume as the instance manager last measured it.
func printInstances(w io.Writer, instances []v1alpha1.InstanceStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tROLE\tREADY\tTIMELINE\tLSN\tLAG\tDATA\tVOLUME FREE")
	for _, in := range instances {
		lag := "-"
		if in.Role != postgres.RolePrimary && in.Ready {
			lag = bytesIEC(in.LagBytes)
		}
		data, free := "-", "-"
		if in.VolumeFreeBytes != nil {
			data, free = bytesIEC(in.DataBytes), bytesIEC(*in.VolumeFreeBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%t\t%d\t%s\t%s\t%s\t%s\n", in.Name, in.Role, in.Ready, in.Timeline, orDash(in.LSN), lag, data, free)
	}
	return tw.Flush()
}

// printRollout says which instances a rolling update has still to replace
// and what it does now (the Ready condition's message); nothing when every
// instance runs the current spec.
func printRollout(w io.Writer, pg *v1alpha1.Postgres) {
	var outdated []string
	for _, in := range pg.Status.Instances {
		if in.Outdated != "" {
			outdated = append(outdated, in.Name+" ("+in.Outdated+")")
		}
	}
	if len(outdated) == 0 {
		return
	}
	fmt.Fprintf(w, "\nOutdated: %s\n", strings.Join(outdated, ", "))
	if c := meta.FindStatusCondition(pg.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue {
		fmt.Fprintf(w, "Rolling update: %s: %s\n", c.Reason, c.Message)
	}
}

// timeOrNever prints t with its age, or "never".
func timeOrNever(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339) + " (" + duration.HumanDuration(now.Sub(t.Time)) + " ago)"
}

// bytesIEC prints n as B, KiB, MiB or GiB.
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, i := float64(n), -1
	for v >= unit && i < 2 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, strings.Split("KiB MiB GiB", " ")[i])
}
