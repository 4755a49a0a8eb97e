package main

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	hsync "homeostat.dev/homeostat/sync"
	"homeostat.dev/homeostat/sync/controller"
	"homeostat.dev/homeostat/sync/snapshot"
)

func init() { register(newSnapshotsCommand) }

func newSnapshotsCommand() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:     "snapshots",
		Aliases: []string{"snapshot", "snap"},
		Short:   "List, show, compare and roll back to the recorded syncs of a Sync",
	}
	cmd.PersistentFlags().StringVarP(&namespace, "namespace", "n", defaultSyncNamespace, "namespace of the Syncs and Snapshots")
	ns := func() string { return namespace }
	cmd.AddCommand(newSnapshotsListCommand(ns), newSnapshotsShowCommand(ns), newSnapshotsDiffCommand(ns), newSnapshotsRollbackCommand(ns))
	return cmd
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("expected %s, got %d arguments", what, len(args))}
		}
		return nil
	}
}

func getSnapshot(cmd *cobra.Command, c client.Client, namespace, name string) (*v1alpha1.Snapshot, error) {
	s := &v1alpha1.Snapshot{}
	if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		return nil, fmt.Errorf("snapshot %s/%s: %w", namespace, name, err)
	}
	return s, nil
}

func newSnapshotsListCommand(ns func() string) *cobra.Command {
	var syncName string
	cmd := &cobra.Command{
		Use:   "list [--sync NAME]",
		Short: "List snapshots, newest first",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := kubeClients()
			if err != nil {
				return withCode(exitFailure, err)
			}
			var items []v1alpha1.Snapshot
			if syncName != "" {
				items, err = snapshot.List(cmd.Context(), c, ns(), syncName)
			} else {
				var l v1alpha1.SnapshotList
				err = c.List(cmd.Context(), &l, client.InNamespace(ns()))
				items = l.Items
				// Newest first, as for one Sync.
				sort.Slice(items, func(i, j int) bool {
					a, b := items[i].CreationTimestamp, items[j].CreationTimestamp
					if !a.Equal(&b) {
						return b.Before(&a)
					}
					return items[i].Name > items[j].Name
				})
			}
			if err != nil {
				return withCode(exitFailure, err)
			}
			writeSnapshotTable(cmd.OutOrStdout(), items)
			return nil
		},
	}
	cmd.Flags().StringVar(&syncName, "sync", "", "only this Sync's snapshots")
	return cmd
}

func writeSnapshotTable(w io.Writer, items []v1alpha1.Snapshot) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSYNC\tREVISION\tRESULT\tCHANGED\tPRUNED\tTRIGGER\tAGE\tMESSAGE")
	for _, s := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", s.Name, s.Spec.Sync, s.Spec.Revision, s.Status.Result,
			s.Status.Changed, s.Status.Pruned, s.Spec.Trigger, duration.HumanDuration(time.Since(s.CreationTimestamp.Time)), s.Spec.Message)
	}
	tw.Flush()
}

