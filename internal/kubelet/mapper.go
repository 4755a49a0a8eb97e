package kubelet

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// mapper rewrites one container's view (mount paths, names, ports) to the
// local machine's.
type mapper struct {
	k      *Kubelet
	ctx    context.Context
	w      workload
	p      *proc
	mounts []mount // longest mount path first
	podDir string
}

type mount struct{ path, dir string }

func (k *Kubelet) mapper(ctx context.Context, w workload, p *proc) (*mapper, error) {
	podDir := filepath.Join(k.opts.Dir, "volumes", "pods", w.kind+"_"+w.ns+"_"+w.name)
	if err := mkdir(podDir); err != nil {
		return nil, err
	}
	return &mapper{k: k, ctx: ctx, w: w, p: p, podDir: podDir}, nil
}

func mkdir(d string) error {
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	return os.Chmod(d, 0o755)
}

// volumeDir is where a volume of the workload lives: claims by claim name
// (shared by every pod and Job that mounts them), emptyDirs per workload.
func (m *mapper) volumeDir(v *corev1.Volume) (string, error) {
	base := filepath.Join(m.k.opts.Dir, "volumes")
	var d string
	switch {
	case v.PersistentVolumeClaim != nil:
		d = filepath.Join(base, "claims", m.w.ns+"_"+v.PersistentVolumeClaim.ClaimName)
	case v.EmptyDir != nil:
		d = filepath.Join(base, "empty", m.w.kind+"_"+m.w.ns+"_"+m.w.name+"_"+v.Name)
	case v.Secret != nil:
		d = filepath.Join(base, "secrets", m.w.kind+"_"+m.w.ns+"_"+m.w.name+"_"+v.Name)
		if err := m.k.writeSecretVolume(m.ctx, m.w.ns, v.Secret, d, m.p.exited); err != nil {
			return "", err
		}
		return d, nil
	case v.DownwardAPI != nil:
		return m.writeDownwardVolume(v)
	default:
		return "", fmt.Errorf("volume %s: only claims, emptyDirs, secrets and downward-API volumes are supported", v.Name)
	}
	return d, mkdir(d)
}

// argv is the container's command line with homeostat's binary, mount
// paths, ports and names mapped.
func (m *mapper) argv(c *corev1.Container) ([]string, error) {
	m.mounts = nil
	for _, vm := range c.VolumeMounts {
		for i := range m.w.spec.Volumes {
			if m.w.spec.Volumes[i].Name != vm.Name {
				continue
			}
			d, err := m.volumeDir(&m.w.spec.Volumes[i])
			if err != nil {
				return nil, err
			}
			m.mounts = append(m.mounts, mount{path: vm.MountPath, dir: d})
		}
	}
	m.mounts = append(m.mounts, m.terminationMount(c))
	sort.Slice(m.mounts, func(i, j int) bool { return len(m.mounts[i].path) > len(m.mounts[j].path) })
	argv := append(append([]string(nil), c.Command...), c.Args...)
	if len(argv) == 0 {
		return nil, fmt.Errorf("container %s: no command (image entrypoints are not known here)", c.Name)
	}
	switch {
	case c.Image == m.k.opts.HomeostatImage && (argv[0] == "/homeostat" || argv[0] == "homeostat"):
		argv[0] = m.k.opts.Binary
	default:
		argv[0] = m.path(argv[0])
		if !filepath.IsAbs(argv[0]) {
			return nil, fmt.Errorf("container %s: command %s is not a mounted path", c.Name, argv[0])
		}
	}
	hostPort := ""
	for i := 1; i+1 < len(argv); i++ {
		if argv[i] == "--host" {
			if addr, err := m.resolve(argv[i+1]); err == nil {
				hostPort = addr
			}
		}
	}
	out := []string{argv[0]}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case (a == "--port" || a == "--host") && i+1 < len(argv):
			out = append(out, a, m.flagValue(a, argv[i+1], hostPort))
			i++
		case strings.HasPrefix(a, "--port=") || strings.HasPrefix(a, "--host="):
			name, val, _ := strings.Cut(a, "=")
			out = append(out, name+"="+m.flagValue(name, val, hostPort))
		default:
			out = append(out, m.listenAddr(c, m.addr(m.path(a))))
		}
	}
	return out, nil
}

