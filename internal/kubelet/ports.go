package kubelet

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Declared ports: every pod shares the machine's network, so each port a
// container declares (containerPort) gets a loopback port of the pod's own.
// A listen address ":PORT" (or "--flag=:PORT") in the command naming a
// declared port is rewritten to 127.0.0.1 and that port, and an httpGet
// probe of the port (by number or name) is sent there.

// declaredPort is the loopback port standing for a workload's
// containerPort, the same for every run of the same pod name.
func (k *Kubelet) declaredPort(w workload, containerPort int32) (int, error) {
	return k.portFor(w.key() + "#" + strconv.Itoa(int(containerPort)))
}

var listenRE = regexp.MustCompile(`^(--[a-z0-9-]+=)?:([0-9]+)$`)

// listenAddr maps a listen address on a port c declares; anything else is
// returned as it is.
func (m *mapper) listenAddr(c *corev1.Container, a string) string {
	g := listenRE.FindStringSubmatch(a)
	if g == nil {
		return a
	}
	n, err := strconv.Atoi(g[2])
	if err != nil || !declares(c, int32(n)) {
		return a
	}
	local, err := m.k.declaredPort(m.w, int32(n))
	if err != nil {
		return a
	}
	return g[1] + "127.0.0.1:" + strconv.Itoa(local)
}

func declares(c *corev1.Container, port int32) bool {
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			return true
		}
	}
	return false
}

// probePort resolves a probe's port, a number or the name of one of c's
// ports, to the container port.
func probePort(c *corev1.Container, port intstr.IntOrString) (int32, error) {
	if port.Type == intstr.Int {
		return port.IntVal, nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, port.StrVal)
}

// httpReady returns the latest result of the main container's httpGet
// probe and starts the next one when due, in the background like an exec
// probe.
func (k *Kubelet) httpReady(ctx context.Context, pod *corev1.Pod, p *proc, rp *corev1.Probe) bool {
	return k.asyncProbe(p, rp, func() bool { return k.runHTTPProbe(ctx, pod, rp) })
}

// runHTTPProbe is one GET: ready on a status from 200 to 399, as the
// kubelet counts it. HTTPS is not verified, as the kubelet does not.
func (k *Kubelet) runHTTPProbe(ctx context.Context, pod *corev1.Pod, rp *corev1.Probe) bool {
	c := &pod.Spec.Containers[0]
	cp, err := probePort(c, rp.HTTPGet.Port)
	if err != nil {
		k.logf("pod %s/%s: readiness probe: %v", pod.Namespace, pod.Name, err)
		return false
	}
	local, err := k.declaredPort(workload{kind: "pod", ns: pod.Namespace, name: pod.Name}, cp)
	if err != nil {
		return false
	}
	scheme := "http"
	if rp.HTTPGet.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	url := scheme + "://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(local)) + rp.HTTPGet.Path
	// As with exec probes, a loaded test machine gets more than the
	// probe's own timeout; a probe that hangs still fails.
	ctx, cancel := context.WithTimeout(ctx, max(time.Duration(rp.TimeoutSeconds)*time.Second, 10*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	for _, h := range rp.HTTPGet.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true} //nolint:gosec // the kubelet does not verify probes either
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// PortAddr is the loopback address standing for a running pod's declared
// containerPort: where a test reaches, say, a pod's health endpoint.
func (k *Kubelet) PortAddr(ns, pod string, containerPort int32) (string, error) {
	k.mu.Lock()
	p := k.procs["pod/"+ns+"/"+pod]
	k.mu.Unlock()
	if p == nil {
		return "", fmt.Errorf("no running pod %s/%s", ns, pod)
	}
	local, err := k.declaredPort(workload{kind: "pod", ns: ns, name: pod}, containerPort)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(local)), nil
}
