package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/operators/instance"
	"homeostat.dev/homeostat/operators/postgres"
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

// membership builds instance.Membership. Without --cluster it names no
// authority (the data directory's role stays), but with --primary and
// --name a replica still knows its upstream, so --tls-dir can move its
// streaming to verify-full.
func (f *memberFlags) membership(replUser, passfile string) (instance.Membership, error) {
	if f.cluster == "" {
		if f.primary == "" || f.name == "" {
			return instance.Membership{}, nil
		}
		up, err := f.upstream(replUser, passfile)
		return instance.Membership{Name: f.name, Upstream: up}, err
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
		Name:       f.name,
		Authority:  postgres.NewAuthority(c, f.namespace, f.cluster, f.name),
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