// flagValue maps --host to loopback and --port to the port of the --host
// target, or else to this instance's own port.
func (m *mapper) flagValue(flag, val, hostPort string) string {
	if flag == "--host" {
		if hostPort != "" {
			h, _, _ := net.SplitHostPort(hostPort)
			return h
		}
		return m.path(val)
	}
	if hostPort != "" {
		_, p, _ := net.SplitHostPort(hostPort)
		return p
	}
	return strconv.Itoa(m.p.port)
}

// path maps a container path (or a --flag=path) under a mount to its dir.
func (m *mapper) path(s string) string {
	prefix := ""
	if strings.HasPrefix(s, "--") {
		if name, val, ok := strings.Cut(s, "="); ok {
			prefix, s = name+"=", val
		}
	}
	for _, mt := range m.mounts {
		if s == mt.path || strings.HasPrefix(s, mt.path+"/") {
			return prefix + mt.dir + strings.TrimPrefix(s, mt.path)
		}
	}
	return prefix + s
}

var hostPortRE = regexp.MustCompile(`^([a-z0-9][a-z0-9.-]*):([0-9]+)$`)

// addr maps "NAME:PORT" naming a Service or pod to its loopback address.
func (m *mapper) addr(s string) string {
	g := hostPortRE.FindStringSubmatch(s)
	if g == nil {
		return s
	}
	if a, err := m.resolve(g[1]); err == nil {
		return a
	}
	return s
}

// resolve reads a DNS-style name (name, name.ns, name.ns.svc[.cluster.local]).
func (m *mapper) resolve(host string) (string, error) {
	parts := strings.Split(host, ".")
	ns := m.w.ns
	if len(parts) > 1 && parts[1] != "" {
		ns = parts[1]
	}
	// An instance reaches Services through proxies of its own, which a
	// partition cuts.
	return m.k.resolveFor(m.ctx, m.p.claim, ns, parts[0])
}

// Resolve maps a Service to its proxy and a running pod (or the claim an
// instance serves) to a proxy for its port, both on 127.0.0.1: the
// operator's Resolver in tests. A partitioned instance is not reachable
// through either (see DirectAddr).
func (k *Kubelet) Resolve(ctx context.Context, ns, name string) (string, error) {
	return k.resolveFor(ctx, "", ns, name)
}

// resolveFor is Resolve as seen from an instance ("ns/instance", or ""
// outside).
func (k *Kubelet) resolveFor(ctx context.Context, from, ns, name string) (string, error) {
	var svc corev1.Service
	if err := k.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err == nil {
		px, err := k.serviceProxy(from, ns, name)
		if err != nil {
			return "", err
		}
		return px.addr, nil
	}
	if _, err := k.DirectAddr(ns, name); err != nil {
		return "", fmt.Errorf("resolve %s/%s: no such service or running pod", ns, name)
	}
	px, err := k.podProxy(ns, name)
	if err != nil {
		return "", err
	}
	return px.addr, nil
}

// proxy forwards connections: a Service's, a pod's, or the API server's.
type proxy struct {
	addr string
	l    net.Listener
	once sync.Once
}

func (p *proxy) close() { p.once.Do(func() { p.l.Close() }) }

// backend is the first ready pod, by name, that the Service selects now and
// that is not cut off: its name and address.
func (k *Kubelet) backend(ctx context.Context, ns, name string) (string, string, error) {
	var svc corev1.Service
	if err := k.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		return "", "", err
	}
	var pods corev1.PodList
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	if err := k.client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return "", "", err
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	for i := range pods.Items {
		pod := &pods.Items[i]
		k.net.mu.Lock()
		cut := k.net.cut[ns+"/"+pod.Name]
		k.net.mu.Unlock()
		if !pod.DeletionTimestamp.IsZero() || !podIsReady(pod) || cut {
			continue
		}
		if addr, err := k.DirectAddr(ns, pod.Name); err == nil {
			return pod.Name, addr, nil
		}
	}
	return "", "", fmt.Errorf("no ready pod selected")
}
