package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
	"homeostat.dev/homeostat/sync/source"
	"homeostat.dev/homeostat/sync/webhook"
)

// PushTrigger is the webhook handler that syncs, at once, every Sync
// following the pushed repository and branch (a Sync pinned to a tag or
// commit is triggered by any push too: its ref may have moved).
type PushTrigger struct {
	Client client.Client
}

var _ webhook.Handler = PushTrigger{}

// HandlePush implements webhook.Handler.
func (p PushTrigger) HandlePush(ctx context.Context, e webhook.PushEvent) error {
	var l v1alpha1.SyncList
	if err := p.Client.List(ctx, &l); err != nil {
		return fmt.Errorf("list syncs: %w", err)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var errs []error
	for i := range l.Items {
		s := &l.Items[i]
		if !matches(s, e) {
			continue
		}
		base := s.DeepCopy()
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[AnnotationSyncAt] = now
		s.Annotations[AnnotationSyncTrigger] = TriggerWebhook
		if err := p.Client.Patch(ctx, s, client.MergeFrom(base)); err != nil {
			errs = append(errs, fmt.Errorf("trigger sync %s/%s: %w", s.Namespace, s.Name, err))
		}
	}
	return errors.Join(errs...)
}

func matches(s *v1alpha1.Sync, e webhook.PushEvent) bool {
	same := false
	for _, u := range e.RepoURLs {
		if webhook.SameRepo(u, s.Spec.URL) {
			same = true
		}
	}
	if !same {
		return false
	}
	branch := source.DefaultBranch
	if s.Spec.Ref != nil {
		if s.Spec.Ref.Tag != "" || s.Spec.Ref.Commit != "" {
			return true
		}
		if s.Spec.Ref.Branch != "" {
			branch = s.Spec.Ref.Branch
		}
	}
	return e.Branch == branch || e.Branch == ""
}
