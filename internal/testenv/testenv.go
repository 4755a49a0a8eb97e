// Package testenv starts the real parts homeostat's tests run against: a
// kube-apiserver and etcd (through controller-runtime's envtest) with
// homeostat's CRDs installed. The binaries are built by `make tools` into
// bin/ (cached under ~/.cache/homeostat); tests fail with a clear message
// when they are missing rather than silently skipping.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Env is a running API server with the homeostat CRDs installed.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is a controller-runtime client that knows the homeostat kinds.
	Client client.Client
	// Scheme has the core, apiextensions and homeostat kinds.
	Scheme *runtime.Scheme
	// Kubeconfig is a kubeconfig file for this API server, for commands
	// (homeostat, kubectl) run as separate processes.
	Kubeconfig string

	env *envtest.Environment
}

// RepoRoot finds the module root by walking up from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// BinDir is where the test binaries are: $KUBEBUILDER_ASSETS, else bin/ at the
// module root.
func BinDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// Binary returns the path of a tool built by `make tools`, or an error that
// says how to build it.
func Binary(name string) (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found in %s: run `make tools` (or `make test`, which builds it)", name, dir)
	}
	return p, nil
}

// NewScheme returns a scheme with the core, apiextensions and homeostat kinds.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(s))
	must(apiextensionsv1.AddToScheme(s))
	must(v1alpha1.AddToScheme(s))
	return s
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// Start starts etcd and kube-apiserver and installs the CRDs under
// deploy/crds. Call Stop when done (a package's TestMain does both once).
func Start() (*Env, error) {
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := Binary(b); err != nil {
			return nil, err
		}
	}
	bin, _ := BinDir()
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	scheme := NewScheme()
	env := &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDDirectoryPaths:     []string{filepath.Join(root, "deploy", "crds")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	// A /16 service range (65,534 addresses, the default is a /24 of 254),
	// so benchmarks of tens of thousands of Apps get real ClusterIP Services.
	// It is only an allocation range: nothing is routed.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver and etcd from %s: %w", bin, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	e := &Env{Config: cfg, Client: c, Scheme: scheme, env: env}
	if e.Kubeconfig, err = e.writeKubeconfig(); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
}

// Stop stops the API server and etcd and removes the kubeconfig.
func (e *Env) Stop() error {
	if e.Kubeconfig != "" {
		_ = os.RemoveAll(filepath.Dir(e.Kubeconfig))
	}
	return e.env.Stop()
}

// writeKubeconfig writes an admin kubeconfig for child processes.
func (e *Env) writeKubeconfig() (string, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "homeostat-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("add test user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "homeostat-kubeconfig-")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "kubeconfig")
	return p, os.WriteFile(p, data, 0o600)
}

// Main is the body of a package's TestMain: it starts the API server the
// package's tests share, stores it in *env, runs the tests, stops the server
// and exits with the tests' code.
func Main(m *testing.M, env **Env) {
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "these tests need a real API server:", err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the test API server:", err)
	}
	os.Exit(code)
}