func newSnapshotsShowCommand(ns func() string) *cobra.Command {
	var objects bool
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show what one sync did",
		Args:  exactArgs(1, "a snapshot NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := kubeClients()
			if err != nil {
				return withCode(exitFailure, err)
			}
			s, err := getSnapshot(cmd, c, ns(), args[0])
			if err != nil {
				return withCode(exitFailure, err)
			}
			writeSnapshot(cmd.OutOrStdout(), s)
			if objects {
				objs, err := snapshot.Decode(s.Status.Objects)
				if err != nil {
					return withCode(exitFailure, err)
				}
				for _, o := range objs {
					fmt.Fprintln(cmd.OutOrStdout(), "---")
					b, _ := yaml.Marshal(o.Object.Object)
					fmt.Fprint(cmd.OutOrStdout(), string(b))
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&objects, "objects", false, "also print the recorded objects as YAML")
	return cmd
}

func writeSnapshot(w io.Writer, s *v1alpha1.Snapshot) {
	st := s.Status
	fmt.Fprintf(w, "Name:      %s\nSync:      %s\nRevision:  %s\nMessage:   %s\nAuthor:    %s\nPath:      %s\nTrigger:   %s\nResult:    %s\n",
		s.Name, s.Spec.Sync, s.Spec.Revision, s.Spec.Message, s.Spec.Author, s.Spec.Path, s.Spec.Trigger, st.Result)
	if st.Error != "" {
		fmt.Fprintf(w, "Error:     %s\n", st.Error)
	}
	fmt.Fprintf(w, "Counts:    %d created, %d configured, %d unchanged, %d pruned\n", st.Created, st.Configured, st.Unchanged, st.Pruned)
	fmt.Fprintf(w, "Healthy:   %t\n", st.Healthy)
	t := st.Timings
	fmt.Fprintf(w, "Timings:   fetch %dms, render %dms, apply %dms, prune %dms, wait %dms\n",
		t.FetchMillis, t.RenderMillis, t.ApplyMillis, t.PruneMillis, t.WaitMillis)
	if inv, err := hsync.DecodeInventory(st.Inventory, st.InventoryCompressed); err == nil {
		fmt.Fprintf(w, "Inventory: %d objects\n", len(inv))
	}
	if len(st.Changes) > 0 {
		fmt.Fprintln(w, "Changes:")
		for _, c := range st.Changes {
			fmt.Fprintf(w, "  %s %s\n", c.Object, c.Action)
		}
		if st.ChangesOmitted > 0 {
			fmt.Fprintf(w, "  ... and %d more (`homeostat snapshots diff` shows every object)\n", st.ChangesOmitted)
		}
	}
	if st.Count > 1 && st.FirstAt != nil && st.LastAt != nil {
		fmt.Fprintf(w, "Repeated:  %d times, %s to %s\n", st.Count, st.FirstAt.UTC().Format(time.RFC3339), st.LastAt.UTC().Format(time.RFC3339))
	}
	if len(st.Health) > 0 {
		fmt.Fprintln(w, "Unhealthy:")
		for _, c := range st.Health {
			fmt.Fprintf(w, "  %s: %s\n", c.Object, c.Action)
		}
	}
}

func newSnapshotsDiffCommand(ns func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "diff A B",
		Short: "Show, object by object, what changed from snapshot A to snapshot B",
		Args:  exactArgs(2, "two snapshot names A and B"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := kubeClients()
			if err != nil {
				return withCode(exitFailure, err)
			}
			a, err := getSnapshot(cmd, c, ns(), args[0])
			if err != nil {
				return withCode(exitFailure, err)
			}
			b, err := getSnapshot(cmd, c, ns(), args[1])
			if err != nil {
				return withCode(exitFailure, err)
			}
			diffs, err := snapshot.Compare(a, b)
			if err != nil {
				return withCode(exitFailure, err)
			}
			w := cmd.OutOrStdout()
			for _, d := range diffs {
				fmt.Fprintf(w, "%s %s\n%s", d.Action, d.Ref, d.Diff)
			}
			fmt.Fprintf(w, "%d object(s) differ between %s (%s) and %s (%s)\n", len(diffs), a.Name, a.Spec.Revision, b.Name, b.Spec.Revision)
			return nil
		},
	}
}

func newSnapshotsRollbackCommand(ns func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback NAME",
		Short: "Re-apply a snapshot's objects, prune what it lacked, and suspend its Sync",
		Long: `Rollback re-applies the objects recorded in snapshot NAME, prunes what
that snapshot did not have (Secrets, which snapshots never record, are left
alone), and suspends the Sync so the next interval does not undo it. The
Sync's Ready condition says RolledBack until ` + "`homeostat sync resume SYNC`" + `.`,
		Args: exactArgs(1, "a snapshot NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, eng, err := kubeClients()
			if err != nil {
				return withCode(exitFailure, err)
			}
			snap, err := getSnapshot(cmd, c, ns(), args[0])
			if err != nil {
				return withCode(exitFailure, err)
			}
			s := &v1alpha1.Sync{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns(), Name: snap.Spec.Sync}, s); err != nil {
				return withCode(exitFailure, fmt.Errorf("sync %s/%s: %w", ns(), snap.Spec.Sync, err))
			}
			unlock, err := controller.Lock(cmd.Context(), c, s, controller.Holder("rollback"), time.Minute)
			if err != nil {
				return withCode(exitFailure, err)
			}
			defer unlock()
			if err := c.Get(cmd.Context(), client.ObjectKeyFromObject(s), s); err != nil {
				return withCode(exitFailure, err)
			}
			runner := &controller.Runner{Client: c, Engine: eng}
			o, err := runner.Rollback(cmd.Context(), s, snap.Name)
			printOutcome(cmd, s, o)
			if err != nil {
				return withCode(exitFailure, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back to %s; sync %s is suspended until `homeostat sync resume %s -n %s`\n", snap.Name, s.Name, s.Name, ns())
			return nil
		},
	}
}
