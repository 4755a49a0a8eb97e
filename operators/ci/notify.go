package ci

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"homeostat.dev/homeostat/operators/ci/notify"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// buildEvent is what notifications say about b.
func buildEvent(b *v1alpha1.Build) notify.Event {
	return notify.Event{
		Namespace: b.Namespace, Pipeline: b.Spec.Pipeline.Name, Build: b.Name,
		Repository: b.Spec.Repo, Commit: b.Spec.Commit, Branch: b.Spec.Branch,
		Result: b.Status.Phase, FailedStep: b.Status.FailedStep, Duration: b.Status.Duration,
		Message: b.Status.Message,
	}
}

// notifiers are the pipeline's targets: the chat or JSON webhook (only for
// finished builds) and the commit status (also when a build starts). A
// target whose secret cannot be read becomes one that reports that error.
func (r *BuildReconciler) notifiers(ctx context.Context, p *v1alpha1.Pipeline, starting bool) notify.Multi {
	var out notify.Multi
	if p.Spec.Notify == nil {
		return out
	}
	if w := p.Spec.Notify.Webhook; w != nil && !starting {
		data, err := r.secretData(ctx, p.Namespace, w.SecretRef.Name)
		var n notify.Notifier
		if err == nil {
			n, err = notify.FromSecret(w.Format, data)
		}
		out = append(out, orError(n, err))
	}
	if cs := p.Spec.Notify.CommitStatus; cs != nil {
		data, err := r.secretData(ctx, p.Namespace, cs.SecretRef.Name)
		token := strings.TrimSpace(string(data["token"]))
		if err == nil && token == "" {
			err = fmt.Errorf("secret %s: key \"token\" is missing or empty", cs.SecretRef.Name)
		}
		out = append(out, orError(notify.CommitStatus{
			Provider: cs.Provider, BaseURL: cs.URL, Token: token, Context: "homeostat/" + p.Name, Client: r.HTTPClient,
		}, err))
	}
	for i, n := range out {
		switch t := n.(type) {
		case notify.Slack:
			t.Client, out[i] = r.HTTPClient, t
		case notify.Telegram:
			t.Client, out[i] = r.HTTPClient, t
		case notify.JSON:
			t.Client, out[i] = r.HTTPClient, t
		}
	}
	return out
}

func (r *BuildReconciler) secretData(ctx context.Context, ns, name string) (map[string][]byte, error) {
	var s corev1.Secret
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
		return nil, fmt.Errorf("notify secret %s: %w", name, err)
	}
	return s.Data, nil
}

// failing is a notifier that could not be built; it fails every delivery
// with why, so the error reaches the log and the retry logic.
type failing struct{ err error }

func (f failing) Notify(context.Context, notify.Event) error { return f.err }

func orError(n notify.Notifier, err error) notify.Notifier {
	if err != nil {
		return failing{notify.Permanent(err)}
	}
	return n
}

// deliver sends e to each target, retrying (twice) a target whose failure
// may pass. Each target is retried on its own, here, rather than by
// requeueing the build, which would send again to the targets that already
// had the message.
func (r *BuildReconciler) deliver(ctx context.Context, targets notify.Multi, e notify.Event) error {
	delay := r.RetryDelay
	if delay <= 0 {
		delay = 2 * time.Second
	}
	var errs []error
	for _, n := range targets {
		for attempt := 1; ; attempt++ {
			err := n.Notify(ctx, e)
			if err == nil {
				break
			}
			if notify.IsPermanent(err) || attempt == 3 {
				errs = append(errs, err)
				break
			}
			select {
			case <-ctx.Done():
				return errors.Join(append(errs, ctx.Err())...)
			case <-time.After(delay * time.Duration(attempt)):
			}
		}
	}
	return errors.Join(errs...)
}
