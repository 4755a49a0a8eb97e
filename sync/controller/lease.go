package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// LeaseDuration is how long a sync's Lease holds without renewal: a
// writer killed mid-sync blocks others at most this long.
const LeaseDuration = 30 * time.Second

// BusyError says another writer holds a Sync's Lease.
type BusyError struct {
	Sync, Holder string
	Until        time.Time
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("sync %s is being synced by %s (its lease holds until %s); try again later", e.Sync, e.Holder, e.Until.UTC().Format(time.RFC3339))
}

// Holder names this process in a Lease: "<what> <hostname>/<pid>".
func Holder(what string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s %s/%d", what, host, os.Getpid())
}

// deadHere reports whether a holder names a process on this host that no
// longer runs (a killed `homeostat sync`): its Lease need not be waited out.
func deadHere(holder string) bool {
	host, _ := os.Hostname()
	_, proc, ok := strings.Cut(holder, " ")
	if !ok {
		return false
	}
	h, p, ok := strings.Cut(proc, "/")
	pid, err := strconv.Atoi(p)
	if !ok || err != nil || h != host || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// leaseName is the Lease of a Sync, in the Sync's namespace.
func leaseName(s *v1alpha1.Sync) string { return "homeostat-sync-" + s.Name }

// Lock takes the Lease of s for holder, so one writer at a time syncs it
// (the controller, `homeostat sync --once`, `snapshots rollback`). It waits
// up to wait for another holder to let go or to expire, then returns a
// *BusyError. While held, the Lease is renewed in the background; unlock
// stops that and releases it.
func Lock(ctx context.Context, c client.Client, s *v1alpha1.Sync, holder string, wait time.Duration) (unlock func(), err error) {
	deadline := time.Now().Add(wait)
	for {
		err := tryLease(ctx, c, s, holder)
		var busy *BusyError
		isBusy := errors.As(err, &busy)
		switch {
		case err == nil:
			return renewLease(c, s, holder), nil
		case !isBusy && !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err):
			return nil, fmt.Errorf("lease of sync %s/%s: %w", s.Namespace, s.Name, err)
		case isBusy && time.Now().After(deadline):
			return nil, busy
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// tryLease takes the Lease if it is free, expired or already holder's.
func tryLease(ctx context.Context, c client.Client, s *v1alpha1.Sync, holder string) error {
	now := metav1.NewMicroTime(time.Now())
	secs := int32(LeaseDuration / time.Second)
	l := &coordinationv1.Lease{}
	err := c.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: leaseName(s)}, l)
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: leaseName(s)},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs,
				AcquireTime: &now, RenewTime: &now},
		}
		return c.Create(ctx, l)
	}
	if err != nil {
		return err
	}
	if h := l.Spec.HolderIdentity; h != nil && *h != "" && *h != holder && l.Spec.RenewTime != nil && l.Spec.LeaseDurationSeconds != nil {
		until := l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
		if time.Now().Before(until) && !deadHere(*h) {
			return &BusyError{Sync: s.Namespace + "/" + s.Name, Holder: *h, Until: until}
		}
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds = &holder, &secs
	l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
	return c.Update(ctx, l) // optimistic: a writer that took it meanwhile wins
}

// renewLease renews the Lease every third of its duration until the
// returned function is called, which releases it.
func renewLease(c client.Client, s *v1alpha1.Sync, holder string) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(LeaseDuration / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = tryLease(context.Background(), c, s, holder)
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		releaseLease(c, s, holder)
	}
}

// releaseLease clears the holder, if it is still holder.
func releaseLease(c client.Client, s *v1alpha1.Sync, holder string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := &coordinationv1.Lease{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: leaseName(s)}, l); err != nil {
		return
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != holder {
		return
	}
	empty := ""
	l.Spec.HolderIdentity = &empty
	_ = c.Update(ctx, l)
}

// SyncLocked is one sync as a command runs it beside a controller: it takes
// the Sync's Lease for holder (waiting up to wait), re-reads the Sync from
// r.Client (which must not be a cache), syncs, and records the status with
// optimistic locking before letting the Lease go. s is updated in place.
func (r *Runner) SyncLocked(ctx context.Context, s *v1alpha1.Sync, trigger, holder string, wait time.Duration) (Outcome, error) {
	unlock, err := Lock(ctx, r.Client, s, holder, wait)
	if err != nil {
		return Outcome{}, err
	}
	defer unlock()
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
		return Outcome{}, fmt.Errorf("sync %s/%s: %w", s.Namespace, s.Name, err)
	}
	if err := checkDependencies(ctx, r.Client, s); err != nil {
		return Outcome{}, r.dependencyNotReady(ctx, s, err)
	}
	o := r.Sync(ctx, s, trigger)
	if o.Skipped {
		return o, nil
	}
	base := s.DeepCopy()
	ApplyStatus(s, o)
	patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	if err := r.Client.Status().Patch(ctx, s, patch); err != nil {
		return o, fmt.Errorf("record status of sync %s/%s: %w", s.Namespace, s.Name, err)
	}
	return o, nil
}

// DependencyError is a sync not run because a Sync in its spec.dependsOn is
// not Ready at its latest revision (or they form a cycle), as the
// controller would not run it either.
type DependencyError struct{ Err error }

func (e *DependencyError) Error() string { return e.Err.Error() }

func (e *DependencyError) Unwrap() error { return e.Err }

// dependencyNotReady records in s's status, as the controller does, that
// it waits for its dependencies, and returns the DependencyError.
func (r *Runner) dependencyNotReady(ctx context.Context, s *v1alpha1.Sync, err error) error {
	base := s.DeepCopy()
	SetDependencyNotReady(s, err)
	derr := &DependencyError{Err: fmt.Errorf("sync %s/%s not run: %w", s.Namespace, s.Name, err)}
	patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	if perr := r.Client.Status().Patch(ctx, s, patch); perr != nil {
		return errors.Join(derr, fmt.Errorf("record status of sync %s/%s: %w", s.Namespace, s.Name, perr))
	}
	return derr
}
