package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"homeostat.dev/homeostat/internal/testenv"
)

// flakyProxy stands between the CLI and the API server on loopback; down
// closes every connection and refuses new ones, as a restarting API server
// does, and up serves again on the same address.
type flakyProxy struct {
	target string
	addr   string
	mu     gosync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	p := &flakyProxy{target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *flakyProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *flakyProxy) pipe(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(s, c); s.Close() }()
	_, _ = io.Copy(c, s)
	c.Close()
}

func (p *flakyProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *flakyProxy) up(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("reopen %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// proxiedKubeconfig is env's kubeconfig pointing at addr instead.
func proxiedKubeconfig(t *testing.T, env *testenv.Env, addr string) string {
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = addr
		c.Server = u.String()
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// The API server going away mid-sync (every connection dropped, new ones
// refused for three seconds) makes `homeostat sync --once` fail cleanly or
// complete, never crash or hang; the next sync converges, and a removal
// then leaves no orphan.
func TestAPIServerRestartMidSync(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFlakyProxy(t, u.Host)
	kube := proxiedKubeconfig(t, env, proxy.addr)
	repo := newCLIRepo(t)
	const total, removed = 500, 200
	files := map[string]string{}
	for i := range total {
		files[fmt.Sprintf("c%03d.yaml", i)] = cm(fmt.Sprintf("c%03d", i), "1")
	}
	repo.write(files)
	repo.commit("500 objects")
	args := []string{"sync", "--repo", "file://" + repo.dir, "--name", "restart", "-n", "restart",
		"--wait=false", "--once", "--timeout", "2m", "--cache-dir", t.TempDir(), "--kubeconfig", kube}

	done := make(chan struct{})
	var out, errOut string
	var code int
	go func() {
		defer close(done)
		out, errOut, code = homeostat(t, args...)
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for len(labelled(t, env, "restart")) < 150 {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 150 objects applied in 2 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	proxy.down()
	time.Sleep(3 * time.Second)
	proxy.up(t)
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("sync --once hung after the API server came back")
	}
	t.Logf("sync across the restart: exit %d\n%s\n%s", code, out, errOut)
	if strings.Contains(errOut, "panic") || (code != 0 && code != 1) {
		t.Fatalf("want exit 0 or a clean failure (1), got %d:\n%s", code, errOut)
	}
	if code == 1 && !strings.Contains(errOut, "error") {
		t.Fatalf("a failure must say why:\n%s", errOut)
	}

	if o, e, c := homeostat(t, args...); c != 0 || len(labelled(t, env, "restart")) != total {
		t.Fatalf("the next sync did not converge: exit %d, %d objects\n%s\n%s", c, len(labelled(t, env, "restart")), o, e)
	}
	gone := map[string]string{}
	for i := range removed {
		gone[fmt.Sprintf("c%03d.yaml", i)] = ""
	}
	repo.write(gone)
	repo.commit("remove 200")
	if o, e, c := homeostat(t, args...); c != 0 {
		t.Fatalf("removal sync: exit %d\n%s\n%s", c, o, e)
	}
	if n := len(labelled(t, env, "restart")); n != total-removed {
		t.Fatalf("want %d objects after the removal, got %d", total-removed, n)
	}
	_ = os.Remove(kube)
}
