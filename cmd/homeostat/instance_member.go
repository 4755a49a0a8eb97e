package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/instance"
	"homeostat.dev/homeostat/operators/postgres"
	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// memberFlags tie `instance run` to its cluster: which Postgres it belongs
// to, its own name, and the -rw Service it follows as a replica.
type memberFlags struct {
	cluster, namespace, name, primary string
	fenceAfter                        time.Duration
}

func (f *memberFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.cluster, "cluster", "", "the Postgres this instance belongs to: its status.primary decides the role (none: keep the data directory's role)")
	fs.StringVar(&f.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Postgres (env POD_NAMESPACE)")
	fs.StringVar(&f.name, "name", os.Getenv("POD_NAME"), "this instance's name (env POD_NAME)")
	fs.StringVar(&f.primary, "primary", "", "HOST:PORT a replica streams from (the -rw Service)")
	fs.DurationVar(&f.fenceAfter, "fence-after", 30*time.Second, "a primary that reaches neither the API server nor any replica for this long shuts down (0: never)")
}

// membership builds instance.Membership; without --cluster it is empty.
func (f *memberFlags) membership(replUser, passfile string) (instance.Membership, error) {
	if f.cluster == "" {
		return instance.Membership{}, nil
	}
	if f.name == "" || f.namespace == "" || f.primary == "" {
		return instance.Membership{}, usageError{fmt.Errorf("--cluster needs --name, --namespace and --primary")}
	}
	up, err := f.upstream(replUser, passfile)
	if err != nil {
		return instance.Membership{}, err
	}
	cfg, err := restConfig()
	if err != nil {
		return instance.Membership{}, fmt.Errorf("kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: syncScheme()})
	if err != nil {
		return instance.Membership{}, err
	}
	return instance.Membership{
		Name: f.name,
		Authority: postgresAuthority{c: c, key: client.ObjectKey{Namespace: f.namespace, Name: f.cluster},
			pod: client.ObjectKey{Namespace: f.namespace, Name: f.name}},
		Upstream:   up,
		FenceAfter: f.fenceAfter,
	}, nil
}

// upstream reads --primary HOST:PORT.
func (f *memberFlags) upstream(replUser, passfile string) (instance.Upstream, error) {
	host, portText, err := net.SplitHostPort(f.primary)
	if err != nil {
		return instance.Upstream{}, usageError{fmt.Errorf("--primary %q: want HOST:PORT: %w", f.primary, err)}
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return instance.Upstream{}, usageError{fmt.Errorf("--primary %q: port: %w", f.primary, err)}
	}
	return instance.Upstream{Host: host, Port: port, User: replUser, PassFile: passfile}, nil
}

// postgresAuthority reads the primary the operator chose from the
// Postgres object's status.
type postgresAuthority struct {
	c        client.Client
	key, pod client.ObjectKey
}

// Heartbeat stamps the instance's own pod (postgres.AnnotationHeartbeat);
// the operator notes when the value last changed, so clocks need not agree.
func (a postgresAuthority) Heartbeat(ctx context.Context) error {
	patch := []byte(`{"metadata":{"annotations":{"` + postgres.AnnotationHeartbeat + `":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}}}`)
	ref := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: a.pod.Name, Namespace: a.pod.Namespace}}
	return refused(a.c.Patch(ctx, ref, client.RawPatch(types.MergePatchType, patch)))
}

// refused marks an answer of the API server (a status such as Forbidden or
// NotFound) as instance.ErrRefused: reachable, but no answer about roles.
func refused(err error) error {
	var st apierrors.APIStatus
	if err != nil && errors.As(err, &st) && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsServiceUnavailable(err) {
		return fmt.Errorf("%w: %w", instance.ErrRefused, err)
	}
	return err
}

func (a postgresAuthority) Primary(ctx context.Context) (string, error) {
	var pg v1alpha1.Postgres
	if err := a.c.Get(ctx, a.key, &pg); err != nil {
		return "", fmt.Errorf("read postgres %s: %w", a.key, refused(err))
	}
	return pg.Status.Primary, nil
}
