package kubelet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// network is what lets the harness partition an instance: every
// connection an instance makes (to a Service, to the API server) and every
// connection made to it (through a Service or its pod address) runs through
// a proxy of ours, recorded as a link from a client instance to a backend
// instance; partitioning an instance closes its links and refuses new ones,
// while its processes keep running.
type network struct {
	mu    sync.Mutex
	cut   map[string]bool // "ns/instance"
	links map[*link]bool
}

// link is one proxied connection; client and backend are "ns/instance",
// or "" for the outside world (tests, the operator, the API server).
type link struct {
	client, backend string
	a, b            net.Conn
}

func (l *link) close() {
	l.a.Close()
	l.b.Close()
}

// Partition cuts an instance (its pod, and the Jobs on its volume) off
// from the API server, from its peers and from Service traffic, as a
// network partition of its node would: its processes keep running and a
// client on its side (DirectAddr) still reaches it.
func (k *Kubelet) Partition(ns, instance string) {
	key := ns + "/" + instance
	k.net.mu.Lock()
	defer k.net.mu.Unlock()
	if k.net.cut == nil {
		k.net.cut = map[string]bool{}
	}
	k.net.cut[key] = true
	for l := range k.net.links {
		if l.client == key || l.backend == key {
			l.close()
			delete(k.net.links, l)
		}
	}
	k.logf("partitioned %s", key)
}

// Heal ends a partition.
func (k *Kubelet) Heal(ns, instance string) {
	k.net.mu.Lock()
	defer k.net.mu.Unlock()
	delete(k.net.cut, ns+"/"+instance)
	k.logf("healed %s/%s", ns, instance)
}

// DirectAddr is where a pod's server listens, bypassing every proxy: what a
// client on the pod's own side of a partition reaches.
func (k *Kubelet) DirectAddr(ns, pod string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p := k.procs["pod/"+ns+"/"+pod]; p != nil {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)), nil
	}
	return "", fmt.Errorf("no running pod %s/%s", ns, pod)
}

// connect dials backend for a client and records the link, unless either
// side is cut off.
func (k *Kubelet) connect(conn net.Conn, client, backend, addr string) {
	defer conn.Close()
	k.net.mu.Lock()
	blocked := k.net.cut[client] || k.net.cut[backend]
	k.net.mu.Unlock()
	if blocked {
		return
	}
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer up.Close()
	l := &link{client: client, backend: backend, a: conn, b: up}
	k.net.mu.Lock()
	if k.net.cut[client] || k.net.cut[backend] {
		k.net.mu.Unlock()
		return
	}
	if k.net.links == nil {
		k.net.links = map[*link]bool{}
	}
	k.net.links[l] = true
	k.net.mu.Unlock()
	defer func() {
		k.net.mu.Lock()
		delete(k.net.links, l)
		k.net.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
}

// listen starts a proxy under key (once) whose connections handle runs.
func (k *Kubelet) listen(key string, handle func(net.Conn)) (*proxy, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if px := k.proxies[key]; px != nil {
		return px, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	px := &proxy{addr: l.Addr().String(), l: l}
	k.proxies[key] = px
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go handle(conn)
		}
	}()
	return px, nil
}

// serviceProxy is client's view of a Service: a ready pod it selects now.
func (k *Kubelet) serviceProxy(client, ns, name string) (*proxy, error) {
	return k.listen("svc|"+client+"|"+ns+"/"+name, func(conn net.Conn) {
		pod, addr, err := k.backend(context.Background(), ns, name)
		if err != nil {
			k.logf("service %s/%s: %v", ns, name, err)
			conn.Close()
			return
		}
		k.connect(conn, client, ns+"/"+pod, addr)
	})
}

// podProxy is the outside world's view of a pod's server.
func (k *Kubelet) podProxy(ns, pod string) (*proxy, error) {
	return k.listen("pod|"+ns+"/"+pod, func(conn net.Conn) {
		addr, err := k.DirectAddr(ns, pod)
		if err != nil {
			conn.Close()
			return
		}
		k.connect(conn, "", ns+"/"+pod, addr)
	})
}

// kubeconfigEnv is KUBECONFIG for a process of an instance: the test's
// kubeconfig with the API server behind a proxy of the instance's own, so
// a partition cuts it off, acting as the pod's ServiceAccount (see
// ServiceAccountUser), as a pod's mounted token would: what the
// ServiceAccount may not do, the process is refused. Without
// Options.Kubeconfig, for workloads that are no instance, and for a pod
// that mounts no token (automountServiceAccountToken: false), it is "".
func (k *Kubelet) kubeconfigEnv(w workload, p *proc) (string, error) {
	if k.opts.Kubeconfig == "" || p.claim == "" {
		return "", nil
	}
	if a := w.spec.AutomountServiceAccountToken; a != nil && !*a {
		return "", nil
	}
	cfg, err := clientcmd.LoadFromFile(k.opts.Kubeconfig)
	if err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			return "", fmt.Errorf("kubeconfig server %q: %w", c.Server, err)
		}
		target := u.Host
		px, err := k.listen("api|"+p.claim, func(conn net.Conn) { k.connect(conn, p.claim, "", target) })
		if err != nil {
			return "", err
		}
		u.Host = px.addr
		c.Server = u.String()
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = ServiceAccountUser(w.ns, w.spec)
	}
	path := filepath.Join(k.opts.Dir, "kubeconfigs", strings.ReplaceAll(p.claim, "/", "_")+".yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return "KUBECONFIG=" + path, nil
}

// ServiceAccountUser is the user name a pod's processes act as in the API
// server: its serviceAccountName, or the namespace's "default" when it
// names none.
func ServiceAccountUser(namespace string, spec *corev1.PodSpec) string {
	sa := spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return "system:serviceaccount:" + namespace + ":" + sa
}
